// SPDX-License-Identifier: GPL-2.0
/*
 * wqlab._fastparse - the per-line work of wqlab/trace.py's _parse_into() in C.
 *
 * wqlab/trace.py calls configure() once at import with the event classes, its symbol
 * cache, Symbol.parse and the Python _parse_into() itself. parse_text(text, ...) then
 * does what _parse_into(text.splitlines(), ...) does, and parse_lines(lines, ...) what
 * _parse_into(lines, ...) does: they append the same events (same classes, same field
 * values) to the caller's lists and return the BufferStats of the header line or None.
 *
 * The C code takes the common line, in ASCII,
 *
 *	task-pid [cpu] flags sec.usec: name: body
 *
 * and gives every other line (header, regex-fallback prefixes, "[LOST n EVENTS]", odd
 * integers, non-ASCII text), one line at a time, to the Python parser. Equal results by
 * construction; tests/unit/test_trace_fast.py checks it on the recorded traces.
 *
 * Built by setup.py (pip install -e ., or python setup.py build_ext --inplace);
 * bench/bench_parser.py measures it against the pure-Python parser.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>	/* T_OBJECT_EX before 3.12 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* The fields (slots) of the events, in dataclass field order. */
enum fp_key {
	K_TASK,
	K_PID,
	K_CPU,
	K_FLAGS,
	K_TS_NS,
	K_NAME,
	K_BODY,		/* last key of TraceEvent (and UnknownEvent) */
	K_WORK,
	K_FUNCTION,
	K_WORKQUEUE,
	K_REQ_CPU,
	K_QUEUE_CPU,
	K_FIELDS,
	K_NR
};

static const char *const fp_key_names[K_NR] = {
	[K_TASK] = "task",
	[K_PID] = "pid",
	[K_CPU] = "cpu",
	[K_FLAGS] = "flags",
	[K_TS_NS] = "ts_ns",
	[K_NAME] = "name",
	[K_BODY] = "body",
	[K_WORK] = "work",
	[K_FUNCTION] = "function",
	[K_WORKQUEUE] = "workqueue",
	[K_REQ_CPU] = "req_cpu",
	[K_QUEUE_CPU] = "queue_cpu",
	[K_FIELDS] = "fields",
};

/* What a line becomes; the names of the first four are parsed into their own classes. */
enum fp_class {
	C_QUEUE,
	C_ACTIVATE,
	C_START,
	C_END,
	C_WQLAB,
	C_UNKNOWN,
	C_NR
};

static const char *const fp_class_args[C_NR] = {
	[C_QUEUE] = "queue_work",
	[C_ACTIVATE] = "activate_work",
	[C_START] = "execute_start",
	[C_END] = "execute_end",
	[C_WQLAB] = "wqlab_event",
	[C_UNKNOWN] = "unknown_event",
};

/* Event names of the workqueue classes, as printed: "workqueue_<suffix>". */
static const char *const fp_wq_suffix[C_WQLAB] = {
	[C_QUEUE] = "queue_work",
	[C_ACTIVATE] = "activate_work",
	[C_START] = "execute_start",
	[C_END] = "execute_end",
};

/* The fields of each class, in field order (-1 ends). */
#define FP_BASE_KEYS	K_TASK, K_PID, K_CPU, K_FLAGS, K_TS_NS, K_NAME, K_BODY

static const int fp_class_keys[C_NR][K_NR] = {
	[C_QUEUE] = { FP_BASE_KEYS, K_WORK, K_FUNCTION, K_WORKQUEUE, K_REQ_CPU, K_QUEUE_CPU, -1 },
	[C_ACTIVATE] = { FP_BASE_KEYS, K_WORK, K_FUNCTION, -1 },
	[C_START] = { FP_BASE_KEYS, K_WORK, K_FUNCTION, -1 },
	[C_END] = { FP_BASE_KEYS, K_WORK, K_FUNCTION, -1 },
	[C_WQLAB] = { FP_BASE_KEYS, K_FIELDS, -1 },
	[C_UNKNOWN] = { FP_BASE_KEYS, -1 },
};

/*
 * Caches: of small strings (task, flags, event and workqueue names repeat on every line;
 * work addresses on the few events of one work item), of the Symbols of function texts
 * and of ints. Bounded; they save allocations, the objects are equal either way. Strings
 * are two-way set-associative (the least recently used way is replaced): direct-mapped,
 * two entries that share a slot would evict each other on every line.
 */
#define FP_STR_BITS	9	/* 512 sets of 2 */
#define FP_STR_SETS	(1 << FP_STR_BITS)
#define FP_STR_MAX	64
#define FP_SYM_BITS	9
#define FP_SYM_SLOTS	(1 << FP_SYM_BITS)
#define FP_INT_SLOTS	1024

struct fp_str_set {
	PyObject *way[2];
	unsigned int victim;	/* the way to replace next */
};

struct fp_sym_slot {
	PyObject *text;		/* str: the function text as printed */
	PyObject *sym;		/* what _SYMBOL_CACHE or Symbol.parse gave for it */
};

