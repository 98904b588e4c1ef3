// SPDX-License-Identifier: GPL-2.0
/*
 * wqlab work items, their behaviours and records, and the workqueues
 * commands can name.
 *
 * Item 0 is DECLARE_WORK, item 1 DECLARE_DELAYED_WORK; `work_new` adds
 * dynamic items (ids 2..max_items+1). A work function does, in order: spin
 * (spin_us), sleep (sleep_ms), block until `release` (block), then requeue
 * itself on the queue it was last queued on (requeue). Each run updates the
 * item's record, read through debugfs `works`. See wqlab.h for the locks.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpumask.h>
#include <linux/jiffies.h>
#include <linux/kallsyms.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/mutex.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/utsname.h>

#include "wqlab.h"

#define CREATE_TRACE_POINTS
#include "wqlab_trace.h"

DEFINE_MUTEX(wqlab_lock);
DEFINE_SPINLOCK(wqlab_rec_lock);
struct wqlab_stats wqlab_stats;

static bool wqlab_stopping;			/* [R] module exit began */
static unsigned int wqlab_aborts;		/* [R] killed waiters in flight */
static atomic64_t wqlab_seq;			/* run sequence numbers */
static struct wqlab_item **wqlab_pool;		/* [M] dynamic items */
static struct wqlab_item wqlab_static_items[2];	/* [C] ids 0 and 1 */
static struct wqlab_wq *wqlab_wqs[WQLAB_MAX_WQS]; /* [M] custom queues */

static void wqlab_work_fn(struct work_struct *work);
static void wqlab_dwork_fn(struct work_struct *work);

static DECLARE_WORK(wqlab_static_work, wqlab_work_fn);
static DECLARE_DELAYED_WORK(wqlab_static_dwork, wqlab_dwork_fn);

/* System queues; .wq is filled at init, NULL where this kernel lacks it. */
static struct wqlab_wq wqlab_sys_wqs[] = {
	{ .name = "system" },
	{ .name = "system_highpri" },
	{ .name = "system_long" },
	{ .name = "system_unbound", .flags = WQLAB_WQ_UNBOUND },
	{ .name = "system_freezable", .flags = WQLAB_WQ_FREEZABLE },
	{ .name = "system_power_efficient", .flags = WQLAB_WQ_POWER_EFFICIENT },
	{ .name = "system_freezable_power_efficient",
	  .flags = WQLAB_WQ_FREEZABLE | WQLAB_WQ_POWER_EFFICIENT },
	{ .name = "system_bh", .flags = WQLAB_WQ_BH, .bh = true },
	{ .name = "system_bh_highpri", .flags = WQLAB_WQ_BH | WQLAB_WQ_HIGHPRI,
	  .bh = true },
	{ .name = "system_percpu", .flags = WQLAB_WQ_PERCPU },
	{ .name = "system_dfl", .flags = WQLAB_WQ_UNBOUND },
};

static const char * const wqlab_state_names[WQLAB_ST_NR] = {
	[WQLAB_ST_IDLE] = "idle",
	[WQLAB_ST_QUEUED] = "queued",
	[WQLAB_ST_RUNNING] = "running",
	[WQLAB_ST_BLOCKED] = "blocked",
	[WQLAB_ST_DONE] = "done",
	[WQLAB_ST_CANCELED] = "canceled",
};

static const struct {
	const char *name;
	u32 bit;
	unsigned int kflag;
} wqlab_flag_names[] = {
	{ "unbound", WQLAB_WQ_UNBOUND, WQ_UNBOUND },
	{ "highpri", WQLAB_WQ_HIGHPRI, WQ_HIGHPRI },
	{ "cpu_intensive", WQLAB_WQ_CPU_INTENSIVE, WQ_CPU_INTENSIVE },
	{ "freezable", WQLAB_WQ_FREEZABLE, WQ_FREEZABLE },
	{ "mem_reclaim", WQLAB_WQ_MEM_RECLAIM, WQ_MEM_RECLAIM },
	{ "sysfs", WQLAB_WQ_SYSFS, WQ_SYSFS },
	{ "bh", WQLAB_WQ_BH, WQLAB_KWQ_BH },
	{ "percpu", WQLAB_WQ_PERCPU, WQLAB_KWQ_PERCPU },
	{ "power_efficient", WQLAB_WQ_POWER_EFFICIENT, WQ_POWER_EFFICIENT },
};

const char *wqlab_state_name(enum wqlab_state state)
{
	return state < WQLAB_ST_NR ? wqlab_state_names[state] : "?";
}

/**
 * wqlab_flags_parse() - parse a comma-separated flag list
 * @s: the list (modified)
 * @flags: WQLAB_WQ_* result
 *
 * Return: 0, or -EINVAL on an unknown or repeated name.
 */
int wqlab_flags_parse(char *s, u32 *flags)
{
	char *tok;
	u32 f = 0;
	unsigned int i;

	while ((tok = strsep(&s, ",")) != NULL) {
		if (!*tok)
			continue;
		for (i = 0; i < ARRAY_SIZE(wqlab_flag_names); i++)
			if (!strcmp(tok, wqlab_flag_names[i].name))
				break;
		if (i == ARRAY_SIZE(wqlab_flag_names) ||
		    (f & wqlab_flag_names[i].bit))
			return -EINVAL;
		f |= wqlab_flag_names[i].bit;
	}
	*flags = f;
	return 0;
}

/* Format WQLAB_WQ_* as a comma list ("-" for none). Return: length. */
int wqlab_flags_format(u32 flags, char *buf, size_t size)
{
	unsigned int i;
	int len = 0;

	buf[0] = '\0';
	for (i = 0; i < ARRAY_SIZE(wqlab_flag_names); i++)
		if (flags & wqlab_flag_names[i].bit)
			len += scnprintf(buf + len, size - len, "%s%s",
					 len ? "," : "",
					 wqlab_flag_names[i].name);
	if (!len)
		len = scnprintf(buf, size, "-");
	return len;
}

static unsigned int wqlab_kflags(u32 flags)
{
	unsigned int i, kflags = 0;

	for (i = 0; i < ARRAY_SIZE(wqlab_flag_names); i++)
		if (flags & wqlab_flag_names[i].bit)
			kflags |= wqlab_flag_names[i].kflag;
	return kflags;
}

bool wqlab_is_stopping(void)
{
	unsigned long irqflags;
	bool stopping;

	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	stopping = wqlab_stopping;
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	return stopping;
}

/* ---- work functions ---------------------------------------------------- */

/*
 * Does a sleeping (@block false) or blocked (@block true) run go on? A blocked
 * run waits for the release counter to move past @seq0, not for ->released:
 * a command that queues the item again right after a `release` clears
 * ->released, and must not put the released run back to sleep.
 */
