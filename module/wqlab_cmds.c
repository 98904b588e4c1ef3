// SPDX-License-Identifier: GPL-2.0
/*
 * wqlab command table, text parser and handlers.
 *
 * One table (wqlab_cmds[]) drives every control plane: the debugfs text
 * plane parses "NAME key=value ..." into a struct wqlab_cmd, the ioctl plane
 * copies one in, the netlink plane (wqlab_netlink.c) fills one from the
 * attributes its policies, derived from this table, admit; all call
 * wqlab_cmd_exec(), which validates the arguments
 * against the table entry and calls the same handler. docs/commands.md is
 * the contract.
 *
 *   exec 3<>/sys/kernel/debug/wqlab/control
 *   echo "work_new delayed=1" >&3; cat <&3        # ret=0 id=2
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpumask.h>
#include <linux/ctype.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/stringify.h>
#include <linux/string.h>

#include "wqlab.h"
#include "wqlab_trace.h"

#define A_ID		WQLAB_ARG_ID
#define A_WQ		WQLAB_ARG_WQ
#define A_NAME		WQLAB_ARG_NAME
#define A_CPU		WQLAB_ARG_CPU
#define A_FLAGS		WQLAB_ARG_FLAGS
#define A_MAXACT	WQLAB_ARG_MAX_ACTIVE
#define A_DELAY		WQLAB_ARG_DELAY_MS
#define A_DELAYED	WQLAB_ARG_DELAYED
/* Behaviour keys, accepted by every queueing command. */
#define A_BEH		(WQLAB_ARG_SLEEP_MS | WQLAB_ARG_SPIN_US | \
			 WQLAB_ARG_REQUEUE | WQLAB_ARG_BLOCK)

/* ---- arguments (every plane) ------------------------------------------ */

/*
 * Keys of the text plane, fields of struct wqlab_cmd, attributes of the
 * netlink plane (WQLAB_A_* is the bit's number + 1) and the largest value
 * each plane's validation admits (0: none given here; the command checks).
 */
const struct wqlab_arg_desc wqlab_args[] = {	/* in the order the help lists them */
	{ "wq", WQLAB_ARG_WQ, WQLAB_T_NAME, offsetof(struct wqlab_cmd, wq), 0 },
	{ "name", WQLAB_ARG_NAME, WQLAB_T_NAME, offsetof(struct wqlab_cmd, name), 0 },
	{ "cpu", WQLAB_ARG_CPU, WQLAB_T_S32, offsetof(struct wqlab_cmd, cpu), 0 },
	{ "id", WQLAB_ARG_ID, WQLAB_T_U32, offsetof(struct wqlab_cmd, id), 0 },
	{ "flags", WQLAB_ARG_FLAGS, WQLAB_T_FLAGS,
	  offsetof(struct wqlab_cmd, flags), WQLAB_WQ_ALL },
	{ "max_active", WQLAB_ARG_MAX_ACTIVE, WQLAB_T_U32,
	  offsetof(struct wqlab_cmd, max_active), WQLAB_MAX_ACTIVE_MAX },
	{ "delay_ms", WQLAB_ARG_DELAY_MS, WQLAB_T_U32,
	  offsetof(struct wqlab_cmd, delay_ms), WQLAB_DELAY_MS_MAX },
	{ "sleep_ms", WQLAB_ARG_SLEEP_MS, WQLAB_T_U32,
	  offsetof(struct wqlab_cmd, sleep_ms), WQLAB_SLEEP_MS_MAX },
	{ "spin_us", WQLAB_ARG_SPIN_US, WQLAB_T_U32,
	  offsetof(struct wqlab_cmd, spin_us), WQLAB_SPIN_US_MAX },
	{ "requeue", WQLAB_ARG_REQUEUE, WQLAB_T_U32,
	  offsetof(struct wqlab_cmd, requeue), WQLAB_REQUEUE_MAX },
	{ "block", WQLAB_ARG_BLOCK, WQLAB_T_U32,
	  offsetof(struct wqlab_cmd, block), 1 },
	{ "delayed", WQLAB_ARG_DELAYED, WQLAB_T_U32,
	  offsetof(struct wqlab_cmd, delayed), 1 },
};

const unsigned int wqlab_nr_args = ARRAY_SIZE(wqlab_args);

/* ---- helpers for handlers (all called with wqlab_lock held) ------------ */

static int wqlab_get_item(const struct wqlab_cmd *cmd, int kind,
			  struct wqlab_item **itemp)
{
	struct wqlab_item *item = wqlab_item_find(cmd->id);

	if (!item)
		return -ENOENT;
	/* kind: 0 plain only, 1 delayed only, 2 either */
	if ((kind == 0 && item->delayed) || (kind == 1 && !item->delayed))
		return -EINVAL;
	*itemp = item;
	return 0;
}

/*
 * Does the item's disable count have room for one more unit? From 6.10 the
 * kernel keeps it in WORK_OFFQ_DISABLE_BITS (16) bits and WARNs beyond;
 * disable_* commands hold a unit until enable_*, and every cancel_*_sync or
 * disable_*_sync holds one while it waits (the kernel disables the item
 * around the wait). Before 6.10 there is no count.
 */
static bool wqlab_disable_room(const struct wqlab_item *item)
{
	return !WQLAB_DISABLE_WORK ||
	       item->disabled + item->sync_inflight < WQLAB_DISABLE_LIMIT;
}

#define WQLAB_PLAIN	0
#define WQLAB_DELAYED	1
#define WQLAB_ANY	2

static int wqlab_get_wq(const struct wqlab_cmd *cmd, struct wqlab_wq **wqp)
{
	struct wqlab_wq *wq = wqlab_wq_find(cmd->wq);

	if (!wq)
		return -ENOENT;
	*wqp = wq;
	return 0;
}