struct fp_int_slot {
	long long v;
	PyObject *obj;
};

/*
 * Module state. Single-phase init, one interpreter: set by PyInit and configure(),
 * only touched with the GIL held.
 */
static struct {
	PyObject *key[K_NR];			/* interned key strings */
	PyObject *wq_name[C_WQLAB];		/* "workqueue_queue_work", ... */
	/* from configure(): */
	PyTypeObject *cls[C_NR];
	Py_ssize_t off[C_NR][K_NR];		/* where each field's slot is in an instance */
	PyObject *symbols;			/* wqlab.trace._SYMBOL_CACHE */
	PyObject *symbol_parse;			/* Symbol.parse */
	PyObject *slow;				/* wqlab.trace._parse_into */
	/* caches: */
	struct fp_str_set str[FP_STR_SETS];
	struct fp_str_set work[FP_STR_SETS];
	struct fp_sym_slot sym[FP_SYM_SLOTS];
	struct fp_int_slot ints[FP_INT_SLOTS];
} fp;

/* One call of parse_text() or parse_lines(): the caller's lists and what was found. */
struct fp_ctx {
	PyObject *events;	/* list (borrowed) */
	PyObject *lost;		/* list (borrowed) */
	PyObject *unparsed;	/* list (borrowed) */
	PyObject *stats;	/* BufferStats of the first header line, or NULL (owned) */
	unsigned long lines;
};

/* A span of the line. */
struct fp_span {
	const char *p;
	Py_ssize_t n;
};

/* A line that passed the fast path, before any object is made. */
struct fp_line {
	enum fp_class cls;
	struct fp_span task, flags, name, body, work, function, workqueue;
	long long pid, cpu, ts_ns, req_cpu, queue_cpu;
	bool has_function;	/* ActivateWork: function is not None */
};

/* --------------------------------------------------------------------- characters */

/* A string literal and its length, for the search helpers. */
#define FP_LIT(s)	s, (Py_ssize_t)sizeof(s) - 1

/*
 * For ASCII: str.split()/str.strip() whitespace (Py_UNICODE_ISSPACE) and
 * str.splitlines() line boundaries (Py_UNICODE_ISLINEBREAK).
 */
#define FP_SPACE	0x1
#define FP_BREAK	0x2

static const unsigned char fp_ctype[256] = {
	['\t'] = FP_SPACE,
	['\n'] = FP_SPACE | FP_BREAK,
	['\v'] = FP_SPACE | FP_BREAK,
	['\f'] = FP_SPACE | FP_BREAK,
	['\r'] = FP_SPACE | FP_BREAK,
	[0x1c] = FP_SPACE | FP_BREAK,
	[0x1d] = FP_SPACE | FP_BREAK,
	[0x1e] = FP_SPACE | FP_BREAK,
	[0x1f] = FP_SPACE,
	[' '] = FP_SPACE,
};

static inline bool fp_isspace(unsigned char ch)
{
	return fp_ctype[ch] & FP_SPACE;
}

static inline bool fp_islinebreak(unsigned char ch)
{
	return fp_ctype[ch] & FP_BREAK;
}

static struct fp_span fp_sub(struct fp_span s, Py_ssize_t from, Py_ssize_t to)
{
	return (struct fp_span){ s.p + from, to - from };
}

/* s.startswith(prefix): then true, and *@rest is what follows it. */
static bool fp_prefix(struct fp_span s, const char *prefix, Py_ssize_t n, struct fp_span *rest)
{
	if (s.n < n || memcmp(s.p, prefix, n) != 0)
		return false;
	*rest = fp_sub(s, n, s.n);
	return true;
}

/*
 * str.find(): index of the first @sep in @s, or -1. memchr() for the separator's last
 * character ('=' or ' ' here: ' ' is common in a body, so ": function " is looked for
 * by its ':'), then the rest compared.
 */
static Py_ssize_t fp_find(struct fp_span s, const char *sep, Py_ssize_t n)
{
	Py_ssize_t k = sep[n - 1] == ' ' ? 0 : n - 1, from = k;
	const char *hit;

	while (from + n - k <= s.n) {
		hit = memchr(s.p + from, sep[k], s.n - from - (n - 1 - k));
		if (!hit)
			break;
		if (memcmp(hit - k, sep, n) == 0)
			return hit - k - s.p;
		from = hit - s.p + 1;
	}
	return -1;
}

/* str.rfind(): index of the last @sep in @s, or -1. */
static Py_ssize_t fp_rfind(struct fp_span s, const char *sep, Py_ssize_t n)
{
	Py_ssize_t i;

	for (i = s.n - n; i >= 0; i--)
		if (s.p[i] == sep[0] && memcmp(s.p + i, sep, n) == 0)
			return i;
	return -1;
}

/*
 * head, sep, tail = s.partition(sep) (or rpartition, @last).
 * Return: false if @sep is not in @s (then *@head and *@tail are left alone).
 */