static bool wqlab_wait_cond(struct wqlab_item *item, bool block, u64 seq0)
{
	unsigned long irqflags;
	bool done;

	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	done = wqlab_stopping || wqlab_aborts ||
	       (block && item->rec.release_seq != seq0);
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	return done;
}

/* Requeue after a run; called under R. Return: true if queued. */
static bool wqlab_requeue_locked(struct wqlab_item *item,
				 struct wqlab_wq *run_wq)
{
	struct wqlab_wq *wq = item->rec.target;
	bool queued;

	if (wqlab_stopping || wqlab_aborts || !item->rec.requeue_left || !wq ||
	    wq->dying)
		return false;
	/*
	 * Only chained work may be queued on a draining queue (else the kernel
	 * WARNs and leaves the item pending for ever): from a worker of that
	 * queue, at once. A timer fires from elsewhere, and a BH worker is not
	 * seen as chaining, so those chains end here.
	 */
	if (wq->drainers &&
	    (wq != run_wq || wq->bh || (item->delayed && item->rec.delay)))
		return false;
	if (item->delayed)
		queued = queue_delayed_work_on(item->rec.req_cpu, wq->wq,
					       item->dwork, item->rec.delay);
	else
		queued = queue_work_on(item->rec.req_cpu, wq->wq, item->work);
	if (queued) {
		item->rec.requeue_left--;
		item->rec.queued_ns = ktime_get_ns();
		item->rec.state = WQLAB_ST_QUEUED;
		/* ->released stays: a requeued run does not block again */
	}
	return queued;
}

static void wqlab_run(struct wqlab_item *item)
{
	char comm[TASK_COMM_LEN];
	struct wqlab_behave beh;
	struct wqlab_wq *run_wq;
	unsigned long irqflags;
	bool sleepable = in_task();
	int cpu = raw_smp_processor_id();
	u64 seq = atomic64_inc_return(&wqlab_seq);
	u64 started_ns, finished_ns, other_seq = 0;
	char qnames[2][40];	/* custom or system queue names */
	char other_comm[TASK_COMM_LEN];
	unsigned long data = atomic_long_read(&item->work->data);
	unsigned long other_data = 0, queue_data[2] = { 0, 0 };
	unsigned int busy_queue = 0;
	pid_t other_pid = 0;
	unsigned int others = 0;
	bool requeued;

	/*
	 * A BH item runs in softirq on top of whatever task it interrupted,
	 * which may hold its own task_lock: get_task_comm() there is a
	 * deadlock (lockdep: inconsistent alloc_lock usage). Copy the name the
	 * way tracing does instead.
	 */
	if (sleepable)
		get_task_comm(comm, current);
	else
		strscpy_pad(comm, current->comm, sizeof(comm));
	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	beh = item->rec.beh;
	run_wq = item->rec.target;
	/* never by design (one queue at a time, the kernel's non-reentrancy) */
	if (item->rec.active_runs) {
		/* copied here: a queue outlives only the runs it has in flight */
		others = item->rec.active_runs;
		other_seq = item->rec.seq;
		other_pid = item->rec.pid;
		memcpy(other_comm, item->rec.comm, sizeof(other_comm));
		other_data = item->rec.data_run;
		memcpy(queue_data, item->rec.data_queue, sizeof(queue_data));
		busy_queue = item->rec.busy_queue;
		strscpy(qnames[0], run_wq ? run_wq->name : "-", sizeof(qnames[0]));
		strscpy(qnames[1], item->rec.run_wq ? item->rec.run_wq->name : "-",
			sizeof(qnames[1]));
	} else {
		item->rec.run_wq = run_wq;
	}
	item->rec.active_runs++;
	item->rec.data_run = data;
	started_ns = ktime_get_ns();
	item->rec.started_ns = started_ns;
	item->rec.cpu = cpu;
	item->rec.pid = task_pid_nr(current);
	memcpy(item->rec.comm, comm, sizeof(comm));
	item->rec.runs++;
	item->rec.seq = seq;
	item->rec.state = WQLAB_ST_RUNNING;
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);

	atomic64_inc(&wqlab_stats.runs);
	if (others) {
		atomic64_inc(&wqlab_stats.run_overlaps);
		trace_wqlab_work_overlap(item->id, seq, other_seq, item->work,
					 cpu, other_pid);
		pr_info("item %u: run %llu started while run %llu is in flight (active_runs %u; queues %s, %s; cpu %d; workers %d %s, %d %s; work data 0x%lx, 0x%lx, last queueing 0x%lx -> 0x%lx, work_busy %u)\n",
			item->id, seq, other_seq, others, qnames[0], qnames[1],
			cpu, task_pid_nr(current), comm, other_pid, other_comm,
			data, other_data, queue_data[0], queue_data[1], busy_queue);
	}
	trace_wqlab_work_run(item->id, seq, item->work, cpu);
	wqlab_nl_event_run(WQLAB_EV_START, item, seq, cpu, run_wq, started_ns);

	if (beh.spin_us) {
		/*
		 * Busy-wait on the clocksource, not udelay(): udelay() trusts the boot's
		 * loops_per_jiffy, which a TCG boot can get 200x wrong ("tsc: Unable to
		 * calibrate against PIT"); ktime_get() stays true to wall time.
		 */
		u64 end = ktime_get_ns() + (u64)beh.spin_us * NSEC_PER_USEC;

		while (ktime_get_ns() < end && !READ_ONCE(wqlab_stopping) &&
		       !READ_ONCE(wqlab_aborts))
			cpu_relax();
	}
	/* BH context cannot sleep; commands refuse such behaviours there. */
	if (beh.sleep_ms && sleepable)
		wait_event_idle_timeout(item->wait,
					wqlab_wait_cond(item, false, 0),
					msecs_to_jiffies(beh.sleep_ms));
	if (beh.block && sleepable) {
		bool block = false;
		u64 seq0;

		spin_lock_irqsave(&wqlab_rec_lock, irqflags);
		seq0 = item->rec.release_seq;
		if (!item->rec.released && !wqlab_stopping && !wqlab_aborts) {
			item->rec.state = WQLAB_ST_BLOCKED;
			item->rec.blocked = true;
			item->rec.blocked_seq = seq;
			item->rec.block_release_seq = seq0;
			block = true;
		}
		spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
		atomic64_inc(&wqlab_stats.blocks);
		trace_wqlab_work_block(item->id, seq, item->work, cpu);
		if (block)
			wqlab_nl_event_run(WQLAB_EV_BLOCK, item, seq,
					   raw_smp_processor_id(), run_wq,
					   ktime_get_ns());
		/* Bounded: a forgotten `release` costs block_max_ms, not a hang. */
		if (block &&
		    !wait_event_idle_timeout(item->wait,
					     wqlab_wait_cond(item, true, seq0),
					     msecs_to_jiffies(wqlab_block_max_ms))) {
			/* as a release would: the chain's requeues do not block again */
			spin_lock_irqsave(&wqlab_rec_lock, irqflags);
			item->rec.released = true;
			spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
			atomic64_inc(&wqlab_stats.block_timeouts);
			pr_info("item %u: no release within %u ms; the run goes on\n",
				item->id, wqlab_block_max_ms);
		}
	}

	cpu = raw_smp_processor_id();
	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	finished_ns = ktime_get_ns();
	item->rec.finished_ns = finished_ns;
	item->rec.state = WQLAB_ST_DONE;
	if (item->rec.blocked_seq == seq) {
		item->rec.blocked = false;
		item->rec.blocked_seq = 0;
		item->rec.block_release_seq = 0;
	}
	requeued = wqlab_requeue_locked(item, run_wq);
	item->rec.active_runs--;
	if (!item->rec.active_runs)
		item->rec.run_wq = NULL;
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	if (requeued)
		atomic64_inc(&wqlab_stats.requeues);
	trace_wqlab_work_done(item->id, seq, item->work, cpu);
	/* run_wq lives on: destroy_workqueue() waits for this run to return. */
	wqlab_nl_event_run(WQLAB_EV_END, item, seq, cpu, run_wq, finished_ns);
}