static void wqlab_get_behave(const struct wqlab_cmd *cmd,
			     struct wqlab_behave *beh)
{
	beh->sleep_ms = cmd->sleep_ms;
	beh->spin_us = cmd->spin_us;
	beh->requeue = cmd->requeue;
	beh->block = cmd->block;
}

/* Behaviours a BH (softirq) work function cannot have. */
static int wqlab_check_bh(const struct wqlab_wq *wq,
			  const struct wqlab_behave *beh)
{
	if (!wq->bh)
		return 0;
	if (beh->sleep_ms || beh->block || beh->spin_us > WQLAB_BH_SPIN_US_MAX)
		return -EINVAL;
	return 0;
}

static int wqlab_do_queue(struct wqlab_cmd *cmd, struct wqlab_wq *wq,
			  enum wqlab_qop op, int kind)
{
	struct wqlab_behave beh;
	struct wqlab_item *item;
	bool queued;
	int ret;

	ret = wqlab_get_item(cmd, kind, &item);
	if (ret)
		return ret;
	wqlab_get_behave(cmd, &beh);
	ret = wqlab_check_bh(wq, &beh);
	if (ret)
		return ret;
	/* enable_work() of an item that is not disabled WARNs (underflow). */
	if (op == WQLAB_Q_ENABLE_AND_QUEUE_WORK && !item->disabled)
		return -EINVAL;
	ret = wqlab_item_queue(item, wq, op, cmd->cpu,
			       msecs_to_jiffies(cmd->delay_ms), &beh, &queued);
	if (ret)
		return ret;
	if (op == WQLAB_Q_ENABLE_AND_QUEUE_WORK)
		item->disabled--;
	cmd->ret = queued;
	return 0;
}

static int wqlab_do_queue_wq(struct wqlab_cmd *cmd, enum wqlab_qop op,
			     int kind)
{
	struct wqlab_wq *wq;
	int ret;

	ret = wqlab_get_wq(cmd, &wq);
	if (ret)
		return ret;
	return wqlab_do_queue(cmd, wq, op, kind);
}

/*
 * Blocking item operations: take a reference, drop wqlab_lock while the
 * workqueue API blocks (so `release` can run), retake it.
 */
enum wqlab_iop {
	WQLAB_I_FLUSH_WORK,
	WQLAB_I_FLUSH_DELAYED_WORK,
	WQLAB_I_CANCEL_WORK_SYNC,
	WQLAB_I_CANCEL_DELAYED_WORK_SYNC,
	WQLAB_I_DISABLE_WORK_SYNC,
	WQLAB_I_DISABLE_DELAYED_WORK_SYNC,
};

static int wqlab_do_blocking(struct wqlab_cmd *cmd, enum wqlab_iop op,
			     int kind)
{
	struct wqlab_waiter waiter;
	struct wqlab_item *item;
	bool ret = false;
	bool sync;
	int err;

	err = wqlab_get_item(cmd, kind, &item);
	if (err)
		return err;
	if ((op == WQLAB_I_DISABLE_WORK_SYNC ||
	     op == WQLAB_I_DISABLE_DELAYED_WORK_SYNC) && !WQLAB_DISABLE_WORK)
		return -EOPNOTSUPP;
	sync = op != WQLAB_I_FLUSH_WORK && op != WQLAB_I_FLUSH_DELAYED_WORK;
	if (sync && !wqlab_disable_room(item))
		return -EBUSY;

	item->users++;
	item->sync_inflight += sync;
	wqlab_wait_begin(&waiter);
	switch (op) {
	case WQLAB_I_FLUSH_WORK:
		ret = flush_work(item->work);
		break;
	case WQLAB_I_FLUSH_DELAYED_WORK:
		ret = flush_delayed_work(item->dwork);
		break;
	case WQLAB_I_CANCEL_WORK_SYNC:
		ret = cancel_work_sync(item->work);
		break;
	case WQLAB_I_CANCEL_DELAYED_WORK_SYNC:
		ret = cancel_delayed_work_sync(item->dwork);
		break;
	case WQLAB_I_DISABLE_WORK_SYNC:
		ret = wqlab_disable_work_sync(item->work);
		break;
	case WQLAB_I_DISABLE_DELAYED_WORK_SYNC:
		ret = wqlab_disable_delayed_work_sync(item->dwork);
		break;
	}
	wqlab_wait_end(&waiter);
	item->users--;
	item->sync_inflight -= sync;
	if (op == WQLAB_I_DISABLE_WORK_SYNC ||
	    op == WQLAB_I_DISABLE_DELAYED_WORK_SYNC)
		item->disabled++;
	if (op == WQLAB_I_CANCEL_WORK_SYNC ||
	    op == WQLAB_I_CANCEL_DELAYED_WORK_SYNC ||
	    op == WQLAB_I_DISABLE_WORK_SYNC ||
	    op == WQLAB_I_DISABLE_DELAYED_WORK_SYNC)
		wqlab_item_canceled(item, ret);
	cmd->ret = ret;
	return 0;
}

/* ---- handlers ---------------------------------------------------------- */

static int wqlab_cmd_work_new(struct wqlab_cmd *cmd)
{
	u32 id;
	int ret;

	ret = wqlab_item_new(cmd->delayed, &id);
	if (ret)
		return ret;
	cmd->id = id;
	cmd->ret = 0;
	return 0;
}

static int wqlab_cmd_work_free(struct wqlab_cmd *cmd)
{
	struct wqlab_item *item;
	int ret;

	ret = wqlab_get_item(cmd, WQLAB_ANY, &item);
	if (ret)
		return ret;
	return wqlab_item_free(item);
}

static int wqlab_cmd_reset(struct wqlab_cmd *cmd)
{
	struct wqlab_item *item;
	int ret;

	ret = wqlab_get_item(cmd, WQLAB_ANY, &item);
	if (ret)
		return ret;
	return wqlab_item_reset(item);
}