static bool fp_partition(struct fp_span s, const char *sep, Py_ssize_t n, bool last,
			 struct fp_span *head, struct fp_span *tail)
{
	Py_ssize_t at = last ? fp_rfind(s, sep, n) : fp_find(s, sep, n);

	if (at < 0)
		return false;
	*head = fp_sub(s, 0, at);
	*tail = fp_sub(s, at + n, s.n);
	return true;
}

static struct fp_span fp_rstrip(struct fp_span s)
{
	while (s.n && fp_isspace(s.p[s.n - 1]))
		s.n--;
	return s;
}

static struct fp_span fp_strip(struct fp_span s)
{
	while (s.n && fp_isspace(s.p[0])) {
		s.p++;
		s.n--;
	}
	return fp_rstrip(s);
}

/*
 * 1..18 decimal digits. Return: true and *v set, or false for anything else (which
 * int() may still accept: "+1", "1_0"; those lines go to the Python parser).
 */
static bool fp_digits(struct fp_span s, long long *v)
{
	long long x = 0;
	Py_ssize_t i;

	if (s.n < 1 || s.n > 18)
		return false;
	for (i = 0; i < s.n; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return false;
		x = x * 10 + (s.p[i] - '0');
	}
	*v = x;
	return true;
}

/*
 * int() of " -12 ": surrounding spaces and a minus sign; see fp_digits(). (int() strips
 * other whitespace too: the Python parser gets those lines.)
 */
static bool fp_int(struct fp_span s, long long *v)
{
	bool neg;

	while (s.n && s.p[0] == ' ')
		s = fp_sub(s, 1, s.n);
	while (s.n && s.p[s.n - 1] == ' ')
		s.n--;
	neg = s.n && s.p[0] == '-';
	if (neg)
		s = fp_sub(s, 1, s.n);
	if (!fp_digits(s, v))
		return false;
	if (neg)
		*v = -*v;
	return true;
}

/* ---------------------------------------------------------------------- the scan */

/*
 * The fast-path test of _parse_into(): line.split(None, 5) gives six parts,
 * "[..." "...:" "...:" with "." eight from the end of the timestamp.
 * Return: true and the six parts in @part.
 */
static bool fp_split6(const char *s, Py_ssize_t n, struct fp_span part[6])
{
	Py_ssize_t i = 0, start;
	int k;

	for (k = 0; k < 5; k++) {
		while (i < n && fp_isspace(s[i]))
			i++;
		if (i == n)
			return false;
		start = i;
		while (i < n && !fp_isspace(s[i]))
			i++;
		part[k] = (struct fp_span){ s + start, i - start };
	}
	while (i < n && fp_isspace(s[i]))
		i++;
	if (i == n)
		return false;
	part[5] = (struct fp_span){ s + i, n - i };
	return part[1].p[0] == '[' && part[4].p[part[4].n - 1] == ':' &&
	       part[3].p[part[3].n - 1] == ':' && part[3].n >= 8 &&
	       part[3].p[part[3].n - 8] == '.';
}

/* Event name (without ":") to its class; C_UNKNOWN or C_WQLAB for the others. */
static enum fp_class fp_class_of(struct fp_span name)
{
	struct fp_span suffix;
	int c;

	if (fp_prefix(name, FP_LIT("wqlab_"), &suffix))
		return C_WQLAB;
	if (!fp_prefix(name, FP_LIT("workqueue_"), &suffix))
		return C_UNKNOWN;
	for (c = 0; c < C_WQLAB; c++)
		if ((size_t)suffix.n == strlen(fp_wq_suffix[c]) &&
		    memcmp(suffix.p, fp_wq_suffix[c], suffix.n) == 0)
			return c;
	return C_UNKNOWN;
}

/*
 * "work struct %p: function %ps" (execute_start/end).
 * Return: false if the body does not parse (an UnknownEvent, as in Python).
 */
static bool fp_scan_execute(struct fp_line *l)
{
	struct fp_span work;

	if (!fp_partition(l->body, FP_LIT(": function "), false, &work, &l->function) ||
	    !fp_prefix(work, FP_LIT("work struct "), &l->work))
		return false;
	if (l->function.n && l->function.p[l->function.n - 1] == ' ')
		l->function = fp_rstrip(l->function);
	return true;
}

/*
 * "work struct=%p function=%ps workqueue=%s req_cpu=%d cpu=%d" (queue_work), taken
 * apart from the right as in Python.
 * Return: 1 parsed, 0 an UnknownEvent, -1 an integer for the Python parser to judge.
 */
static int fp_scan_queue(struct fp_line *l)
{
	struct fp_span head, req, qcpu, work;

	if (!fp_partition(l->body, FP_LIT(" cpu="), true, &head, &qcpu) ||
	    !fp_partition(head, FP_LIT(" req_cpu="), true, &head, &req) ||
	    !fp_partition(head, FP_LIT(" workqueue="), true, &head, &l->workqueue) ||
	    !fp_partition(head, FP_LIT(" function="), false, &work, &l->function) ||
	    !l->function.n || !fp_prefix(work, FP_LIT("work struct="), &l->work))
		return 0;
	if (!fp_int(req, &l->req_cpu) || !fp_int(qcpu, &l->queue_cpu))
		return -1;
	return 1;
}