static void wqlab_work_fn(struct work_struct *work)
{
	struct wqlab_item *item;

	if (work == &wqlab_static_work)
		item = &wqlab_static_items[WQLAB_ID_STATIC_WORK];
	else
		item = container_of(work, struct wqlab_item, u.work);
	wqlab_run(item);
}

static void wqlab_dwork_fn(struct work_struct *work)
{
	struct delayed_work *dwork = to_delayed_work(work);
	struct wqlab_item *item;

	if (dwork == &wqlab_static_dwork)
		item = &wqlab_static_items[WQLAB_ID_STATIC_DWORK];
	else
		item = container_of(dwork, struct wqlab_item, u.dwork);
	wqlab_run(item);
}

/* ---- killable waits ---------------------------------------------------- */

/*
 * Blocking commands wait in the workqueue API, uninterruptibly, as a driver
 * would. So that a user who killed such a command gets it back at once, a
 * watchdog looks at the waiting tasks every WQLAB_WATCHDOG_MS: while one of
 * them has a fatal signal pending, every run is cut short (spin, sleep,
 * block) and no chain requeues, so whatever it waits for ends now.
 *
 * W: wqlab_waiter_lock (spinlock) guards wqlab_waiters and ->aborted.
 */
#define WQLAB_WATCHDOG_MS	100

static LIST_HEAD(wqlab_waiters);		/* [W] */
static DEFINE_SPINLOCK(wqlab_waiter_lock);
static void wqlab_watchdog_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(wqlab_watchdog, wqlab_watchdog_fn);

static void wqlab_wake_items(void)
{
	struct wqlab_item *item;
	u32 pos = 0;

	mutex_lock(&wqlab_lock);
	while ((item = wqlab_item_next(&pos)))
		wake_up_all(&item->wait);
	mutex_unlock(&wqlab_lock);
}

static void wqlab_watchdog_fn(struct work_struct *work)
{
	struct wqlab_waiter *w;
	unsigned long irqflags;
	unsigned int killed = 0;
	bool again;

	spin_lock(&wqlab_waiter_lock);
	list_for_each_entry(w, &wqlab_waiters, node) {
		if (!w->aborted && fatal_signal_pending(w->task)) {
			w->aborted = true;
			killed++;
		}
	}
	again = !list_empty(&wqlab_waiters);
	spin_unlock(&wqlab_waiter_lock);

	if (killed) {
		spin_lock_irqsave(&wqlab_rec_lock, irqflags);
		wqlab_aborts += killed;
		spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
		atomic64_add(killed, &wqlab_stats.aborts);
		pr_info("%u killed command(s) waiting: runs cut short, no requeue until they return\n",
			killed);
		wqlab_wake_items();
	}
	if (again)
		schedule_delayed_work(&wqlab_watchdog,
				      msecs_to_jiffies(WQLAB_WATCHDOG_MS));
}

/**
 * wqlab_wait_begin() - drop wqlab_lock for a blocking workqueue call
 * @w: on the caller's stack until wqlab_wait_end()
 *
 * Context: wqlab_lock held; released.
 */
void wqlab_wait_begin(struct wqlab_waiter *w)
{
	w->task = current;
	w->aborted = false;
	spin_lock(&wqlab_waiter_lock);
	if (list_empty(&wqlab_waiters))
		schedule_delayed_work(&wqlab_watchdog,
				      msecs_to_jiffies(WQLAB_WATCHDOG_MS));
	list_add(&w->node, &wqlab_waiters);
	spin_unlock(&wqlab_waiter_lock);
	mutex_unlock(&wqlab_lock);
	/* A netlink command run from its queue is accepted now: let it be acked. */
	wqlab_nl_waiting();
}

/**
 * wqlab_wait_end() - retake wqlab_lock after a blocking call
 * @w: as given to wqlab_wait_begin()
 *
 * Context: takes wqlab_lock.
 */
void wqlab_wait_end(struct wqlab_waiter *w)
{
	unsigned long irqflags;
	bool aborted;

	spin_lock(&wqlab_waiter_lock);
	list_del(&w->node);
	aborted = w->aborted;
	spin_unlock(&wqlab_waiter_lock);
	if (aborted) {
		spin_lock_irqsave(&wqlab_rec_lock, irqflags);
		wqlab_aborts--;
		spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	}
	mutex_lock(&wqlab_lock);
}

/* ---- items ------------------------------------------------------------- */

static void wqlab_item_init(struct wqlab_item *item, u32 id, bool delayed)
{
	item->id = id;
	item->delayed = delayed;
	init_waitqueue_head(&item->wait);
	item->rec.req_cpu = WORK_CPU_UNBOUND;
	item->rec.cpu = -1;
	item->rec.state = WQLAB_ST_IDLE;
	strscpy(item->rec.comm, "-", sizeof(item->rec.comm));
}

/**
 * wqlab_item_find() - look an item up by id
 * @id: item id
 *
 * Context: wqlab_lock held.
 * Return: the item, or NULL.
 */
struct wqlab_item *wqlab_item_find(u32 id)
{
	lockdep_assert_held(&wqlab_lock);
	if (id < ARRAY_SIZE(wqlab_static_items))
		return &wqlab_static_items[id];
	id -= ARRAY_SIZE(wqlab_static_items);
	if (id >= wqlab_max_items)
		return NULL;
	return wqlab_pool[id];
}

/**
 * wqlab_item_next() - iterate over live items
 * @pos: cursor, start at 0
 *
 * Context: wqlab_lock held.
 * Return: the next live item, or NULL at the end.
 */
