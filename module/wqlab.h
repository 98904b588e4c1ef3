/* SPDX-License-Identifier: GPL-2.0 */
/*
 * wqlab private header: work items, workqueues, the command table.
 *
 * Files: wqlab_main.c (init/exit, debugfs, misc device, dispatch),
 * wqlab_cmds.c (command table, text parser, handlers), wqlab_netlink.c
 * (generic netlink family and event stream), wqlab_work.c (items,
 * behaviours, records, queues). include/uapi/wqlab.h is the ABI.
 *
 * Locking legend (field tags below use these letters):
 *
 * M: wqlab_lock (mutex). Serialises commands and configuration: the item
 *    pool, the workqueue registry, item->users, wq->users, wq->drainers.
 *    Commands that block in the workqueue API (flush_*, cancel_*_sync,
 *    disable_*_sync, drain_workqueue, destroy_workqueue) take a reference
 *    (->users) under M and drop M while blocking, so that `release`, which
 *    takes M briefly, can always unblock them.
 * R: wqlab_rec_lock (spinlock, irqsave). Records and behaviours touched by
 *    the work functions (which may run in BH context on WQ_BH queues), the
 *    requeue target of an item, wqlab_stopping, wq->dying/draining as seen
 *    by the work function. Never sleep under R. Queueing calls are made under
 *    R (they are IRQ-safe) so a work function never sees a half-written
 *    behaviour.
 * W: wqlab_waiter_lock (spinlock). The list of commands waiting in a
 *    blocking call, read by the watchdog that cuts runs short for a killed
 *    one (wqlab_work.c, "killable waits").
 * C: const after creation (before publication under M).
 *
 * Lock order: M -> R; W alone (nothing is taken under it). Work functions
 * take only R.
 */
#ifndef _WQLAB_H
#define _WQLAB_H

#include <linux/list.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "compat.h"
#include "uapi/wqlab.h"

#define WQLAB_MAX_ITEMS_DFL	64
#define WQLAB_MAX_ITEMS_MAX	1024
#define WQLAB_MAX_WQS		32
/* Busy-wait allowed in a BH (softirq) work function, in microseconds. */
#define WQLAB_BH_SPIN_US_MAX	10000
/*
 * The kernel's per-item disable count (WORK_OFFQ_DISABLE_BITS, 16 bits, 6.10+):
 * disables by commands plus sync cancels/disables in flight stay below it.
 */
#define WQLAB_DISABLE_LIMIT	0xffffU
/*
 * How long a block=1 run waits for `release` (module parameter block_max_ms):
 * bounded below the hung-task detector's 120 s, so a forgotten release or a
 * flush of a blocked item never leaves a task in D state for good.
 */
#define WQLAB_BLOCK_MAX_MS_DFL	30000
#define WQLAB_BLOCK_MAX_MS_MAX	100000

extern struct mutex wqlab_lock;
extern spinlock_t wqlab_rec_lock;
extern unsigned int wqlab_max_items;
extern unsigned int wqlab_block_max_ms;

/**
 * struct wqlab_behave - what a work function does when it runs
 * @sleep_ms: sleep (TASK_IDLE, cut short by rmmod)
 * @spin_us: busy-wait
 * @requeue: requeue itself this many times on the same queue
 * @block: block until `release` (first run after each queueing)
 */
struct wqlab_behave {
	u32 sleep_ms;
	u32 spin_us;
	u32 requeue;
	bool block;
};

enum wqlab_state {
	WQLAB_ST_IDLE,
	WQLAB_ST_QUEUED,
	WQLAB_ST_RUNNING,
	WQLAB_ST_BLOCKED,
	WQLAB_ST_DONE,
	WQLAB_ST_CANCELED,
	WQLAB_ST_NR,
};