static int wqlab_cmd_release(struct wqlab_cmd *cmd)
{
	struct wqlab_item *item;
	int ret;

	ret = wqlab_get_item(cmd, WQLAB_ANY, &item);
	if (ret)
		return ret;
	cmd->ret = wqlab_item_release(item);
	return 0;
}

static int wqlab_cmd_schedule_work(struct wqlab_cmd *cmd)
{
	return wqlab_do_queue(cmd, wqlab_wq_system(), WQLAB_Q_SCHEDULE_WORK,
			      WQLAB_PLAIN);
}

static int wqlab_cmd_schedule_work_on(struct wqlab_cmd *cmd)
{
	return wqlab_do_queue(cmd, wqlab_wq_system(),
			      WQLAB_Q_SCHEDULE_WORK_ON, WQLAB_PLAIN);
}

static int wqlab_cmd_schedule_delayed_work(struct wqlab_cmd *cmd)
{
	return wqlab_do_queue(cmd, wqlab_wq_system(),
			      WQLAB_Q_SCHEDULE_DELAYED_WORK, WQLAB_DELAYED);
}

static int wqlab_cmd_schedule_delayed_work_on(struct wqlab_cmd *cmd)
{
	return wqlab_do_queue(cmd, wqlab_wq_system(),
			      WQLAB_Q_SCHEDULE_DELAYED_WORK_ON, WQLAB_DELAYED);
}

static int wqlab_cmd_flush_work(struct wqlab_cmd *cmd)
{
	return wqlab_do_blocking(cmd, WQLAB_I_FLUSH_WORK, WQLAB_ANY);
}

static int wqlab_cmd_flush_delayed_work(struct wqlab_cmd *cmd)
{
	return wqlab_do_blocking(cmd, WQLAB_I_FLUSH_DELAYED_WORK,
				 WQLAB_DELAYED);
}

/*
 * flush_scheduled_work(): the real one where it builds without a warning,
 * else flush_work() on every wqlab item (see compat.h).
 */
static int wqlab_cmd_flush_scheduled_work(struct wqlab_cmd *cmd)
{
	struct wqlab_waiter waiter;
	struct wqlab_item *item, **items;
	unsigned int i, n = 0;
	u32 pos = 0;

	cmd->ret = 0;
	if (WQLAB_FLUSH_SCHEDULED_WORK) {
		wqlab_wait_begin(&waiter);
		wqlab_flush_scheduled_work();
		wqlab_wait_end(&waiter);
		return 0;
	}
	items = kmalloc_array(wqlab_max_items + 2, sizeof(*items), GFP_KERNEL);
	if (!items)
		return -ENOMEM;
	while ((item = wqlab_item_next(&pos))) {
		item->users++;
		items[n++] = item;
	}
	wqlab_wait_begin(&waiter);
	/* ->users keeps each item alive without wqlab_lock. */
	for (i = 0; i < n; i++)
		flush_work(items[i]->work);
	wqlab_wait_end(&waiter);
	for (i = 0; i < n; i++)
		items[i]->users--;
	kfree(items);
	return 0;
}

static int wqlab_name_valid(const char *name)
{
	size_t i, len = strlen(name);

	if (!len || len > wqlab_wq_name_max())
		return -EINVAL;
	for (i = 0; i < len; i++)
		if (!(islower(name[i]) || isdigit(name[i]) || name[i] == '_'))
			return -EINVAL;
	if (!strncmp(name, "system", 6))
		return -EINVAL;
	return 0;
}

static int wqlab_cmd_create_workqueue(struct wqlab_cmd *cmd)
{
	int ret = wqlab_name_valid(cmd->name);

	return ret ?: wqlab_wq_create(cmd->name, "create_workqueue", 0, 1);
}

static int wqlab_cmd_create_singlethread_workqueue(struct wqlab_cmd *cmd)
{
	int ret = wqlab_name_valid(cmd->name);

	return ret ?: wqlab_wq_create(cmd->name,
				      "create_singlethread_workqueue", 0, 1);
}

/* Flags this kernel has; -EOPNOTSUPP for the others. */
static int wqlab_flags_supported(u32 flags)
{
	if ((flags & WQLAB_WQ_BH) && !WQLAB_KWQ_BH)
		return -EOPNOTSUPP;
	if ((flags & WQLAB_WQ_PERCPU) && !WQLAB_KWQ_PERCPU)
		return -EOPNOTSUPP;
	return 0;
}

static int wqlab_cmd_alloc_workqueue(struct wqlab_cmd *cmd)
{
	u32 flags = cmd->flags;
	int ret;

	ret = wqlab_name_valid(cmd->name) ?: wqlab_flags_supported(flags);
	if (ret)
		return ret;
	/* Combinations alloc_workqueue() would WARN about. */
	if ((flags & WQLAB_WQ_UNBOUND) && (flags & WQLAB_WQ_PERCPU))
		return -EINVAL;
	if ((flags & WQLAB_WQ_BH) &&
	    ((flags & ~(WQLAB_WQ_BH | WQLAB_WQ_HIGHPRI)) || cmd->max_active))
		return -EINVAL;
	return wqlab_wq_create(cmd->name, "alloc_workqueue", flags,
			       cmd->max_active);
}

static int wqlab_cmd_alloc_ordered_workqueue(struct wqlab_cmd *cmd)
{
	/* sysfs on an ordered queue WARNs; bh/percpu clash with unbound. */
	const u32 ok = WQLAB_WQ_UNBOUND | WQLAB_WQ_HIGHPRI |
		       WQLAB_WQ_CPU_INTENSIVE | WQLAB_WQ_FREEZABLE |
		       WQLAB_WQ_MEM_RECLAIM | WQLAB_WQ_POWER_EFFICIENT;
	int ret;

	ret = wqlab_name_valid(cmd->name) ?: wqlab_flags_supported(cmd->flags);
	if (ret)
		return ret;
	if (cmd->flags & ~ok)
		return -EINVAL;
	return wqlab_wq_create(cmd->name, "alloc_ordered_workqueue",
			       cmd->flags, 1);
}