struct wqlab_item *wqlab_item_next(u32 *pos)
{
	struct wqlab_item *item;

	lockdep_assert_held(&wqlab_lock);
	while (*pos < ARRAY_SIZE(wqlab_static_items) + wqlab_max_items) {
		item = wqlab_item_find((*pos)++);
		if (item)
			return item;
	}
	return NULL;
}

static void wqlab_item_set_class(struct wqlab_item *item, bool bh);

/**
 * wqlab_item_new() - allocate a dynamic item (INIT_WORK/INIT_DELAYED_WORK)
 * @delayed: a delayed_work item
 * @id: the new id
 *
 * Context: wqlab_lock held.
 * Return: 0, -ENOSPC when the pool is full, -ENOMEM.
 */
int wqlab_item_new(bool delayed, u32 *id)
{
	struct wqlab_item *item;
	unsigned int i;

	lockdep_assert_held(&wqlab_lock);
	for (i = 0; i < wqlab_max_items; i++)
		if (!wqlab_pool[i])
			break;
	if (i == wqlab_max_items)
		return -ENOSPC;
	item = kzalloc(sizeof(*item), GFP_KERNEL);
	if (!item)
		return -ENOMEM;
	wqlab_item_init(item, i + ARRAY_SIZE(wqlab_static_items), delayed);
	if (delayed) {
		INIT_DELAYED_WORK(&item->u.dwork, wqlab_dwork_fn);
		item->dwork = &item->u.dwork;
		item->work = &item->u.dwork.work;
	} else {
		INIT_WORK(&item->u.work, wqlab_work_fn);
		item->work = &item->u.work;
	}
	/* one lockdep class for every dynamic item on a thread queue */
	wqlab_item_set_class(item, false);
	wqlab_pool[i] = item;
	*id = item->id;
	return 0;
}

/*
 * Is the item pending or a run of it in flight? work_busy() sees the pending
 * bit and, on the last pool, the moment between the kernel taking the item
 * off its queue and the function starting; our own count covers the whole
 * work function. Either takes R or a pool lock.
 */
static bool wqlab_item_busy(struct wqlab_item *item)
{
	unsigned long irqflags;
	unsigned int runs;

	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	runs = item->rec.active_runs;
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	return runs || work_busy(item->work);
}

/*
 * Is the item pending, running, or used by a blocking command? (A sync cancel
 * or disable in flight holds ->users too.)
 */
static bool wqlab_item_in_use(struct wqlab_item *item)
{
	return item->users || wqlab_item_busy(item);
}

/**
 * wqlab_item_free() - free a dynamic item
 * @item: the item
 *
 * Context: wqlab_lock held.
 * Return: 0, -EINVAL for a static item, -EBUSY if pending/running/in use.
 */
int wqlab_item_free(struct wqlab_item *item)
{
	unsigned long irqflags;

	lockdep_assert_held(&wqlab_lock);
	if (item->is_static)
		return -EINVAL;
	if (wqlab_item_in_use(item))
		return -EBUSY;
	wqlab_pool[item->id - ARRAY_SIZE(wqlab_static_items)] = NULL;
	/*
	 * Idle: not pending (so no timer), no run in flight, and only a run
	 * requeues, so nothing can queue it again. No cancel_*_sync() here: from
	 * 6.10 it takes a unit of the disable count, which may be full.
	 */
	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	item->rec.target = NULL;
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	kfree(item);
	return 0;
}

/**
 * wqlab_item_reset() - clear an idle item's record
 * @item: the item
 *
 * Context: wqlab_lock held.
 * Return: 0, or -EBUSY if the item is pending, running or in use.
 */
int wqlab_item_reset(struct wqlab_item *item)
{
	unsigned long irqflags;
	u64 seq;

	lockdep_assert_held(&wqlab_lock);
	if (wqlab_item_in_use(item))
		return -EBUSY;
	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	/* ->release_seq only ever grows: a run's wait compares against it. */
	seq = item->rec.release_seq;
	memset(&item->rec, 0, sizeof(item->rec));
	item->rec.release_seq = seq;
	item->rec.req_cpu = WORK_CPU_UNBOUND;
	item->rec.cpu = -1;
	strscpy(item->rec.comm, "-", sizeof(item->rec.comm));
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	return 0;
}

/**
 * wqlab_item_release() - let a blocked run of @item go on
 * @item: the item
 *
 * The release is latched until the next queueing, so releasing before the
 * run blocks is not lost.
 *
 * Return: true if a run was blocked at that moment.
 */
bool wqlab_item_release(struct wqlab_item *item)
{
	unsigned long irqflags;
	bool was_blocked;

	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	/* ->blocked, not ->state: a queueing after the run blocked sets "queued" */
	was_blocked = item->rec.blocked;
	item->rec.blocked = false;
	item->rec.released = true;
	item->rec.release_seq++;
	if (item->rec.state == WQLAB_ST_BLOCKED)
		item->rec.state = WQLAB_ST_RUNNING;
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	wake_up_all(&item->wait);
	atomic64_inc(&wqlab_stats.releases);
	return was_blocked;
}

/* Would the item block (now or when it runs) without a `release`? */
bool wqlab_item_busy_blocking(struct wqlab_item *item)
{
	unsigned long irqflags;
	bool blocking;

	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	blocking = item->rec.blocked ||
		   (item->rec.beh.block && !item->rec.released);
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	return blocking && wqlab_item_busy(item);
}

/* Record that a cancel call took the item off its queue. */
void wqlab_item_canceled(struct wqlab_item *item, bool canceled)
{
	unsigned long irqflags;

	if (!canceled)
		return;
	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	item->rec.state = WQLAB_ST_CANCELED;
	item->rec.requeue_left = 0;
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
}

#ifdef CONFIG_LOCKDEP
static struct lock_class_key wqlab_thread_key, wqlab_bh_key;
#endif

/*
 * lockdep keys a work item's (work_completion) map by the INIT_WORK call
 * site: every dynamic item shares one class. A class seen both in softirq
 * (a BH queue runs the function there) and in a worker thread is a lockdep
 * "inconsistent lock state" report, although the items differ. An item takes
 * the class of the kind of queue it goes to, and may change kind only while
 * nothing uses it: pending, running, or a flush/cancel in flight would see
 * the map change under it.
 *
 * Return: 0, or -EBUSY if the item is in use by the other kind of queue.
 */
static void wqlab_item_set_class(struct wqlab_item *item, bool bh)
{
#ifdef CONFIG_LOCKDEP
	if (bh)
		lockdep_init_map(&item->work->lockdep_map,
				 "(work_completion)(wqlab bh item)", &wqlab_bh_key, 0);
	else
		lockdep_init_map(&item->work->lockdep_map,
				 "(work_completion)(wqlab item)", &wqlab_thread_key, 0);
#endif
	item->bh_class = bh;
}