/**
 * struct wqlab_wq - a workqueue commands can name
 * @name: [C] name as given (custom) or system queue name
 * @wq: [C] the kernel workqueue
 * @flags: [C] WQLAB_WQ_* requested at creation
 * @how: [C] creating API, or "system"
 * @is_system: [C] a kernel system queue (never destroyed, never drained)
 * @ordered: [C] created ordered (max_active cannot change)
 * @bh: [C] executes in BH context (no sleeping behaviours)
 * @max_active: [M] as given at creation or by workqueue_set_max_active
 * @users: [M] blocking commands (flush/drain) using the queue
 * @drainers: [M, read under R] drain_workqueue calls in progress
 * @dying: [M+R to write, either to read] destroy_workqueue in progress
 */
struct wqlab_wq {
	char name[WQLAB_NAME_LEN];
	struct workqueue_struct *wq;
	u32 flags;
	const char *how;
	bool is_system;
	bool ordered;
	bool bh;
	u32 max_active;
	unsigned int users;
	unsigned int drainers;
	bool dying;
};

/**
 * struct wqlab_record - what an item will do and what it did; all [R]
 * @target: queue of the last successful queueing (requeue target)
 * @req_cpu: cpu of the last queueing (WORK_CPU_UNBOUND if none)
 * @delay: delay in jiffies of the last queueing (requeue of delayed items)
 * @beh: behaviour recorded at the last queueing
 * @requeue_left: requeues still to do
 * @released: `release` seen since the last queueing (decides whether a run
 *	      that starts blocks at all)
 * @blocked: a run waits for `release` now (@state may already say "queued"
 *	     if a command queued the item again meanwhile)
 * @blocked_seq: run sequence number of the run that blocked, until that run
 *		 ends (0: none); only its end (or a release) clears @blocked:
 *		 another run's end must not hide a blocked run
 * @block_release_seq: the @release_seq that run waits to see move
 * @release_seq: count of `release` commands; a blocked run waits until it
 *		 changes, so a queueing right after a release (which clears
 *		 @released) cannot put an already released run back to sleep
 * @run_wq: queue the running instance was taken from (NULL when none runs)
 * @active_runs: runs of the work function executing now (0 or 1: an item is
 *		 on one queue at a time, so the kernel never runs it twice)
 * @data_run: the work's data word as the last run started (pool id, offq bits)
 * @data_queue: the work's data word before the last queueing call, and after it
 * @busy_queue: work_busy() at that queueing's check (0 while a run was in flight)
 * @state: last known state
 * @queued_ns: ktime_get_ns() of the last queueing
 * @started_ns: ktime_get_ns() when the last run started
 * @finished_ns: ktime_get_ns() when the last run finished
 * @cpu: cpu of the last run (-1: never ran)
 * @pid: worker pid of the last run
 * @comm: worker comm of the last run
 * @runs: number of runs
 * @seq: global sequence number of the last run
 */
struct wqlab_record {
	struct wqlab_wq *target;
	int req_cpu;
	unsigned long delay;
	struct wqlab_behave beh;
	u32 requeue_left;
	bool released;
	bool blocked;
	u64 blocked_seq;
	u64 block_release_seq;
	u64 release_seq;
	struct wqlab_wq *run_wq;
	unsigned int active_runs;
	unsigned long data_run;
	unsigned long data_queue[2];
	unsigned int busy_queue;
	enum wqlab_state state;
	u64 queued_ns;
	u64 started_ns;
	u64 finished_ns;
	int cpu;
	pid_t pid;
	char comm[TASK_COMM_LEN];
	u64 runs;
	u64 seq;
};