/* "work struct %p" (6.1) or "work struct %p function=%ps " (6.10+; activate_work). */
static bool fp_scan_activate(struct fp_line *l)
{
	struct fp_span rest;

	if (!fp_prefix(l->body, FP_LIT("work struct "), &rest))
		return false;
	l->function = (struct fp_span){ NULL, 0 };
	if (!fp_partition(rest, FP_LIT(" function="), false, &l->work, &l->function))
		l->work = rest;
	l->has_function = l->function.n > 0;
	l->function = fp_rstrip(l->function);
	l->work = fp_strip(l->work);
	return true;
}

/*
 * The fast path of _parse_into() on one ASCII line, without making objects.
 * Return: 1 an event in @l, 0 not the common form (the Python parser decides),
 * -1 a header, comment or empty line to skip.
 */
static int fp_scan(const char *s, Py_ssize_t n, bool want_stats, struct fp_line *l)
{
	struct fp_span part[6], pid, ts;
	const char *dash;
	long long sec = 0, usec;
	int ret;

	if (!fp_split6(s, n, part)) {
		if (n == 0)
			return -1;
		if (s[0] == '#')
			return want_stats && memmem(s, n, FP_LIT("entries-written")) ? 0 : -1;
		return 0;
	}
	/* "task-pid": the task name may hold dashes, the pid is after the last one */
	dash = memrchr(part[0].p, '-', part[0].n);
	if (!dash)
		return 0;
	l->task = (struct fp_span){ part[0].p, dash - part[0].p };
	pid = (struct fp_span){ dash + 1, part[0].p + part[0].n - dash - 1 };
	if (!fp_digits(pid, &l->pid))
		return 0;
	/* "[cpu]" */
	if (part[1].n < 3 || part[1].p[part[1].n - 1] != ']' ||
	    !fp_digits(fp_sub(part[1], 1, part[1].n - 1), &l->cpu))
		return 0;
	l->flags = part[2];
	/* "sec.usec:", six fractional digits; at most 9 + 6 fit ts_ns in 63 bits */
	ts = part[3];
	if (ts.n > 8 + 9 || (ts.n > 8 && !fp_digits(fp_sub(ts, 0, ts.n - 8), &sec)) ||
	    !fp_digits(fp_sub(ts, ts.n - 7, ts.n - 1), &usec))
		return 0;
	l->ts_ns = (sec * 1000000 + usec) * 1000;
	l->name = fp_sub(part[4], 0, part[4].n - 1);
	l->body = part[5];
	l->cls = fp_class_of(l->name);
	switch (l->cls) {
	case C_QUEUE:
		ret = fp_scan_queue(l);
		if (ret < 0)
			return 0;
		if (!ret)
			l->cls = C_UNKNOWN;
		break;
	case C_ACTIVATE:
		if (!fp_scan_activate(l))
			l->cls = C_UNKNOWN;
		break;
	case C_START:
	case C_END:
		if (!fp_scan_execute(l))
			l->cls = C_UNKNOWN;
		break;
	default:
		break;
	}
	return 1;
}

/* ------------------------------------------------------------------- the objects */

/* A new str of ASCII bytes. */
static PyObject *fp_str(struct fp_span s)
{
	PyObject *o = PyUnicode_New(s.n, 127);

	if (o)
		memcpy(PyUnicode_1BYTE_DATA(o), s.p, s.n);
	return o;
}

/*
 * Multiplicative hashing: the top @bits of h * K depend on every bit of h (Knuth's
 * Fibonacci hashing). Return: an index below 1 << @bits.
 */
#define FP_GOLDEN	0x9e3779b97f4a7c15ULL

static inline size_t fp_index(uint64_t h, unsigned int bits)
{
	return (h * FP_GOLDEN) >> (64 - bits);
}

/* For the caches: length and up to 16 bytes from the ends (hits are compared whole). */
static inline uint64_t fp_hash(struct fp_span s)
{
	uint64_t a = 0, b = 0;

	if (s.n >= 8) {
		memcpy(&a, s.p, 8);
		memcpy(&b, s.p + s.n - 8, 8);
	} else {
		memcpy(&a, s.p, s.n);
	}
	return a ^ ((b ^ (uint64_t)s.n) * 0xff51afd7ed558ccdULL);
}

static inline bool fp_str_is(PyObject *o, struct fp_span s)
{
	return PyUnicode_GET_LENGTH(o) == s.n && memcmp(PyUnicode_1BYTE_DATA(o), s.p, s.n) == 0;
}

/* A str of ASCII bytes that is likely to repeat, through one of the string caches. */
static PyObject *fp_str_cached(struct fp_str_set *cache, struct fp_span s)
{
	struct fp_str_set *set;
	PyObject *o;
	int w;

	if (s.n > FP_STR_MAX)
		return fp_str(s);
	set = &cache[fp_index(fp_hash(s), FP_STR_BITS)];
	for (w = 0; w < 2; w++) {
		if (set->way[w] && fp_str_is(set->way[w], s)) {
			set->victim = !w;
			return Py_NewRef(set->way[w]);
		}
	}
	o = fp_str(s);
	if (o) {
		Py_XSETREF(set->way[set->victim], Py_NewRef(o));
		set->victim = !set->victim;
	}
	return o;
}