static int wqlab_item_class(struct wqlab_item *item, const struct wqlab_wq *wq)
{
	if (item->bh_class == wq->bh)
		return 0;
	if (wqlab_item_in_use(item))
		return -EBUSY;
	wqlab_item_set_class(item, wq->bh);
	return 0;
}

/**
 * wqlab_item_queue() - queue an item with the API named by @op
 * @item: the item (its kind checked by the caller)
 * @wq: target queue (the "system" queue for schedule_*)
 * @op: which API to call
 * @cpu: cpu for the *_on variants
 * @delay: delay in jiffies for delayed variants
 * @beh: behaviour to record if the call queues the item
 * @queued: the API's bool result
 *
 * The behaviour, target and record change only if the call queued the item
 * (mod_delayed_work always queues). The call is made under R, so the work
 * function never sees a half-written behaviour.
 *
 * An item is on one queue at a time: the kernel keeps an item from running
 * twice at once only while it stays on one queue, so queueing it onto another
 * queue while it is pending there or a run from there is in flight is
 * refused.
 *
 * Context: wqlab_lock held.
 * Return: 0, or -EBUSY if @wq is being drained, the item is pending on or
 * running from another queue, or the item is in use (pending, running, a
 * flush or cancel in flight) and @wq is of the other kind (BH or not).
 */
int wqlab_item_queue(struct wqlab_item *item, struct wqlab_wq *wq,
		     enum wqlab_qop op, int cpu, unsigned long delay,
		     const struct wqlab_behave *beh, bool *queued)
{
	struct wqlab_record old;
	struct wqlab_wq *run_wq;
	unsigned long irqflags;
	unsigned int busy;
	int req_cpu = WORK_CPU_UNBOUND;
	bool ret = false;

	lockdep_assert_held(&wqlab_lock);
	if (wq->drainers)
		return -EBUSY;
	if (wqlab_item_class(item, wq))
		return -EBUSY;

	switch (op) {
	case WQLAB_Q_SCHEDULE_WORK_ON:
	case WQLAB_Q_SCHEDULE_DELAYED_WORK_ON:
	case WQLAB_Q_QUEUE_WORK_ON:
	case WQLAB_Q_QUEUE_DELAYED_WORK_ON:
	case WQLAB_Q_MOD_DELAYED_WORK_ON:
		req_cpu = cpu;
		break;
	default:
		break;
	}

	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	old = item->rec;
	/*
	 * The queue the item is on: that of a run in flight (ours from the
	 * function's start), else the last queueing's while it is pending or
	 * between the kernel dequeueing it and the function's start. Pending
	 * counts too: a worker may dequeue it right after this check, and
	 * queueing it elsewhere then would start a second run beside that one
	 * (the fuzzer saw it on 6.12). work_busy() tests PENDING before it
	 * looks for a worker, and under R nothing here can make a not-pending
	 * item pending or end a run, so one call sees the item on its queue
	 * or idle. (R -> pool lock is the order every queueing call here
	 * already takes.)
	 */
	busy = old.active_runs ? 0 : work_busy(item->work);
	run_wq = old.active_runs ? old.run_wq : busy ? old.target : NULL;
	if (run_wq && run_wq != wq) {
		spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
		return -EBUSY;
	}

	item->rec.target = wq;
	item->rec.beh = *beh;
	item->rec.req_cpu = req_cpu;
	item->rec.delay = delay;
	item->rec.requeue_left = beh->requeue;
	item->rec.released = false;
	item->rec.data_queue[0] = atomic_long_read(&item->work->data);
	item->rec.busy_queue = busy;

	switch (op) {
	case WQLAB_Q_SCHEDULE_WORK:
		ret = schedule_work(item->work);
		break;
	case WQLAB_Q_SCHEDULE_WORK_ON:
		ret = schedule_work_on(cpu, item->work);
		break;
	case WQLAB_Q_SCHEDULE_DELAYED_WORK:
		ret = schedule_delayed_work(item->dwork, delay);
		break;
	case WQLAB_Q_SCHEDULE_DELAYED_WORK_ON:
		ret = schedule_delayed_work_on(cpu, item->dwork, delay);
		break;
	case WQLAB_Q_QUEUE_WORK:
		ret = queue_work(wq->wq, item->work);
		break;
	case WQLAB_Q_QUEUE_WORK_ON:
		ret = queue_work_on(cpu, wq->wq, item->work);
		break;
	case WQLAB_Q_QUEUE_DELAYED_WORK:
		ret = queue_delayed_work(wq->wq, item->dwork, delay);
		break;
	case WQLAB_Q_QUEUE_DELAYED_WORK_ON:
		ret = queue_delayed_work_on(cpu, wq->wq, item->dwork, delay);
		break;
	case WQLAB_Q_MOD_DELAYED_WORK:
		ret = mod_delayed_work(wq->wq, item->dwork, delay);
		break;
	case WQLAB_Q_MOD_DELAYED_WORK_ON:
		ret = mod_delayed_work_on(cpu, wq->wq, item->dwork, delay);
		break;
	case WQLAB_Q_ENABLE_AND_QUEUE_WORK:
		ret = wqlab_enable_and_queue_work(wq->wq, item->work);
		break;
	}

	if (ret || op == WQLAB_Q_MOD_DELAYED_WORK ||
	    op == WQLAB_Q_MOD_DELAYED_WORK_ON) {
		item->rec.data_queue[1] = atomic_long_read(&item->work->data);
		item->rec.queued_ns = ktime_get_ns();
		item->rec.state = WQLAB_ST_QUEUED;
	} else {
		item->rec = old;
	}
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	*queued = ret;
	return 0;
}

/* ---- workqueues -------------------------------------------------------- */

/**
 * wqlab_wq_find() - look a queue up by name
 * @name: custom or system queue name
 *
 * Context: wqlab_lock held.
 * Return: the queue, or NULL (unknown, absent on this kernel, or dying).
 */
struct wqlab_wq *wqlab_wq_find(const char *name)
{
	unsigned int i;

	lockdep_assert_held(&wqlab_lock);
	for (i = 0; i < ARRAY_SIZE(wqlab_sys_wqs); i++)
		if (wqlab_sys_wqs[i].wq && !strcmp(wqlab_sys_wqs[i].name, name))
			return &wqlab_sys_wqs[i];
	for (i = 0; i < WQLAB_MAX_WQS; i++)
		if (wqlab_wqs[i] && !wqlab_wqs[i]->dying &&
		    !strcmp(wqlab_wqs[i]->name, name))
			return wqlab_wqs[i];
	return NULL;
}

/*
 * Longest name a custom queue may have: "wqlab_<name>" must fit the kernel's
 * WQ_NAME_LEN, which truncates silently (24 bytes before v6.8, 32 from
 * v6.8, commit 31c89007285d "workqueue.c: Increase workqueue name length"):
 * two long names would collide in sysfs and `kname=` would lie.
 */