/**
 * struct wqlab_item - one work item and its record
 * @id: [C] item id
 * @delayed: [C] a delayed_work item
 * @is_static: [C] id 0/1, DECLARE_WORK / DECLARE_DELAYED_WORK
 * @work: [C] the work_struct (of @dwork for delayed items)
 * @dwork: [C] the delayed_work, NULL for plain items
 * @wait: [C] blocked and sleeping runs wait here
 * @users: [M] blocking commands using the item (work_free refuses)
 * @disabled: [M] disable count given by disable_* commands, so enable_* can
 *	      refuse what the kernel would WARN about (count underflow)
 * @sync_inflight: [M] cancel_*_sync / disable_*_sync calls in flight; from
 *		   6.10 each holds one unit of the kernel's disable count while
 *		   it waits, so @disabled + @sync_inflight must stay within
 *		   the kernel's 16-bit count (else it WARNs "overflowed")
 * @rec: [R] behaviour, requeue target and record
 * @u: storage of dynamic items
 */
struct wqlab_item {
	u32 id;
	bool delayed;
	bool is_static;
	struct work_struct *work;
	struct delayed_work *dwork;
	wait_queue_head_t wait;
	unsigned int users;
	unsigned int disabled;
	unsigned int sync_inflight;
	bool bh_class;		/* [R] lockdep class: a BH queue's (see wqlab_item_class()) */
	struct wqlab_record rec;
	union {
		struct work_struct work;
		struct delayed_work dwork;
	} u;
};

/* How a queueing command queues: the API it calls. */
enum wqlab_qop {
	WQLAB_Q_SCHEDULE_WORK,
	WQLAB_Q_SCHEDULE_WORK_ON,
	WQLAB_Q_SCHEDULE_DELAYED_WORK,
	WQLAB_Q_SCHEDULE_DELAYED_WORK_ON,
	WQLAB_Q_QUEUE_WORK,
	WQLAB_Q_QUEUE_WORK_ON,
	WQLAB_Q_QUEUE_DELAYED_WORK,
	WQLAB_Q_QUEUE_DELAYED_WORK_ON,
	WQLAB_Q_MOD_DELAYED_WORK,
	WQLAB_Q_MOD_DELAYED_WORK_ON,
	WQLAB_Q_ENABLE_AND_QUEUE_WORK,
};

/**
 * struct wqlab_cmd_desc - one entry of the command table
 * @name: command name (text plane)
 * @fn: handler; called with wqlab_lock held, may drop and retake it
 * @nr: ioctl number (WQLAB_NR_*)
 * @allowed: WQLAB_ARG_* the command takes
 * @required: WQLAB_ARG_* the command needs
 * @out: WQLAB_OUT_* extra keys of the result line
 * @waits: may wait for work in the workqueue API (flush, drain, destroy,
 *	   *_sync): the netlink plane runs it from its own queue and answers
 *	   after the ack (wqlab_netlink.c)
 * @help: one-line description
 */
struct wqlab_cmd_desc {
	const char *name;
	int (*fn)(struct wqlab_cmd *cmd);
	u32 nr;
	u32 allowed;
	u32 required;
	u32 out;
	bool waits;
	const char *help;
};

enum wqlab_arg_type { WQLAB_T_U32, WQLAB_T_S32, WQLAB_T_NAME, WQLAB_T_FLAGS };

/**
 * struct wqlab_arg_desc - one argument a command can take
 * @key: text plane key
 * @bit: WQLAB_ARG_* bit (netlink attribute: its number + 1)
 * @type: how it is parsed and validated
 * @off: offset of its field in struct wqlab_cmd
 * @max: largest value (U32), valid bits (FLAGS); 0: checked by the command
 */
struct wqlab_arg_desc {
	const char *key;
	u32 bit;
	enum wqlab_arg_type type;
	size_t off;
	u32 max;
};

#define WQLAB_OUT_ID	(1U << 0)
#define WQLAB_OUT_BUSY	(1U << 1)

/* wqlab_cmds.c */
extern const struct wqlab_cmd_desc wqlab_cmds[];
extern const unsigned int wqlab_nr_cmds;
extern const struct wqlab_arg_desc wqlab_args[];
extern const unsigned int wqlab_nr_args;
const struct wqlab_cmd_desc *wqlab_cmd_by_nr(u32 nr);
int wqlab_cmd_parse(char *line, const struct wqlab_cmd_desc **descp,
		    struct wqlab_cmd *cmd);