static PyObject *fp_int_cached(long long v)
{
	struct fp_int_slot *slot;
	PyObject *o;

	if (v >= 0 && v < 256)
		return PyLong_FromLongLong(v);	/* CPython's small ints */
	slot = &fp.ints[(unsigned long long)v % FP_INT_SLOTS];
	if (slot->obj && slot->v == v)
		return Py_NewRef(slot->obj);
	o = PyLong_FromLongLong(v);
	if (o) {
		Py_XSETREF(slot->obj, Py_NewRef(o));
		slot->v = v;
	}
	return o;
}

/* symbols.get(fn) or Symbol.parse(fn), as _parse_into() does. */
static PyObject *fp_symbol(struct fp_span s)
{
	struct fp_sym_slot *slot = &fp.sym[fp_index(fp_hash(s), FP_SYM_BITS)];
	PyObject *text, *sym;

	if (slot->text && fp_str_is(slot->text, s))
		return Py_NewRef(slot->sym);
	text = fp_str(s);
	if (!text)
		return NULL;
	sym = PyDict_GetItemWithError(fp.symbols, text);
	if (sym)
		Py_INCREF(sym);
	else if (!PyErr_Occurred())
		sym = PyObject_CallOneArg(fp.symbol_parse, text);
	if (!sym) {
		Py_DECREF(text);
		return NULL;
	}
	Py_XSETREF(slot->text, text);
	Py_XSETREF(slot->sym, Py_NewRef(sym));
	return sym;
}

/* The "fields" of a WqlabEvent: each "k=v" token of the body; later keys win. */
static PyObject *fp_fields(struct fp_span body)
{
	PyObject *fields = PyDict_New(), *k, *v;
	Py_ssize_t i = 0, start;
	const char *eq;
	int err;

	if (!fields)
		return NULL;
	while (i < body.n) {
		while (i < body.n && fp_isspace(body.p[i]))
			i++;
		start = i;
		while (i < body.n && !fp_isspace(body.p[i]))
			i++;
		eq = memchr(body.p + start, '=', i - start);
		if (!eq)
			continue;
		k = fp_str_cached(fp.str, (struct fp_span){ body.p + start, eq - body.p - start });
		v = k ? fp_str((struct fp_span){ eq + 1, body.p + i - eq - 1 }) : NULL;
		err = !k || !v || PyDict_SetItem(fields, k, v);
		Py_XDECREF(k);
		Py_XDECREF(v);
		if (err) {
			Py_DECREF(fields);
			return NULL;
		}
	}
	return fields;
}

/*
 * An instance of the slotted event class @cls with its fields set to @v, whose references
 * it takes over (the entries are cleared): what object.__new__(cls) and one
 * object.__setattr__() per field do, without a lookup per field. The slots of a fresh
 * instance are NULL; the values are all made before it, so no collection can see it half
 * filled. Return: a new reference, or NULL with an exception (@v is left as it was).
 */
static PyObject *fp_instance(enum fp_class cls, PyObject *v[K_NR])
{
	const int *keys = fp_class_keys[cls];
	PyObject *obj = fp.cls[cls]->tp_alloc(fp.cls[cls], 0);
	int i;

	if (!obj)
		return NULL;
	for (i = 0; keys[i] >= 0; i++) {
		*(PyObject **)((char *)obj + fp.off[cls][keys[i]]) = v[keys[i]];
		v[keys[i]] = NULL;
	}
	return obj;
}

/*
 * The values of a scanned line's event, into @v (new references).
 * Return: 0, or -1 with an exception (@v then holds what was made so far).
 */
static int fp_values(const struct fp_line *l, PyObject *v[K_NR])
{
	bool work = l->cls < C_WQLAB;	/* the four workqueue events */

	v[K_TASK] = fp_str_cached(fp.str, l->task);
	if (!v[K_TASK])
		return -1;
	v[K_PID] = fp_int_cached(l->pid);
	if (!v[K_PID])
		return -1;
	v[K_CPU] = fp_int_cached(l->cpu);
	if (!v[K_CPU])
		return -1;
	v[K_FLAGS] = fp_str_cached(fp.str, l->flags);
	if (!v[K_FLAGS])
		return -1;
	v[K_TS_NS] = PyLong_FromLongLong(l->ts_ns);
	if (!v[K_TS_NS])
		return -1;
	v[K_NAME] = work ? Py_NewRef(fp.wq_name[l->cls]) : fp_str_cached(fp.str, l->name);
	if (!v[K_NAME])
		return -1;
	v[K_BODY] = fp_str(l->body);
	if (!v[K_BODY])
		return -1;
	if (l->cls == C_WQLAB) {
		v[K_FIELDS] = fp_fields(l->body);
		return v[K_FIELDS] ? 0 : -1;
	}
	if (!work)
		return 0;
	v[K_WORK] = fp_str_cached(fp.work, l->work);
	if (!v[K_WORK])
		return -1;
	if (l->cls == C_ACTIVATE && !l->has_function)
		v[K_FUNCTION] = Py_NewRef(Py_None);
	else
		v[K_FUNCTION] = fp_symbol(l->function);
	if (!v[K_FUNCTION])
		return -1;
	if (l->cls != C_QUEUE)
		return 0;
	v[K_WORKQUEUE] = fp_str_cached(fp.str, l->workqueue);
	if (!v[K_WORKQUEUE])
		return -1;
	v[K_REQ_CPU] = fp_int_cached(l->req_cpu);
	if (!v[K_REQ_CPU])
		return -1;
	v[K_QUEUE_CPU] = fp_int_cached(l->queue_cpu);
	return v[K_QUEUE_CPU] ? 0 : -1;
}