static int wqlab_cmd_workqueue_set_max_active(struct wqlab_cmd *cmd)
{
	struct wqlab_wq *wq;
	int ret;

	ret = wqlab_get_wq(cmd, &wq);
	if (ret)
		return ret;
	/* Ordered and BH queues WARN; system queues are not ours. */
	if (wq->is_system || wq->ordered || wq->bh || !cmd->max_active)
		return -EINVAL;
	workqueue_set_max_active(wq->wq, cmd->max_active);
	wq->max_active = cmd->max_active;
	cmd->ret = 0;
	return 0;
}

static int wqlab_cmd_destroy_workqueue(struct wqlab_cmd *cmd)
{
	struct wqlab_wq *wq;
	int ret;

	ret = wqlab_get_wq(cmd, &wq);
	if (ret)
		return ret;
	if (wq->is_system)
		return -EINVAL;
	if (wq->users || wqlab_wq_has_blocked(wq))
		return -EBUSY;
	cmd->ret = 0;
	return wqlab_wq_destroy(wq);
}

static int wqlab_cmd_queue_work(struct wqlab_cmd *cmd)
{
	return wqlab_do_queue_wq(cmd, WQLAB_Q_QUEUE_WORK, WQLAB_PLAIN);
}

static int wqlab_cmd_queue_work_on(struct wqlab_cmd *cmd)
{
	return wqlab_do_queue_wq(cmd, WQLAB_Q_QUEUE_WORK_ON, WQLAB_PLAIN);
}

static int wqlab_cmd_queue_delayed_work(struct wqlab_cmd *cmd)
{
	return wqlab_do_queue_wq(cmd, WQLAB_Q_QUEUE_DELAYED_WORK,
				 WQLAB_DELAYED);
}

static int wqlab_cmd_queue_delayed_work_on(struct wqlab_cmd *cmd)
{
	return wqlab_do_queue_wq(cmd, WQLAB_Q_QUEUE_DELAYED_WORK_ON,
				 WQLAB_DELAYED);
}

static int wqlab_cmd_mod_delayed_work(struct wqlab_cmd *cmd)
{
	return wqlab_do_queue_wq(cmd, WQLAB_Q_MOD_DELAYED_WORK, WQLAB_DELAYED);
}

static int wqlab_cmd_mod_delayed_work_on(struct wqlab_cmd *cmd)
{
	return wqlab_do_queue_wq(cmd, WQLAB_Q_MOD_DELAYED_WORK_ON,
				 WQLAB_DELAYED);
}

static int wqlab_cmd_enable_and_queue_work(struct wqlab_cmd *cmd)
{
	if (!WQLAB_ENABLE_AND_QUEUE_WORK)
		return -EOPNOTSUPP;
	return wqlab_do_queue_wq(cmd, WQLAB_Q_ENABLE_AND_QUEUE_WORK,
				 WQLAB_PLAIN);
}

static int wqlab_cmd_flush_workqueue(struct wqlab_cmd *cmd)
{
	struct wqlab_waiter waiter;
	struct wqlab_wq *wq;
	int ret;

	ret = wqlab_get_wq(cmd, &wq);
	if (ret)
		return ret;
	wq->users++;
	wqlab_wait_begin(&waiter);
	/* wq->wq is not a compile-time constant: no flush-system warning. */
	flush_workqueue(wq->wq);
	wqlab_wait_end(&waiter);
	wq->users--;
	cmd->ret = 0;
	return 0;
}

static int wqlab_cmd_drain_workqueue(struct wqlab_cmd *cmd)
{
	struct wqlab_waiter waiter;
	struct wqlab_wq *wq;
	int ret;

	ret = wqlab_get_wq(cmd, &wq);
	if (ret)
		return ret;
	/* Others queue onto system queues: draining them would WARN. */
	if (wq->is_system)
		return -EINVAL;
	wqlab_wq_drain_begin(wq);
	wqlab_wait_begin(&waiter);
	drain_workqueue(wq->wq);
	wqlab_wait_end(&waiter);
	wqlab_wq_drain_end(wq);
	cmd->ret = 0;
	return 0;
}

static int wqlab_cmd_cancel_work(struct wqlab_cmd *cmd)
{
	struct wqlab_item *item;
	bool canceled;
	int ret;

	ret = wqlab_get_item(cmd, WQLAB_PLAIN, &item);
	if (ret)
		return ret;
	ret = wqlab_cancel_work(item->work, &canceled);
	if (ret)
		return ret;
	wqlab_item_canceled(item, canceled);
	cmd->ret = canceled;
	return 0;
}

static int wqlab_cmd_cancel_work_sync(struct wqlab_cmd *cmd)
{
	return wqlab_do_blocking(cmd, WQLAB_I_CANCEL_WORK_SYNC, WQLAB_PLAIN);
}

static int wqlab_cmd_cancel_delayed_work(struct wqlab_cmd *cmd)
{
	struct wqlab_item *item;
	bool canceled;
	int ret;

	ret = wqlab_get_item(cmd, WQLAB_DELAYED, &item);
	if (ret)
		return ret;
	canceled = cancel_delayed_work(item->dwork);
	wqlab_item_canceled(item, canceled);
	cmd->ret = canceled;
	return 0;
}

static int wqlab_cmd_cancel_delayed_work_sync(struct wqlab_cmd *cmd)
{
	return wqlab_do_blocking(cmd, WQLAB_I_CANCEL_DELAYED_WORK_SYNC,
				 WQLAB_DELAYED);
}