int wqlab_cmd_exec(const struct wqlab_cmd_desc *desc, struct wqlab_cmd *cmd);
void wqlab_cmd_undo(const struct wqlab_cmd_desc *desc,
		    const struct wqlab_cmd *cmd);
int wqlab_cmd_format(const struct wqlab_cmd_desc *desc,
		     const struct wqlab_cmd *cmd, char *buf, size_t size);
int wqlab_cmd_help(char *buf, size_t size);

/* wqlab_work.c */
struct wqlab_stats {
	atomic64_t cmds_ok;
	atomic64_t cmds_failed;
	atomic64_t runs;
	atomic64_t requeues;
	atomic64_t blocks;
	atomic64_t releases;
	atomic64_t block_timeouts;
	atomic64_t aborts;
	atomic64_t run_overlaps;
};

/**
 * struct wqlab_waiter - a command waiting in a blocking workqueue call
 * @node: [W] in the watchdog's list
 * @task: [C] the waiting task
 * @aborted: [W] its fatal signal was seen: runs are being cut short for it
 */
struct wqlab_waiter {
	struct list_head node;
	struct task_struct *task;
	bool aborted;
};

void wqlab_wait_begin(struct wqlab_waiter *w);
void wqlab_wait_end(struct wqlab_waiter *w);

extern struct wqlab_stats wqlab_stats;

int wqlab_work_init(void);
void wqlab_work_exit(void);
bool wqlab_is_stopping(void);

struct wqlab_item *wqlab_item_find(u32 id);
int wqlab_item_new(bool delayed, u32 *id);
int wqlab_item_free(struct wqlab_item *item);
int wqlab_item_reset(struct wqlab_item *item);
bool wqlab_item_release(struct wqlab_item *item);
bool wqlab_item_busy_blocking(struct wqlab_item *item);
int wqlab_item_queue(struct wqlab_item *item, struct wqlab_wq *wq,
		     enum wqlab_qop op, int cpu, unsigned long delay,
		     const struct wqlab_behave *beh, bool *queued);
void wqlab_item_canceled(struct wqlab_item *item, bool canceled);
struct wqlab_item *wqlab_item_next(u32 *pos);

struct wqlab_wq *wqlab_wq_find(const char *name);
struct wqlab_wq *wqlab_wq_system(void);
int wqlab_wq_create(const char *name, const char *how, u32 flags,
		    u32 max_active);
int wqlab_wq_destroy(struct wqlab_wq *wq);
bool wqlab_wq_has_blocked(struct wqlab_wq *wq);
unsigned int wqlab_wq_name_max(void);
void wqlab_wq_drain_begin(struct wqlab_wq *wq);
void wqlab_wq_drain_end(struct wqlab_wq *wq);

const char *wqlab_state_name(enum wqlab_state state);
int wqlab_flags_format(u32 flags, char *buf, size_t size);
int wqlab_flags_parse(char *s, u32 *flags);

/* wqlab_netlink.c */
int wqlab_nl_init(void);
void wqlab_nl_exit(void);
void wqlab_nl_event_run(u32 event, const struct wqlab_item *item, u64 seq,
			int cpu, const struct wqlab_wq *wq, u64 time_ns);
void wqlab_nl_event_wq(u32 event, const struct wqlab_wq *wq);
void wqlab_nl_waiting(void);
void wqlab_nl_stats_show(struct seq_file *m);

void wqlab_work_stop(void);
struct wqlab_wq *wqlab_wq_next(unsigned int *pos);

int wqlab_works_show(struct seq_file *m, void *v);
int wqlab_workqueues_show(struct seq_file *m, void *v);
int wqlab_stats_show(struct seq_file *m, void *v);
int wqlab_features_show(struct seq_file *m, void *v);

#endif /* _WQLAB_H */