/* Make the event of a scanned line and append it. Return: 0, or -1 with an exception. */
static int fp_emit(struct fp_ctx *c, const struct fp_line *l)
{
	PyObject *v[K_NR] = { NULL }, *obj = NULL;
	int i, ret = -1;

	if (fp_values(l, v))
		goto out;
	obj = fp_instance(l->cls, v);
	if (obj)
		ret = PyList_Append(c->events, obj);
out:
	Py_XDECREF(obj);
	for (i = 0; i < K_NR; i++)
		Py_XDECREF(v[i]);
	return ret;
}

/*
 * Give one line to the Python parser: _parse_into((line,), events, lost, unparsed).
 * @line is the line's str if the caller has one, else NULL (made from @s).
 */
static int fp_slow(struct fp_ctx *c, struct fp_span s, PyObject *line)
{
	PyObject *lines, *ret;

	line = line ? Py_NewRef(line) : fp_str(s);
	if (!line)
		return -1;
	lines = PyTuple_Pack(1, line);
	Py_DECREF(line);
	if (!lines)
		return -1;
	ret = PyObject_CallFunctionObjArgs(fp.slow, lines, c->events, c->lost, c->unparsed,
					   NULL);
	Py_DECREF(lines);
	if (!ret)
		return -1;
	if (ret != Py_None && !c->stats)
		c->stats = ret;
	else
		Py_DECREF(ret);
	return 0;
}

/* One line, ASCII in @s; @line its str or NULL. Return: 0, or -1 with an exception. */
static int fp_do_line(struct fp_ctx *c, const char *s, Py_ssize_t n, PyObject *line)
{
	struct fp_line l;
	int ret;

	/* let ^C through on long texts */
	if (!(++c->lines & 0xffff) && PyErr_CheckSignals())
		return -1;
	ret = fp_scan(s, n, !c->stats, &l);
	if (ret > 0)
		return fp_emit(c, &l);
	if (ret < 0)
		return 0;
	return fp_slow(c, (struct fp_span){ s, n }, line);
}

/* Each str of @iterable: ASCII ones here, others in Python. */
static int fp_do_lines(struct fp_ctx *c, PyObject *iterable)
{
	PyObject *it = PyObject_GetIter(iterable), *line;
	int ret = 0;

	if (!it)
		return -1;
	while (!ret) {
		line = PyIter_Next(it);
		if (!line)
			break;
		if (PyUnicode_Check(line) && PyUnicode_IS_ASCII(line))
			ret = fp_do_line(c, (const char *)PyUnicode_1BYTE_DATA(line),
					 PyUnicode_GET_LENGTH(line), line);
		else
			ret = fp_slow(c, (struct fp_span){ NULL, 0 }, line);
		Py_DECREF(line);
	}
	Py_DECREF(it);
	return ret || PyErr_Occurred() ? -1 : 0;
}

/*
 * Word at a time (as in include/asm-generic/word-at-a-time.h): has the word @x a byte
 * b with @m < b < @n? Exact for bytes below 0x80 (ASCII); "Determine if a word has a
 * byte between m and n" of Sean Eron Anderson's Bit Twiddling Hacks.
 */
#define FP_ONES		0x0101010101010101ULL

static inline uint64_t fp_has_between(uint64_t x, unsigned int m, unsigned int n)
{
	return ((FP_ONES * (127 + n) - (x & FP_ONES * 127)) & ~x &
		((x & FP_ONES * 127) + FP_ONES * (127 - m))) & FP_ONES * 128;
}

/*
 * Index of the first line break in s[i:n], or n. memchr() finds the "\n"; the other
 * breaks (\v \f \r 0x1c-0x1e) all lie in (0x0a, 0x1f): words without such a byte are
 * skipped eight bytes at a time, the rest looked at byte by byte.
 */
static Py_ssize_t fp_line_end(const char *s, Py_ssize_t i, Py_ssize_t n)
{
	const char *nl = memchr(s + i, '\n', n - i);
	Py_ssize_t end = nl ? nl - s : n;
	uint64_t w;

	for (; i + 8 <= end; i += 8) {
		memcpy(&w, s + i, 8);
		if (fp_has_between(w, 0x0a, 0x1f))
			break;
	}
	for (; i < end; i++)
		if (fp_islinebreak(s[i]))
			return i;
	return end;
}