static int wqlab_cmd_work_pending(struct wqlab_cmd *cmd)
{
	struct wqlab_item *item;
	int ret;

	ret = wqlab_get_item(cmd, WQLAB_ANY, &item);
	if (ret)
		return ret;
	cmd->ret = work_pending(item->work);
	return 0;
}

static int wqlab_cmd_delayed_work_pending(struct wqlab_cmd *cmd)
{
	struct wqlab_item *item;
	int ret;

	ret = wqlab_get_item(cmd, WQLAB_DELAYED, &item);
	if (ret)
		return ret;
	cmd->ret = delayed_work_pending(item->dwork);
	return 0;
}

static int wqlab_cmd_work_busy(struct wqlab_cmd *cmd)
{
	struct wqlab_item *item;
	unsigned int busy;
	int ret;

	ret = wqlab_get_item(cmd, WQLAB_ANY, &item);
	if (ret)
		return ret;
	busy = work_busy(item->work);
	cmd->ret = ((busy & WORK_BUSY_PENDING) ? WQLAB_BUSY_PENDING : 0) |
		   ((busy & WORK_BUSY_RUNNING) ? WQLAB_BUSY_RUNNING : 0);
	return 0;
}

/* Non-blocking disable/enable: kind 0 plain, 1 delayed. */
static int wqlab_do_able(struct wqlab_cmd *cmd, bool disable, int kind)
{
	struct wqlab_item *item;
	bool ret;
	int err;

	if (!WQLAB_DISABLE_WORK)
		return -EOPNOTSUPP;
	err = wqlab_get_item(cmd, kind, &item);
	if (err)
		return err;
	/* The kernel WARNs on a disable count underflow or overflow. */
	if (!disable && !item->disabled)
		return -EINVAL;
	if (disable && !wqlab_disable_room(item))
		return -EBUSY;
	item->disabled += disable ? 1 : -1;
	if (kind == WQLAB_DELAYED)
		ret = disable ? wqlab_disable_delayed_work(item->dwork) :
				wqlab_enable_delayed_work(item->dwork);
	else
		ret = disable ? wqlab_disable_work(item->work) :
				wqlab_enable_work(item->work);
	if (disable)
		wqlab_item_canceled(item, ret);
	cmd->ret = ret;
	return 0;
}

static int wqlab_cmd_disable_work(struct wqlab_cmd *cmd)
{
	return wqlab_do_able(cmd, true, WQLAB_PLAIN);
}

static int wqlab_cmd_disable_work_sync(struct wqlab_cmd *cmd)
{
	return wqlab_do_blocking(cmd, WQLAB_I_DISABLE_WORK_SYNC, WQLAB_PLAIN);
}

static int wqlab_cmd_enable_work(struct wqlab_cmd *cmd)
{
	return wqlab_do_able(cmd, false, WQLAB_PLAIN);
}

static int wqlab_cmd_disable_delayed_work(struct wqlab_cmd *cmd)
{
	return wqlab_do_able(cmd, true, WQLAB_DELAYED);
}

static int wqlab_cmd_disable_delayed_work_sync(struct wqlab_cmd *cmd)
{
	return wqlab_do_blocking(cmd, WQLAB_I_DISABLE_DELAYED_WORK_SYNC,
				 WQLAB_DELAYED);
}

static int wqlab_cmd_enable_delayed_work(struct wqlab_cmd *cmd)
{
	return wqlab_do_able(cmd, false, WQLAB_DELAYED);
}

/* ---- the table --------------------------------------------------------- */

/*
 * LKDTM style: the name is stringified, the handler pasted from it.
 * WQLAB_CMD_WAITS() marks a command that may wait for work in the workqueue
 * API (the netlink plane runs it from its own queue, wqlab_netlink.c).
 */
#define WQLAB_CMD_ENTRY(_name, _nr, _allowed, _required, _out, _waits, _help) \
	{							\
		.name = __stringify(_name),			\
		.fn = wqlab_cmd_ ## _name,			\
		.nr = WQLAB_NR_ ## _nr,				\
		.allowed = (_allowed),				\
		.required = (_required),			\
		.out = (_out),					\
		.waits = (_waits),				\
		.help = _help,					\
	}
#define WQLAB_CMD(_name, _nr, _allowed, _required, _out, _help)	\
	WQLAB_CMD_ENTRY(_name, _nr, _allowed, _required, _out, false, _help)
#define WQLAB_CMD_WAITS(_name, _nr, _allowed, _required, _out, _help) \
	WQLAB_CMD_ENTRY(_name, _nr, _allowed, _required, _out, true, _help)