unsigned int wqlab_wq_name_max(void)
{
	unsigned int kmax = WQLAB_KWQ_NAME_LEN - 1 - (sizeof("wqlab_") - 1);

	return min_t(unsigned int, kmax, WQLAB_NAME_MAX);
}

/*
 * The queue schedule_*() use: system_wq, or system_percpu_wq where the
 * kernel's schedule_*() queue there (compat.h). Recorded as the item's
 * queue, it keeps the one-queue rule true to what the kernel does.
 */
struct wqlab_wq *wqlab_wq_system(void)
{
	unsigned int i;

	if (WQLAB_SCHEDULE_WQ_PERCPU)
		for (i = 0; i < ARRAY_SIZE(wqlab_sys_wqs); i++)
			if (wqlab_sys_wqs[i].wq &&
			    wqlab_sys_wqs[i].wq == wqlab_system_percpu_wq())
				return &wqlab_sys_wqs[i];
	return &wqlab_sys_wqs[0];
}

/**
 * wqlab_wq_create() - create a custom queue named wqlab_<name>
 * @name: validated name
 * @how: "create_workqueue", "create_singlethread_workqueue",
 *       "alloc_workqueue" or "alloc_ordered_workqueue"
 * @flags: validated WQLAB_WQ_* (alloc_* only)
 * @max_active: validated max_active (alloc_workqueue only)
 *
 * Context: wqlab_lock held.
 * Return: 0, -EEXIST, -ENOSPC, -ENOMEM.
 */
int wqlab_wq_create(const char *name, const char *how, u32 flags,
		    u32 max_active)
{
	char kname[WQLAB_NAME_LEN + 8];
	struct wqlab_wq *wq;
	unsigned int i, slot = WQLAB_MAX_WQS;
	unsigned int kflags = wqlab_kflags(flags);

	lockdep_assert_held(&wqlab_lock);
	for (i = 0; i < WQLAB_MAX_WQS; i++) {
		if (!wqlab_wqs[i]) {
			if (slot == WQLAB_MAX_WQS)
				slot = i;
			continue;
		}
		/* A dying queue still owns its kernel (and sysfs) name. */
		if (!strcmp(wqlab_wqs[i]->name, name))
			return -EEXIST;
	}
	if (slot == WQLAB_MAX_WQS)
		return -ENOSPC;

	wq = kzalloc(sizeof(*wq), GFP_KERNEL);
	if (!wq)
		return -ENOMEM;
	strscpy(wq->name, name, sizeof(wq->name));
	snprintf(kname, sizeof(kname), "wqlab_%s", name);
	wq->how = how;
	wq->flags = flags;
	wq->max_active = max_active;

	if (!strcmp(how, "create_workqueue")) {
		wq->wq = create_workqueue(kname);
		wq->max_active = 1;
	} else if (!strcmp(how, "create_singlethread_workqueue")) {
		wq->wq = create_singlethread_workqueue(kname);
		wq->ordered = true;
		wq->max_active = 1;
	} else if (!strcmp(how, "alloc_ordered_workqueue")) {
		wq->wq = alloc_ordered_workqueue("%s", kflags, kname);
		wq->ordered = true;
		wq->max_active = 1;
	} else {
		wq->wq = alloc_workqueue("%s", kflags, max_active, kname);
		wq->bh = flags & WQLAB_WQ_BH;
	}
	if (!wq->wq) {
		kfree(wq);
		return -ENOMEM;
	}
	wqlab_wqs[slot] = wq;
	wqlab_nl_event_wq(WQLAB_EV_WQ_CREATE, wq);
	return 0;
}

/*
 * Queue at once every wqlab delayed item whose timer aims at @wq, before the
 * kernel starts draining it: destroy_workqueue() does not wait for timers
 * (use-after-free when one fires later), and a timer that fires into a
 * draining queue WARNs and leaves the item pending for ever. mod_delayed_work()
 * also waits out a timer callback already in flight. Called with M held,
 * after ->dying or ->drainers was set under R, so no command or requeue arms a
 * new timer for @wq; only when the kernel is not draining @wq yet (the first
 * drainer, or destroy, which refuses while a drain runs).
 */
static void wqlab_wq_fire_timers(struct wqlab_wq *wq)
{
	struct wqlab_item *item;
	unsigned long irqflags;
	bool aimed;
	u32 pos = 0;

	lockdep_assert_held(&wqlab_lock);
	while ((item = wqlab_item_next(&pos))) {
		if (!item->delayed)
			continue;
		spin_lock_irqsave(&wqlab_rec_lock, irqflags);
		aimed = item->rec.target == wq && delayed_work_pending(item->dwork);
		if (aimed)
			mod_delayed_work(wq->wq, item->dwork, 0);
		spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	}
}

/* Does a blocked (or about to block) wqlab item sit on @wq? M held. */
bool wqlab_wq_has_blocked(struct wqlab_wq *wq)
{
	struct wqlab_item *item;
	unsigned long irqflags;
	bool on_wq;
	u32 pos = 0;

	lockdep_assert_held(&wqlab_lock);
	while ((item = wqlab_item_next(&pos))) {
		spin_lock_irqsave(&wqlab_rec_lock, irqflags);
		on_wq = item->rec.target == wq;
		spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
		if (on_wq && wqlab_item_busy_blocking(item))
			return true;
	}
	return false;
}

/**
 * wqlab_wq_destroy() - destroy a custom queue
 * @wq: the queue, checked by the caller (custom, no users, nothing blocked)
 *
 * The queue is marked dying (invisible to lookups, no requeue onto it) and
 * wqlab_lock is dropped while destroy_workqueue() drains it.
 *
 * Context: wqlab_lock held; dropped and retaken.
 * Return: 0.
 */
int wqlab_wq_destroy(struct wqlab_wq *wq)
{
	struct wqlab_waiter waiter;
	struct wqlab_item *item;
	unsigned long irqflags;
	unsigned int i;
	u32 pos = 0;

	lockdep_assert_held(&wqlab_lock);
	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	wq->dying = true;
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	wqlab_wq_fire_timers(wq);

	wqlab_wait_begin(&waiter);
	destroy_workqueue(wq->wq);
	wqlab_wait_end(&waiter);

	while ((item = wqlab_item_next(&pos))) {
		spin_lock_irqsave(&wqlab_rec_lock, irqflags);
		if (item->rec.target == wq)
			item->rec.target = NULL;
		spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	}
	for (i = 0; i < WQLAB_MAX_WQS; i++)
		if (wqlab_wqs[i] == wq)
			wqlab_wqs[i] = NULL;
	wqlab_nl_event_wq(WQLAB_EV_WQ_DESTROY, wq);
	kfree(wq);
	return 0;
}