/* The lines of @text as str.splitlines() cuts them. */
static int fp_do_text(struct fp_ctx *c, PyObject *text)
{
	const char *s;
	Py_ssize_t n, i = 0, start;
	PyObject *lines;
	int ret;

	if (!PyUnicode_IS_ASCII(text)) {
		lines = PyUnicode_Splitlines(text, 0);
		if (!lines)
			return -1;
		ret = fp_do_lines(c, lines);
		Py_DECREF(lines);
		return ret;
	}
	s = (const char *)PyUnicode_1BYTE_DATA(text);
	n = PyUnicode_GET_LENGTH(text);
	while (i < n) {
		start = i;
		i = fp_line_end(s, i, n);
		if (fp_do_line(c, s + start, i - start, NULL))
			return -1;
		if (i < n)
			i += s[i] == '\r' && i + 1 < n && s[i + 1] == '\n' ? 2 : 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ the module */

static bool fp_configured(void)
{
	if (!fp.slow)
		PyErr_SetString(PyExc_RuntimeError,
				"wqlab._fastparse: configure() not called (import wqlab.trace)");
	return fp.slow != NULL;
}

typedef int (*fp_source_fn)(struct fp_ctx *c, PyObject *src);

static PyObject *fp_parse(PyObject *args, const char *fmt, PyTypeObject *src_type,
			  fp_source_fn fn)
{
	struct fp_ctx c = { NULL };
	PyObject *src;

	if (!fp_configured() ||
	    !PyArg_ParseTuple(args, fmt, src_type, &src, &PyList_Type, &c.events,
			      &PyList_Type, &c.lost, &PyList_Type, &c.unparsed))
		return NULL;
	if (fn(&c, src)) {
		Py_XDECREF(c.stats);
		return NULL;
	}
	return c.stats ? c.stats : Py_NewRef(Py_None);
}

PyDoc_STRVAR(fp_parse_text_doc,
"parse_text(text, events, lost, unparsed, /) -> BufferStats | None\n\n"
"What wqlab.trace._parse_into(text.splitlines(), events, lost, unparsed) does.");

static PyObject *fp_parse_text(PyObject *self, PyObject *args)
{
	(void)self;
	return fp_parse(args, "O!O!O!O!:parse_text", &PyUnicode_Type, fp_do_text);
}

PyDoc_STRVAR(fp_parse_lines_doc,
"parse_lines(lines, events, lost, unparsed, /) -> BufferStats | None\n\n"
"What wqlab.trace._parse_into(lines, events, lost, unparsed) does.");

static PyObject *fp_parse_lines(PyObject *self, PyObject *args)
{
	(void)self;
	return fp_parse(args, "O!O!O!O!:parse_lines", &PyBaseObject_Type, fp_do_lines);
}

#ifdef Py_T_OBJECT_EX
#define FP_T_OBJECT_EX	Py_T_OBJECT_EX
#else
#define FP_T_OBJECT_EX	T_OBJECT_EX
#endif

/*
 * Where @type keeps each field of @cls: it must be a slotted dataclass with exactly the
 * fields of fp_class_keys (dataclass(slots=True) makes a T_OBJECT_EX slot per field).
 * Return: 0, or -1 with an exception.
 */
static int fp_offsets(PyTypeObject *type, enum fp_class cls, Py_ssize_t off[K_NR])
{
	const int *keys = fp_class_keys[cls];
	PyObject *fields, *descr;
	Py_ssize_t nfields;
	int i;

	fields = PyObject_GetAttrString((PyObject *)type, "__dataclass_fields__");
	nfields = fields ? PyObject_Size(fields) : -1;
	Py_XDECREF(fields);
	if (nfields < 0)
		return -1;
	for (i = 0; keys[i] >= 0; i++) {
		descr = PyObject_GetAttr((PyObject *)type, fp.key[keys[i]]);
		if (!descr)
			return -1;
		if (!Py_IS_TYPE(descr, &PyMemberDescr_Type) ||
		    ((PyMemberDescrObject *)descr)->d_member->type != FP_T_OBJECT_EX) {
			PyErr_Format(PyExc_TypeError, "configure(): %s.%s is not a slot",
				     type->tp_name, fp_key_names[keys[i]]);
			Py_DECREF(descr);
			return -1;
		}
		off[keys[i]] = ((PyMemberDescrObject *)descr)->d_member->offset;
		Py_DECREF(descr);
	}
	if (nfields != i) {
		PyErr_Format(PyExc_TypeError, "configure(): %s has %zd fields, the parser makes %d",
			     type->tp_name, nfields, i);
		return -1;
	}
	return 0;
}

static void fp_clear_caches(void)
{
	int i, w;

	for (i = 0; i < FP_STR_SETS; i++) {
		for (w = 0; w < 2; w++) {
			Py_CLEAR(fp.str[i].way[w]);
			Py_CLEAR(fp.work[i].way[w]);
		}
	}
	for (i = 0; i < FP_SYM_SLOTS; i++) {
		Py_CLEAR(fp.sym[i].text);
		Py_CLEAR(fp.sym[i].sym);
	}
	for (i = 0; i < FP_INT_SLOTS; i++)
		Py_CLEAR(fp.ints[i].obj);
}

PyDoc_STRVAR(fp_configure_doc,
"configure(*, queue_work, activate_work, execute_start, execute_end, wqlab_event,\n"
"          unknown_event, symbol_cache, symbol_parse, slow) -> None\n\n"
"The event classes, wqlab.trace._SYMBOL_CACHE, Symbol.parse and _parse_into.\n"
"Called by wqlab.trace at import; again (a reload) replaces them all.");

static PyObject *fp_configure(PyObject *self, PyObject *args, PyObject *kwargs)
{
	static char *kwlist[] = {
		"queue_work", "activate_work", "execute_start", "execute_end", "wqlab_event",
		"unknown_event", "symbol_cache", "symbol_parse", "slow", NULL
	};
	PyTypeObject *cls[C_NR];
	Py_ssize_t off[C_NR][K_NR];
	PyObject *symbols, *symbol_parse, *slow;
	int i;

	(void)self;
	if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$O!O!O!O!O!O!O!OO:configure", kwlist,
					 &PyType_Type, &cls[C_QUEUE],
					 &PyType_Type, &cls[C_ACTIVATE],
					 &PyType_Type, &cls[C_START],
					 &PyType_Type, &cls[C_END],
					 &PyType_Type, &cls[C_WQLAB],
					 &PyType_Type, &cls[C_UNKNOWN],
					 &PyDict_Type, &symbols, &symbol_parse, &slow))
		return NULL;
	if (PyTuple_GET_SIZE(args) + (kwargs ? PyDict_GET_SIZE(kwargs) : 0) != 9) {
		PyErr_SetString(PyExc_TypeError, "configure() needs all nine keyword arguments");
		return NULL;
	}
	for (i = 0; i < C_NR; i++) {
		if (!(cls[i]->tp_flags & Py_TPFLAGS_HEAPTYPE) || cls[i]->tp_dictoffset) {
			PyErr_Format(PyExc_TypeError, "configure(): %s=%s is not a slotted class",
				     fp_class_args[i], cls[i]->tp_name);
			return NULL;
		}
		if (fp_offsets(cls[i], i, off[i]))
			return NULL;
	}
	for (i = 0; i < C_NR; i++)
		Py_XSETREF(fp.cls[i], (PyTypeObject *)Py_NewRef(cls[i]));
	memcpy(fp.off, off, sizeof(off));
	Py_XSETREF(fp.symbols, Py_NewRef(symbols));
	Py_XSETREF(fp.symbol_parse, Py_NewRef(symbol_parse));
	Py_XSETREF(fp.slow, Py_NewRef(slow));
	fp_clear_caches();
	Py_RETURN_NONE;
}