const struct wqlab_cmd_desc wqlab_cmds[] = {
	WQLAB_CMD(work_new, WORK_NEW, A_DELAYED, 0, WQLAB_OUT_ID,
		  "allocate a dynamic item (INIT_WORK, or INIT_DELAYED_WORK if delayed=1); id= is the new id"),
	WQLAB_CMD(work_free, WORK_FREE, A_ID, A_ID, 0,
		  "free a dynamic item (EBUSY if pending/running/in use)"),
	WQLAB_CMD(reset, RESET, A_ID, A_ID, 0,
		  "clear an idle item's record (EBUSY if pending/running/in use)"),
	WQLAB_CMD(release, RELEASE, A_ID, A_ID, 0,
		  "unblock a blocked run (latched until the next queueing); ret=1 if one was blocked"),
	WQLAB_CMD(schedule_work, SCHEDULE_WORK, A_ID | A_BEH, A_ID, 0,
		  "schedule_work(); ret=queued"),
	WQLAB_CMD(schedule_work_on, SCHEDULE_WORK_ON, A_ID | A_CPU | A_BEH,
		  A_ID | A_CPU, 0, "schedule_work_on(); ret=queued"),
	WQLAB_CMD(schedule_delayed_work, SCHEDULE_DELAYED_WORK,
		  A_ID | A_DELAY | A_BEH, A_ID, 0,
		  "schedule_delayed_work(); ret=queued"),
	WQLAB_CMD(schedule_delayed_work_on, SCHEDULE_DELAYED_WORK_ON,
		  A_ID | A_CPU | A_DELAY | A_BEH, A_ID | A_CPU, 0,
		  "schedule_delayed_work_on(); ret=queued"),
	WQLAB_CMD_WAITS(flush_work, FLUSH_WORK, A_ID, A_ID, 0,
		  "flush_work() (either kind); ret=waited"),
	WQLAB_CMD_WAITS(flush_delayed_work, FLUSH_DELAYED_WORK, A_ID, A_ID, 0,
		  "flush_delayed_work(); ret=waited"),
	WQLAB_CMD_WAITS(flush_scheduled_work, FLUSH_SCHEDULED_WORK, 0, 0, 0,
		  "flush_scheduled_work(), or flush_work() of every item where it warns (features)"),
	WQLAB_CMD(create_workqueue, CREATE_WORKQUEUE, A_NAME, A_NAME, 0,
		  "create_workqueue(\"wqlab_<name>\")"),
	WQLAB_CMD(create_singlethread_workqueue, CREATE_SINGLETHREAD_WORKQUEUE,
		  A_NAME, A_NAME, 0,
		  "create_singlethread_workqueue(\"wqlab_<name>\")"),
	WQLAB_CMD(alloc_workqueue, ALLOC_WORKQUEUE, A_NAME | A_FLAGS | A_MAXACT,
		  A_NAME, 0, "alloc_workqueue(\"wqlab_<name>\", flags, max_active)"),
	WQLAB_CMD(alloc_ordered_workqueue, ALLOC_ORDERED_WORKQUEUE,
		  A_NAME | A_FLAGS, A_NAME, 0,
		  "alloc_ordered_workqueue(\"wqlab_<name>\", flags)"),
	WQLAB_CMD(workqueue_set_max_active, WORKQUEUE_SET_MAX_ACTIVE,
		  A_WQ | A_MAXACT, A_WQ | A_MAXACT, 0,
		  "workqueue_set_max_active() on a custom, non-ordered, non-BH queue"),
	WQLAB_CMD_WAITS(destroy_workqueue, DESTROY_WORKQUEUE, A_WQ, A_WQ, 0,
		  "destroy_workqueue() (EBUSY if a blocked item is on it or it is flushed/drained)"),
	WQLAB_CMD(queue_work, QUEUE_WORK, A_WQ | A_ID | A_BEH, A_WQ | A_ID, 0,
		  "queue_work(); ret=queued"),
	WQLAB_CMD(queue_work_on, QUEUE_WORK_ON, A_WQ | A_CPU | A_ID | A_BEH,
		  A_WQ | A_CPU | A_ID, 0, "queue_work_on(); ret=queued"),
	WQLAB_CMD(queue_delayed_work, QUEUE_DELAYED_WORK,
		  A_WQ | A_ID | A_DELAY | A_BEH, A_WQ | A_ID, 0,
		  "queue_delayed_work(); ret=queued"),
	WQLAB_CMD(queue_delayed_work_on, QUEUE_DELAYED_WORK_ON,
		  A_WQ | A_CPU | A_ID | A_DELAY | A_BEH, A_WQ | A_CPU | A_ID, 0,
		  "queue_delayed_work_on(); ret=queued"),
	WQLAB_CMD(mod_delayed_work, MOD_DELAYED_WORK,
		  A_WQ | A_ID | A_DELAY | A_BEH, A_WQ | A_ID, 0,
		  "mod_delayed_work(); ret=was pending"),
	WQLAB_CMD(mod_delayed_work_on, MOD_DELAYED_WORK_ON,
		  A_WQ | A_CPU | A_ID | A_DELAY | A_BEH, A_WQ | A_CPU | A_ID, 0,
		  "mod_delayed_work_on(); ret=was pending"),
	WQLAB_CMD_WAITS(flush_workqueue, FLUSH_WORKQUEUE, A_WQ, A_WQ, 0,
		  "flush_workqueue()"),
	WQLAB_CMD_WAITS(drain_workqueue, DRAIN_WORKQUEUE, A_WQ, A_WQ, 0,
		  "drain_workqueue() on a custom queue"),
	WQLAB_CMD(cancel_work, CANCEL_WORK, A_ID, A_ID, 0,
		  "cancel_work(); ret=was pending"),
	WQLAB_CMD_WAITS(cancel_work_sync, CANCEL_WORK_SYNC, A_ID, A_ID, 0,
		  "cancel_work_sync(); ret=was pending"),
	WQLAB_CMD(cancel_delayed_work, CANCEL_DELAYED_WORK, A_ID, A_ID, 0,
		  "cancel_delayed_work(); ret=was pending"),
	WQLAB_CMD_WAITS(cancel_delayed_work_sync, CANCEL_DELAYED_WORK_SYNC, A_ID,
		  A_ID, 0, "cancel_delayed_work_sync(); ret=was pending"),
	WQLAB_CMD(work_pending, WORK_PENDING, A_ID, A_ID, 0,
		  "work_pending() (either kind)"),
	WQLAB_CMD(delayed_work_pending, DELAYED_WORK_PENDING, A_ID, A_ID, 0,
		  "delayed_work_pending()"),
	WQLAB_CMD(work_busy, WORK_BUSY, A_ID, A_ID, WQLAB_OUT_BUSY,
		  "work_busy() (either kind); ret=WORK_BUSY_* bits"),
	WQLAB_CMD(disable_work, DISABLE_WORK, A_ID, A_ID, 0,
		  "disable_work() (6.10+); ret=was pending"),
	WQLAB_CMD_WAITS(disable_work_sync, DISABLE_WORK_SYNC, A_ID, A_ID, 0,
		  "disable_work_sync() (6.10+); ret=was pending"),
	WQLAB_CMD(enable_work, ENABLE_WORK, A_ID, A_ID, 0,
		  "enable_work() (6.10+); ret=disable count reached 0"),
	WQLAB_CMD(disable_delayed_work, DISABLE_DELAYED_WORK, A_ID, A_ID, 0,
		  "disable_delayed_work() (6.10+); ret=was pending"),
	WQLAB_CMD_WAITS(disable_delayed_work_sync, DISABLE_DELAYED_WORK_SYNC, A_ID,
		  A_ID, 0, "disable_delayed_work_sync() (6.10+); ret=was pending"),
	WQLAB_CMD(enable_delayed_work, ENABLE_DELAYED_WORK, A_ID, A_ID, 0,
		  "enable_delayed_work() (6.10+); ret=disable count reached 0"),
	WQLAB_CMD(enable_and_queue_work, ENABLE_AND_QUEUE_WORK,
		  A_WQ | A_ID | A_BEH, A_WQ | A_ID, 0,
		  "enable_and_queue_work() (where present); ret=enabled and queued"),
};