/* The next custom queue from slot *@pos on (M held); NULL at the end. */
struct wqlab_wq *wqlab_wq_next(unsigned int *pos)
{
	lockdep_assert_held(&wqlab_lock);
	for (; *pos < WQLAB_MAX_WQS; (*pos)++)
		if (wqlab_wqs[*pos])
			return wqlab_wqs[(*pos)++];
	return NULL;
}

/* Mark @wq as draining: no queueing from outside, no foreign requeue. */
void wqlab_wq_drain_begin(struct wqlab_wq *wq)
{
	unsigned long irqflags;

	lockdep_assert_held(&wqlab_lock);
	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	wq->drainers++;
	wq->users++;
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
	if (wq->drainers == 1)
		wqlab_wq_fire_timers(wq);
}

void wqlab_wq_drain_end(struct wqlab_wq *wq)
{
	unsigned long irqflags;

	lockdep_assert_held(&wqlab_lock);
	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	wq->drainers--;
	wq->users--;
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
}

/* ---- listings ---------------------------------------------------------- */

/*
 * One token per value in the listings: "%ps" of a module function reads
 * "wqlab_work_fn [wqlab]"; it is split into fn=wqlab_work_fn fn_module=wqlab
 * (fn_module=- for a built-in function).
 */
static void wqlab_fn_name(work_func_t fn, char *name, size_t size,
			  const char **mod)
{
	char *sp, *end;

	snprintf(name, size, "%ps", fn);
	*mod = "-";
	sp = strstr(name, " [");
	end = sp ? strchr(sp, ']') : NULL;
	if (end) {
		*sp = '\0';
		*end = '\0';
		*mod = sp + 2;
	}
}

/* A task comm as one token: blanks, '=', '\\' and non-printables as \xHH. */
static void wqlab_escape(const char *src, char *buf, size_t size)
{
	size_t n = 0;

	for (; *src && n + 5 < size; src++) {
		unsigned char c = *src;

		if (c > ' ' && c < 0x7f && c != '=' && c != '\\')
			buf[n++] = c;
		else
			n += scnprintf(buf + n, size - n, "\\x%02x", c);
	}
	buf[n] = '\0';
}

int wqlab_works_show(struct seq_file *m, void *v)
{
	char fn[KSYM_SYMBOL_LEN], comm[4 * TASK_COMM_LEN + 1];
	const char *fn_mod;
	struct wqlab_item *item;
	struct wqlab_record rec;
	unsigned long irqflags;
	unsigned int busy;
	u32 pos = 0;

	mutex_lock(&wqlab_lock);
	while ((item = wqlab_item_next(&pos))) {
		spin_lock_irqsave(&wqlab_rec_lock, irqflags);
		rec = item->rec;
		spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
		busy = work_busy(item->work);
		wqlab_fn_name(item->work->func, fn, sizeof(fn), &fn_mod);
		wqlab_escape(rec.comm, comm, sizeof(comm));
		seq_printf(m, "id=%u kind=%s fn=%s fn_module=%s ptr=%p state=%s pending=%d running=%d users=%u",
			   item->id, item->delayed ? "delayed" : "work",
			   fn, fn_mod, item->work,
			   wqlab_state_name(rec.state),
			   !!(busy & WORK_BUSY_PENDING),
			   !!(busy & WORK_BUSY_RUNNING), item->users);
		seq_printf(m, " wq=%s req_cpu=%d delay_jiffies=%lu",
			   rec.target ? rec.target->name : "-", rec.req_cpu,
			   rec.delay);
		seq_printf(m, " sleep_ms=%u spin_us=%u requeue=%u block=%d requeue_left=%u released=%d blocked=%d",
			   rec.beh.sleep_ms, rec.beh.spin_us, rec.beh.requeue,
			   rec.beh.block, rec.requeue_left, rec.released,
			   rec.blocked);
		seq_printf(m, " blocked_seq=%llu block_release_seq=%llu release_seq=%llu active_runs=%u",
			   rec.blocked_seq, rec.block_release_seq,
			   rec.release_seq, rec.active_runs);
		seq_printf(m, " runs=%llu seq=%llu cpu=%d pid=%d comm=%s queued_ns=%llu started_ns=%llu finished_ns=%llu\n",
			   rec.runs, rec.seq, rec.cpu, rec.pid, comm,
			   rec.queued_ns, rec.started_ns, rec.finished_ns);
	}
	mutex_unlock(&wqlab_lock);
	return 0;
}

int wqlab_workqueues_show(struct seq_file *m, void *v)
{
	char flags[128];
	struct wqlab_wq *wq;
	unsigned int i;

	mutex_lock(&wqlab_lock);
	for (i = 0; i < WQLAB_MAX_WQS; i++) {
		wq = wqlab_wqs[i];
		if (!wq)
			continue;
		wqlab_flags_format(wq->flags, flags, sizeof(flags));
		seq_printf(m, "name=%s kname=wqlab_%s how=%s flags=%s max_active=%u ordered=%d bh=%d users=%u draining=%d dying=%d\n",
			   wq->name, wq->name, wq->how, flags, wq->max_active,
			   wq->ordered, wq->bh, wq->users, !!wq->drainers,
			   wq->dying);
	}
	mutex_unlock(&wqlab_lock);
	return 0;
}

int wqlab_stats_show(struct seq_file *m, void *v)
{
	unsigned int i, nr_wqs = 0, nr_items = 0;
	u32 pos = 0;

	mutex_lock(&wqlab_lock);
	while (wqlab_item_next(&pos))
		nr_items++;
	for (i = 0; i < WQLAB_MAX_WQS; i++)
		nr_wqs += !!wqlab_wqs[i];
	mutex_unlock(&wqlab_lock);

	seq_printf(m, "cmds_ok=%lld\n", atomic64_read(&wqlab_stats.cmds_ok));
	seq_printf(m, "cmds_failed=%lld\n",
		   atomic64_read(&wqlab_stats.cmds_failed));
	seq_printf(m, "runs=%lld\n", atomic64_read(&wqlab_stats.runs));
	seq_printf(m, "requeues=%lld\n", atomic64_read(&wqlab_stats.requeues));
	seq_printf(m, "blocks=%lld\n", atomic64_read(&wqlab_stats.blocks));
	seq_printf(m, "releases=%lld\n", atomic64_read(&wqlab_stats.releases));
	seq_printf(m, "block_timeouts=%lld\n",
		   atomic64_read(&wqlab_stats.block_timeouts));
	seq_printf(m, "aborts=%lld\n", atomic64_read(&wqlab_stats.aborts));
	seq_printf(m, "run_overlaps=%lld\n",
		   atomic64_read(&wqlab_stats.run_overlaps));
	seq_printf(m, "items=%u\n", nr_items);
	seq_printf(m, "workqueues=%u\n", nr_wqs);
	wqlab_nl_stats_show(m);
	return 0;
}