static PyMethodDef fp_methods[] = {
	{ "configure", (PyCFunction)(void (*)(void))fp_configure, METH_VARARGS | METH_KEYWORDS,
	  fp_configure_doc },
	{ "parse_text", fp_parse_text, METH_VARARGS, fp_parse_text_doc },
	{ "parse_lines", fp_parse_lines, METH_VARARGS, fp_parse_lines_doc },
	{ NULL, NULL, 0, NULL }
};

/*
 * Only for a failed PyInit: the state of a single-phase module lives as long as the
 * process (a re-import copies the module, it does not run PyInit again).
 */
static void fp_free(void)
{
	int i;

	fp_clear_caches();
	for (i = 0; i < K_NR; i++)
		Py_CLEAR(fp.key[i]);
	for (i = 0; i < C_WQLAB; i++)
		Py_CLEAR(fp.wq_name[i]);
	for (i = 0; i < C_NR; i++)
		Py_CLEAR(fp.cls[i]);
	Py_CLEAR(fp.symbols);
	Py_CLEAR(fp.symbol_parse);
	Py_CLEAR(fp.slow);
}

PyDoc_STRVAR(fp_doc, "The trace line parser of wqlab.trace in C (see wqlab/_fastparse.c).");

static struct PyModuleDef fp_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "wqlab._fastparse",
	.m_doc = fp_doc,
	.m_size = -1,
	.m_methods = fp_methods,
};

PyMODINIT_FUNC PyInit__fastparse(void)
{
	int i;

	for (i = 0; i < K_NR; i++) {
		fp.key[i] = PyUnicode_InternFromString(fp_key_names[i]);
		if (!fp.key[i])
			goto fail;
	}
	for (i = 0; i < C_WQLAB; i++) {
		fp.wq_name[i] = PyUnicode_FromFormat("workqueue_%s", fp_wq_suffix[i]);
		if (!fp.wq_name[i])
			goto fail;
	}
	return PyModule_Create(&fp_module);
fail:
	fp_free();
	return NULL;
}