const unsigned int wqlab_nr_cmds = ARRAY_SIZE(wqlab_cmds);

const struct wqlab_cmd_desc *wqlab_cmd_by_nr(u32 nr)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(wqlab_cmds); i++)
		if (wqlab_cmds[i].nr == nr)
			return &wqlab_cmds[i];
	return NULL;
}

static const struct wqlab_cmd_desc *wqlab_cmd_by_name(const char *name)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(wqlab_cmds); i++)
		if (!strcmp(wqlab_cmds[i].name, name))
			return &wqlab_cmds[i];
	return NULL;
}

/* ---- parsing, validation, execution ------------------------------------ */

/*
 * Numbers are decimal (leading zeros allowed: "010" is 10, "09" is 9) or
 * "0x" hex; no sign but a leading '-' for signed fields. kstrto*(.., 0, ..)
 * would read "010" as octal and refuse "09".
 */
static int wqlab_parse_number(char *val, bool is_signed, void *field)
{
	unsigned int base = 10;
	char *digits = val;
	bool neg = false;

	if (is_signed && *digits == '-') {
		neg = true;
		digits++;
	}
	if (!neg && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
		base = 16;
		digits += 2;
	}
	if (!isxdigit(*digits))
		return -EINVAL;
	if (!is_signed)
		return kstrtou32(digits, base, field);
	return kstrtos32(val, base, field);
}

static int wqlab_parse_value(unsigned int a, char *val, struct wqlab_cmd *cmd)
{
	void *field = (char *)cmd + wqlab_args[a].off;
	int ret;

	switch (wqlab_args[a].type) {
	case WQLAB_T_U32:
		ret = wqlab_parse_number(val, false, field);
		break;
	case WQLAB_T_S32:
		ret = wqlab_parse_number(val, true, field);
		if (ret == -ERANGE)
			ret = -EINVAL;
		break;
	case WQLAB_T_NAME:
		if (strlen(val) >= WQLAB_NAME_LEN)
			return -EINVAL;
		strscpy(field, val, WQLAB_NAME_LEN);
		return 0;
	case WQLAB_T_FLAGS:
		return wqlab_flags_parse(val, field);
	default:
		return -EINVAL;
	}
	return ret == -ERANGE ? -E2BIG : ret;
}

/**
 * wqlab_cmd_parse() - parse one text command
 * @line: NUL-terminated, trimmed line (modified)
 * @descp: the command's table entry
 * @cmd: filled from the key=value pairs, with ->args set
 *
 * Return: 0; -ENOENT for an unknown command; -EINVAL for an empty line, a
 * token without '=', an unknown or repeated key or a bad value; -E2BIG for
 * a number that does not fit. Whether the command takes the keys is checked
 * by wqlab_cmd_exec().
 */
int wqlab_cmd_parse(char *line, const struct wqlab_cmd_desc **descp,
		    struct wqlab_cmd *cmd)
{
	const struct wqlab_cmd_desc *desc = NULL;
	char *tok, *val;
	unsigned int a;
	int ret;

	memset(cmd, 0, sizeof(*cmd));
	while ((tok = strsep(&line, " \t\n")) != NULL) {
		if (!*tok)
			continue;
		if (!desc) {
			desc = wqlab_cmd_by_name(tok);
			if (!desc)
				return -ENOENT;
			continue;
		}
		val = strchr(tok, '=');
		if (!val || val == tok)
			return -EINVAL;
		*val++ = '\0';
		for (a = 0; a < ARRAY_SIZE(wqlab_args); a++)
			if (!strcmp(tok, wqlab_args[a].key))
				break;
		if (a == ARRAY_SIZE(wqlab_args))
			return -EINVAL;
		if (cmd->args & wqlab_args[a].bit)
			return -EINVAL;
		ret = wqlab_parse_value(a, val, cmd);
		if (ret)
			return ret;
		cmd->args |= wqlab_args[a].bit;
	}
	if (!desc)
		return -EINVAL;
	*descp = desc;
	return 0;
}

static bool wqlab_name_terminated(const char *name)
{
	return memchr(name, '\0', WQLAB_NAME_LEN) != NULL;
}