int wqlab_features_show(struct seq_file *m, void *v)
{
	unsigned int i;
	int n = 0;

	seq_printf(m, "abi_version=%d\n", WQLAB_ABI_VERSION);
	seq_printf(m, "kernel=%s\n", init_utsname()->release);
	seq_printf(m, "work_cpu_unbound=%d\n", WORK_CPU_UNBOUND);
	seq_printf(m, "nr_cpu_ids=%u\n", nr_cpu_ids);
	seq_printf(m, "hz=%d\n", HZ);
	seq_printf(m, "preempt_rt=%d\n", IS_ENABLED(CONFIG_PREEMPT_RT));
	seq_printf(m, "wq_max_active=%d\n", WQ_MAX_ACTIVE);
	seq_printf(m, "wq_name_max=%u\n", wqlab_wq_name_max());
	seq_printf(m, "block_max_ms=%u\n", wqlab_block_max_ms);
	seq_printf(m, "max_items=%u\n", wqlab_max_items);
	seq_printf(m, "max_workqueues=%d\n", WQLAB_MAX_WQS);
	seq_printf(m, "wq_bh=%d\n", WQLAB_KWQ_BH != 0);
	seq_printf(m, "wq_percpu=%d\n", WQLAB_KWQ_PERCPU != 0);
	seq_printf(m, "system_percpu_wq=%d\n", wqlab_system_percpu_wq() != NULL);
	seq_printf(m, "schedule_wq=%s\n", wqlab_wq_system()->name);
	seq_printf(m, "disable_work=%d\n", WQLAB_DISABLE_WORK);
	seq_printf(m, "enable_and_queue_work=%d\n", WQLAB_ENABLE_AND_QUEUE_WORK);
#ifdef WQLAB_HAVE_CANCEL_WORK
	seq_puts(m, "cancel_work=1\n");
#else
	seq_puts(m, "cancel_work=0\n");
#endif
	seq_printf(m, "flush_scheduled_work=%d\n", WQLAB_FLUSH_SCHEDULED_WORK);
	seq_printf(m, "flush_scheduled_work_impl=%s\n",
		   WQLAB_FLUSH_SCHEDULED_WORK ? "system_wq" : "wqlab_items");
	seq_printf(m, "unbound_max_active_1_ordered=%d\n",
		   WQLAB_UNBOUND_MAX_ACTIVE_1_ORDERED);
	seq_puts(m, "system_queues=");
	for (i = 0; i < ARRAY_SIZE(wqlab_sys_wqs); i++)
		if (wqlab_sys_wqs[i].wq)
			seq_printf(m, "%s%s", n++ ? "," : "",
				   wqlab_sys_wqs[i].name);
	seq_puts(m, "\n");
	return 0;
}

/* ---- init/exit --------------------------------------------------------- */

int wqlab_work_init(void)
{
	struct workqueue_struct *sys[] = {
		system_wq, system_highpri_wq, system_long_wq,
		system_unbound_wq, system_freezable_wq,
		system_power_efficient_wq, system_freezable_power_efficient_wq,
		wqlab_system_bh_wq(), wqlab_system_bh_highpri_wq(),
		wqlab_system_percpu_wq(), wqlab_system_dfl_wq(),
	};
	unsigned int i;

	BUILD_BUG_ON(ARRAY_SIZE(sys) != ARRAY_SIZE(wqlab_sys_wqs));
	for (i = 0; i < ARRAY_SIZE(wqlab_sys_wqs); i++) {
		wqlab_sys_wqs[i].wq = sys[i];
		wqlab_sys_wqs[i].how = "system";
		wqlab_sys_wqs[i].is_system = true;
	}

	wqlab_pool = kcalloc(wqlab_max_items, sizeof(*wqlab_pool), GFP_KERNEL);
	if (!wqlab_pool)
		return -ENOMEM;

	wqlab_item_init(&wqlab_static_items[0], WQLAB_ID_STATIC_WORK, false);
	wqlab_static_items[0].is_static = true;
	wqlab_static_items[0].work = &wqlab_static_work;
	wqlab_item_init(&wqlab_static_items[1], WQLAB_ID_STATIC_DWORK, true);
	wqlab_static_items[1].is_static = true;
	wqlab_static_items[1].dwork = &wqlab_static_dwork;
	wqlab_static_items[1].work = &wqlab_static_dwork.work;
	return 0;
}

/*
 * A disabled item cannot be pending (disabling cancels, and queueing it does
 * nothing), only still running: wait for that run with flush_work(), which
 * needs no unit of the disable count (cancel_*_sync() would WARN on a full
 * one).
 */
static void wqlab_item_stop(struct wqlab_item *item)
{
	wake_up_all(&item->wait);
	if (item->disabled)
		flush_work(item->work);
	else if (item->delayed)
		cancel_delayed_work_sync(item->dwork);
	else
		cancel_work_sync(item->work);
}

/**
 * wqlab_work_stop() - refuse new commands (-ESHUTDOWN), cut every run short
 * (spin, sleep, block) and end every chain, so that commands in flight
 * return soon. Idempotent.
 *
 * Context: process; takes wqlab_lock.
 */
void wqlab_work_stop(void)
{
	struct wqlab_item *item;
	unsigned long irqflags;
	u32 pos = 0;

	spin_lock_irqsave(&wqlab_rec_lock, irqflags);
	wqlab_stopping = true;
	spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);

	mutex_lock(&wqlab_lock);
	while ((item = wqlab_item_next(&pos)))
		wake_up_all(&item->wait);
	mutex_unlock(&wqlab_lock);
}

/**
 * wqlab_work_exit() - stop everything: no requeue, release blocked runs,
 * cancel every item, destroy every custom queue, free everything.
 *
 * Context: no command can be running (every plane is gone).
 */
void wqlab_work_exit(void)
{
	struct wqlab_item *item;
	unsigned int i;
	u32 pos = 0;

	/* No command is left (every plane is gone), so no waiter either. */
	cancel_delayed_work_sync(&wqlab_watchdog);
	wqlab_work_stop();

	mutex_lock(&wqlab_lock);
	while ((item = wqlab_item_next(&pos)))
		wqlab_item_stop(item);
	for (i = 0; i < WQLAB_MAX_WQS; i++) {
		if (!wqlab_wqs[i])
			continue;
		destroy_workqueue(wqlab_wqs[i]->wq);
		kfree(wqlab_wqs[i]);
		wqlab_wqs[i] = NULL;
	}
	for (i = 0; i < wqlab_max_items; i++) {
		kfree(wqlab_pool[i]);
		wqlab_pool[i] = NULL;
	}
	mutex_unlock(&wqlab_lock);
	kfree(wqlab_pool);
	wqlab_pool = NULL;
}