/* Validation both planes share; no state is touched. */
static int wqlab_cmd_validate(const struct wqlab_cmd_desc *desc,
			      const struct wqlab_cmd *cmd)
{
	unsigned int i;
	u32 args = cmd->args;

	for (i = 0; i < ARRAY_SIZE(cmd->reserved); i++)
		if (cmd->reserved[i])
			return -EINVAL;
	if ((args & ~desc->allowed) || (desc->required & ~args))
		return -EINVAL;
	/* A field whose bit is clear must be zero. */
	if ((!(args & WQLAB_ARG_ID) && cmd->id) ||
	    (!(args & WQLAB_ARG_CPU) && cmd->cpu) ||
	    (!(args & WQLAB_ARG_FLAGS) && cmd->flags) ||
	    (!(args & WQLAB_ARG_MAX_ACTIVE) && cmd->max_active) ||
	    (!(args & WQLAB_ARG_DELAY_MS) && cmd->delay_ms) ||
	    (!(args & WQLAB_ARG_SLEEP_MS) && cmd->sleep_ms) ||
	    (!(args & WQLAB_ARG_SPIN_US) && cmd->spin_us) ||
	    (!(args & WQLAB_ARG_REQUEUE) && cmd->requeue) ||
	    (!(args & WQLAB_ARG_BLOCK) && cmd->block) ||
	    (!(args & WQLAB_ARG_DELAYED) && cmd->delayed) ||
	    (!(args & WQLAB_ARG_WQ) && cmd->wq[0]) ||
	    (!(args & WQLAB_ARG_NAME) && cmd->name[0]))
		return -EINVAL;
	if (!wqlab_name_terminated(cmd->wq) || !wqlab_name_terminated(cmd->name))
		return -EINVAL;
	if (cmd->block > 1 || cmd->delayed > 1 || (cmd->flags & ~WQLAB_WQ_ALL))
		return -EINVAL;
	if ((args & WQLAB_ARG_CPU) &&
	    (cmd->cpu < 0 || (unsigned int)cmd->cpu >= nr_cpu_ids ||
	     !cpu_online(cmd->cpu)))
		return -EINVAL;
	if (cmd->delay_ms > WQLAB_DELAY_MS_MAX ||
	    cmd->sleep_ms > WQLAB_SLEEP_MS_MAX ||
	    cmd->spin_us > WQLAB_SPIN_US_MAX ||
	    cmd->requeue > WQLAB_REQUEUE_MAX ||
	    cmd->max_active > WQLAB_MAX_ACTIVE_MAX)
		return -E2BIG;
	return 0;
}

/**
 * wqlab_cmd_exec() - validate and run one command (both planes)
 * @desc: table entry
 * @cmd: arguments in, results (->ret, ->id) out
 *
 * Return: 0 if the command ran (its API result is in ->ret), or -errno if it
 * was rejected (nothing changed).
 */
int wqlab_cmd_exec(const struct wqlab_cmd_desc *desc, struct wqlab_cmd *cmd)
{
	u32 id = cmd->id;
	int ret;

	cmd->ret = 0;
	ret = wqlab_cmd_validate(desc, cmd);
	if (!ret) {
		mutex_lock(&wqlab_lock);
		ret = wqlab_is_stopping() ? -ESHUTDOWN : desc->fn(cmd);
		mutex_unlock(&wqlab_lock);
	}
	if (ret)
		atomic64_inc(&wqlab_stats.cmds_failed);
	else
		atomic64_inc(&wqlab_stats.cmds_ok);
	trace_wqlab_cmd(desc->nr, id, cmd->ret, ret);
	return ret;
}

/**
 * wqlab_cmd_undo() - take back a command whose result could not be returned
 * @desc: table entry
 * @cmd: the command as it ran
 *
 * Only work_new has a result the caller needs (the new id); the other
 * commands' results are informational, the API call itself cannot be undone.
 */
void wqlab_cmd_undo(const struct wqlab_cmd_desc *desc,
		    const struct wqlab_cmd *cmd)
{
	struct wqlab_item *item;

	if (desc->nr != WQLAB_NR_WORK_NEW)
		return;
	mutex_lock(&wqlab_lock);
	item = wqlab_item_find(cmd->id);
	if (item && !wqlab_item_free(item)) {
		atomic64_dec(&wqlab_stats.cmds_ok);
		atomic64_inc(&wqlab_stats.cmds_failed);
	}
	mutex_unlock(&wqlab_lock);
}

/* Result line of a command that ran. Return: length. */
int wqlab_cmd_format(const struct wqlab_cmd_desc *desc,
		     const struct wqlab_cmd *cmd, char *buf, size_t size)
{
	int len = scnprintf(buf, size, "ret=%lld", (long long)cmd->ret);

	if (desc->out & WQLAB_OUT_ID)
		len += scnprintf(buf + len, size - len, " id=%u", cmd->id);
	if (desc->out & WQLAB_OUT_BUSY)
		len += scnprintf(buf + len, size - len, " busy=%s",
				 cmd->ret == 0 ? "none" :
				 cmd->ret == WQLAB_BUSY_PENDING ? "pending" :
				 cmd->ret == WQLAB_BUSY_RUNNING ? "running" :
				 "pending,running");
	len += scnprintf(buf + len, size - len, "\n");
	return len;
}

/* The command list: "NAME key [key] ... # description". Return: length. */
int wqlab_cmd_help(char *buf, size_t size)
{
	const struct wqlab_cmd_desc *desc;
	unsigned int i, a;
	int len = 0;

	for (i = 0; i < ARRAY_SIZE(wqlab_cmds); i++) {
		desc = &wqlab_cmds[i];
		len += scnprintf(buf + len, size - len, "%s", desc->name);
		for (a = 0; a < ARRAY_SIZE(wqlab_args); a++) {
			u32 bit = wqlab_args[a].bit;

			if (desc->required & bit)
				len += scnprintf(buf + len, size - len, " %s",
						 wqlab_args[a].key);
			else if (desc->allowed & bit)
				len += scnprintf(buf + len, size - len, " [%s]",
						 wqlab_args[a].key);
		}
		len += scnprintf(buf + len, size - len, " # %s\n", desc->help);
	}
	return len;
}
