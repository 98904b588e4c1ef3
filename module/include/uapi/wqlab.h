/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * wqlab ioctl ABI: drive the workqueue API on command through /dev/wqlab.
 *
 * Every command of the module's command table has one ioctl number, all
 * _IOWR(WQLAB_IOC_MAGIC, nr, struct wqlab_cmd). The same table drives the
 * debugfs text plane (/sys/kernel/debug/wqlab/control); docs/commands.md in
 * the wqlab repository is the contract both planes implement.
 */
#ifndef _UAPI_WQLAB_H
#define _UAPI_WQLAB_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define WQLAB_ABI_VERSION	2

/*
 * Names, NUL-terminated in a 48-byte field: a wqlab workqueue is [a-z0-9_]{1,23};
 * a system queue name is up to 32 (system_freezable_power_efficient). ABI 1 had
 * 32-byte fields, too short for that one.
 */
#define WQLAB_NAME_LEN		48
#define WQLAB_NAME_MAX		23

/* Limits; a larger value is -E2BIG. */
#define WQLAB_DELAY_MS_MAX	60000
#define WQLAB_SLEEP_MS_MAX	60000
#define WQLAB_SPIN_US_MAX	1000000
#define WQLAB_REQUEUE_MAX	10000
#define WQLAB_MAX_ACTIVE_MAX	512

/* Static items; dynamic items (work_new) get ids from 2 up. */
#define WQLAB_ID_STATIC_WORK	0
#define WQLAB_ID_STATIC_DWORK	1

/* struct wqlab_cmd.args: which (in) fields the caller set. */
#define WQLAB_ARG_ID		(1U << 0)
#define WQLAB_ARG_WQ		(1U << 1)
#define WQLAB_ARG_NAME		(1U << 2)
#define WQLAB_ARG_CPU		(1U << 3)
#define WQLAB_ARG_FLAGS		(1U << 4)
#define WQLAB_ARG_MAX_ACTIVE	(1U << 5)
#define WQLAB_ARG_DELAY_MS	(1U << 6)
#define WQLAB_ARG_SLEEP_MS	(1U << 7)
#define WQLAB_ARG_SPIN_US	(1U << 8)
#define WQLAB_ARG_REQUEUE	(1U << 9)
#define WQLAB_ARG_BLOCK		(1U << 10)
#define WQLAB_ARG_DELAYED	(1U << 11)
#define WQLAB_ARG_ALL		((1U << 12) - 1)

/* struct wqlab_cmd.flags: workqueue flags (text plane: comma-separated names). */
#define WQLAB_WQ_UNBOUND		(1U << 0)	/* unbound */
#define WQLAB_WQ_HIGHPRI		(1U << 1)	/* highpri */
#define WQLAB_WQ_CPU_INTENSIVE		(1U << 2)	/* cpu_intensive */
#define WQLAB_WQ_FREEZABLE		(1U << 3)	/* freezable */
#define WQLAB_WQ_MEM_RECLAIM		(1U << 4)	/* mem_reclaim */
#define WQLAB_WQ_SYSFS			(1U << 5)	/* sysfs */
#define WQLAB_WQ_BH			(1U << 6)	/* bh (6.9+) */
#define WQLAB_WQ_PERCPU			(1U << 7)	/* percpu (6.17+) */
#define WQLAB_WQ_POWER_EFFICIENT	(1U << 8)	/* power_efficient */
#define WQLAB_WQ_ALL			((1U << 9) - 1)

/* ret of work_busy: the kernel's WORK_BUSY_* bits. */
#define WQLAB_BUSY_PENDING	(1U << 0)
#define WQLAB_BUSY_RUNNING	(1U << 1)

/**
 * struct wqlab_cmd - one command, in and out
 * @ret: (out) the API call's return value: bool as 0/1, int as is, void as 0;
 *       for work_new 0 (the new id is in @id)
 * @args: (in) WQLAB_ARG_* bits of the fields set; a field whose bit is clear
 *        must be zero
 * @id: (in/out) work item id; (out) the new id for work_new
 * @cpu: (in) target CPU, online and < nr_cpu_ids
 * @flags: (in) WQLAB_WQ_* bits
 * @max_active: (in) 0 = default, 1..WQLAB_MAX_ACTIVE_MAX
 * @delay_ms: (in) delay of delayed work, <= WQLAB_DELAY_MS_MAX
 * @sleep_ms: (in) behaviour: sleep in the work function, <= WQLAB_SLEEP_MS_MAX
 * @spin_us: (in) behaviour: busy-wait in the work function, <= WQLAB_SPIN_US_MAX
 * @requeue: (in) behaviour: requeue itself this many times, <= WQLAB_REQUEUE_MAX
 * @block: (in) behaviour: 0/1, block until release (or rmmod)
 * @delayed: (in) work_new: 0/1, a delayed_work item
 * @reserved: (in) must be zero; (out) zero
 * @wq: (in) workqueue: a created name or a system queue name, NUL-terminated
 * @name: (in) name of a new workqueue, NUL-terminated
 */
struct wqlab_cmd {
	__s64 ret;
	__u32 args;
	__u32 id;
	__s32 cpu;
	__u32 flags;
	__u32 max_active;
	__u32 delay_ms;
	__u32 sleep_ms;
	__u32 spin_us;
	__u32 requeue;
	__u32 block;
	__u32 delayed;
	__u32 reserved[3];
	char wq[WQLAB_NAME_LEN];
	char name[WQLAB_NAME_LEN];
};

/**
 * struct wqlab_version - answer of WQLAB_IOC_VERSION
 * @abi_version: (out) WQLAB_ABI_VERSION of the running module
 * @cmd_size: (out) sizeof(struct wqlab_cmd) of the running module
 */
struct wqlab_version {
	__u32 abi_version;
	__u32 cmd_size;
};

/**
 * DOC: errors
 *
 * Both planes return the same errno for the same fault. A rejected command
 * changes nothing.
 *
 * - ENOTTY: unknown ioctl type or number.
 * - EFAULT: the argument could not be copied in or out (both are checked
 *   before the command runs: a command whose result is lost did not run).
 * - EPERM: the ioctl caller, or the writer of the control file, lacks
 *   CAP_SYS_ADMIN.
 * - ENOENT: unknown command (text plane), unknown workqueue, unknown or freed
 *   work item id, or a system queue this kernel does not have.
 * - EINVAL: malformed line, unknown key, repeated key, an argument the command
 *   does not take, a missing required argument, a non-zero reserved field or
 *   field without its WQLAB_ARG_* bit, a bad name (or one longer than the
 *   features file's wq_name_max), a bad number (decimal or 0x hex only), an
 *   offline CPU or one
 *   >= nr_cpu_ids, a delayed command on a plain item or a plain command on a
 *   delayed item, an invalid flag combination, sleep_ms/block on a BH queue,
 *   set_max_active on an ordered or BH queue, drain_workqueue on a system queue.
 * - E2BIG: a text line of WQLAB_LINE_MAX bytes or more; a number above its
 *   documented maximum (or not fitting the field).
 * - EEXIST: a workqueue of that name exists (names starting with "system" are
 *   reserved and give EINVAL).
 * - ENOSPC: no free work item or workqueue slot.
 * - EBUSY: work_free/reset of an item that is pending, running or in use by a
 *   blocking command; destroy_workqueue of a queue that holds a blocked item
 *   or is being flushed/drained; queueing onto a queue being drained;
 *   queueing an item onto another queue than the one it is pending on or
 *   a run of it is in flight on (the schedule_* commands' queue is
 *   features schedule_wq: system, or system_percpu where schedule_*() use
 *   it); queueing an item that is pending, running or in use onto a BH
 *   queue after a thread queue or the other way round (lockdep class);
 *   disable_* or cancel_*_sync/disable_*_sync when the item's
 *   16-bit disable count (6.10+) is full.
 * - EOPNOTSUPP: the API or flag does not exist on this kernel (disable_work,
 *   bh, percpu, ...); see the features file.
 * - ESHUTDOWN: the module is being removed.
 */
#define WQLAB_LINE_MAX		256

/**
 * DOC: generic netlink
 *
 * The family WQLAB_GENL_NAME, version WQLAB_GENL_VERSION, carries every
 * command of the table as one operation whose genetlink command number is
 * its WQLAB_NR_* (the ioctl number): same validation, same handler, same
 * errno as the other planes. A command's arguments are attributes: the
 * attribute of WQLAB_ARG_* bit n is n + 1 (WQLAB_A_ID is WQLAB_ARG_ID's).
 * Each operation's policy admits only the attributes its command takes,
 * with their type and range; the kernel validates strictly. The answer to
 * a command is one message of the same command number with WQLAB_A_RET
 * (and WQLAB_A_ID for work_new).
 *
 * A command that waits for work (flush_*, cancel_*_sync, disable_*_sync,
 * flush_scheduled_work, flush_workqueue, drain_workqueue,
 * destroy_workqueue) is checked before it is answered, as every command,
 * and a refusal is the ack's errno with its extack text; once it waits, it
 * goes on in the module's own workqueue so that genetlink is not held:
 * the answer is then a message with WQLAB_A_DEFERRED = 1, the ack (if
 * NLM_F_ACK was set) and, when the command returns, a last message of the
 * same command number and sequence number, to the same port, with
 * WQLAB_A_RET (or WQLAB_A_ERRNO if it failed after it was accepted; none
 * does in this version). A command that returned before the ack is
 * answered as any other (WQLAB_A_RET, no WQLAB_A_DEFERRED). At most
 * WQLAB_GENL_DEFERRED_MAX such commands wait at once; one more is refused
 * with EAGAIN. A sender that closed its socket meanwhile loses the last
 * message, nothing else (the stats file counts it in nl_replies_lost).
 *
 * Every operation needs CAP_NET_ADMIN (the
 * core's GENL_ADMIN_PERM) and CAP_SYS_ADMIN (as the other planes), and so
 * does joining the multicast group WQLAB_GENL_MCGRP_EVENTS.
 *
 * Errors of this plane beyond the common ones (extack text and, where one
 * attribute is to blame, its offset or its type as missing):
 *
 * - EPROTO: the genetlink header's version is not WQLAB_GENL_VERSION.
 * - EINVAL: an attribute the command does not take, an unknown attribute
 *   type, a missing required attribute, a wrong length, a string without its
 *   NUL within WQLAB_NAME_LEN bytes (too long), a flag bit outside
 *   WQLAB_WQ_ALL (policy).
 * - ERANGE: a number outside its range (policy): delay_ms, sleep_ms,
 *   spin_us, requeue, max_active above their maximum, block or delayed
 *   above 1, cpu outside 0..nr_cpu_ids-1 (debugfs and ioctl: E2BIG for the
 *   maxima, EINVAL for the others).
 *
 * Refusals by the policy happen before the module sees the message: the
 * stats file's cmds_failed does not count them, and their extack text is the
 * kernel's. The module's own (version, capability, missing attributes and
 * every common errno) are counted and their text starts with "wqlab: ".
 * - EPERM: the sender lacks CAP_NET_ADMIN or CAP_SYS_ADMIN.
 * - EAGAIN: WQLAB_GENL_DEFERRED_MAX commands already wait (retry once one
 *   has answered).
 */
#define WQLAB_GENL_NAME		"wqlab"
#define WQLAB_GENL_VERSION	1
#define WQLAB_GENL_MCGRP_EVENTS	"events"
/* Commands that may wait for work in flight at once (then EAGAIN). */
#define WQLAB_GENL_DEFERRED_MAX	16

/* Operations beyond the command table (whose numbers are WQLAB_NR_*). */
#define WQLAB_GENL_CMD_WORKS		0x60	/* dump: one message per item */
#define WQLAB_GENL_CMD_WORKQUEUES	0x61	/* dump: one message per custom queue */
#define WQLAB_GENL_CMD_EVENT		0x62	/* multicast: one event */

/* Attributes. In: the arguments (WQLAB_ARG_* bit n is attribute n + 1). */
#define WQLAB_A_ID		1	/* u32: item id (in/out) */
#define WQLAB_A_WQ		2	/* string: queue a command uses; queue of a run */
#define WQLAB_A_NAME		3	/* string: new queue's name; a listed queue */
#define WQLAB_A_CPU		4	/* s32: target CPU; CPU of a run (-1: none) */
#define WQLAB_A_FLAGS		5	/* u32: WQLAB_WQ_* */
#define WQLAB_A_MAX_ACTIVE	6	/* u32 */
#define WQLAB_A_DELAY_MS	7	/* u32 */
#define WQLAB_A_SLEEP_MS	8	/* u32 */
#define WQLAB_A_SPIN_US		9	/* u32 */
#define WQLAB_A_REQUEUE		10	/* u32 */
#define WQLAB_A_BLOCK		11	/* u32: 0/1 */
#define WQLAB_A_DELAYED		12	/* u32: 0/1 */
/* Out: results, listings (dumps) and events. */
#define WQLAB_A_RET		13	/* s64: the API call's return value */
#define WQLAB_A_SEQ		14	/* u64: run sequence number */
#define WQLAB_A_PID		15	/* u32: worker pid */
#define WQLAB_A_COMM		16	/* string: worker comm */
#define WQLAB_A_TIME_NS		17	/* u64: ktime_get_ns() of the event */
#define WQLAB_A_EVENT		18	/* u32: WQLAB_EV_* */
#define WQLAB_A_EVENT_SEQ	19	/* u64: event number, +1 per event sent */
#define WQLAB_A_DROPS		20	/* u64: events lost so far (see docs/commands.md) */
#define WQLAB_A_STATE		21	/* string: item state as in the works file */
#define WQLAB_A_RUNS		22	/* u64 */
#define WQLAB_A_QUEUED_NS	23	/* u64 */
#define WQLAB_A_STARTED_NS	24	/* u64 */
#define WQLAB_A_FINISHED_NS	25	/* u64 */
#define WQLAB_A_HOW		26	/* string: creating API of a queue */
#define WQLAB_A_ORDERED		27	/* u32: 0/1 */
#define WQLAB_A_BH		28	/* u32: 0/1 */
#define WQLAB_A_PAD		29	/* padding of 64-bit attributes */
#define WQLAB_A_DEFERRED	30	/* u32: 1: the result follows in a later message */
#define WQLAB_A_ERRNO		31	/* u32: errno of a deferred command that failed */
#define WQLAB_A_MAX		31

/* WQLAB_A_EVENT: what happened. */
#define WQLAB_EV_START		1	/* a run of an item starts (ID SEQ CPU PID WQ TIME_NS) */
#define WQLAB_EV_END		2	/* the run ends (ID SEQ CPU PID WQ TIME_NS) */
#define WQLAB_EV_BLOCK		3	/* the run blocks until release (ID SEQ CPU PID WQ TIME_NS) */
#define WQLAB_EV_WQ_CREATE	4	/* a custom queue was created (NAME HOW FLAGS TIME_NS) */
#define WQLAB_EV_WQ_DESTROY	5	/* a custom queue was destroyed (NAME HOW FLAGS TIME_NS) */

#define WQLAB_IOC_MAGIC		0xB7

/* Command numbers; docs/commands.md describes each. */
#define WQLAB_NR_WORK_NEW			0x01
#define WQLAB_NR_WORK_FREE			0x02
#define WQLAB_NR_RESET				0x03
#define WQLAB_NR_RELEASE			0x04
#define WQLAB_NR_SCHEDULE_WORK			0x10
#define WQLAB_NR_SCHEDULE_WORK_ON		0x11
#define WQLAB_NR_SCHEDULE_DELAYED_WORK		0x12
#define WQLAB_NR_SCHEDULE_DELAYED_WORK_ON	0x13
#define WQLAB_NR_FLUSH_WORK			0x14
#define WQLAB_NR_FLUSH_DELAYED_WORK		0x15
#define WQLAB_NR_FLUSH_SCHEDULED_WORK		0x16
#define WQLAB_NR_CREATE_WORKQUEUE		0x20
#define WQLAB_NR_CREATE_SINGLETHREAD_WORKQUEUE	0x21
#define WQLAB_NR_ALLOC_WORKQUEUE		0x22
#define WQLAB_NR_ALLOC_ORDERED_WORKQUEUE	0x23
#define WQLAB_NR_WORKQUEUE_SET_MAX_ACTIVE	0x24
#define WQLAB_NR_DESTROY_WORKQUEUE		0x25
#define WQLAB_NR_QUEUE_WORK			0x30
#define WQLAB_NR_QUEUE_WORK_ON			0x31
#define WQLAB_NR_QUEUE_DELAYED_WORK		0x32
#define WQLAB_NR_QUEUE_DELAYED_WORK_ON		0x33
#define WQLAB_NR_MOD_DELAYED_WORK		0x34
#define WQLAB_NR_MOD_DELAYED_WORK_ON		0x35
#define WQLAB_NR_FLUSH_WORKQUEUE		0x36
#define WQLAB_NR_DRAIN_WORKQUEUE		0x37
#define WQLAB_NR_CANCEL_WORK			0x40
#define WQLAB_NR_CANCEL_WORK_SYNC		0x41
#define WQLAB_NR_CANCEL_DELAYED_WORK		0x42
#define WQLAB_NR_CANCEL_DELAYED_WORK_SYNC	0x43
#define WQLAB_NR_WORK_PENDING			0x44
#define WQLAB_NR_DELAYED_WORK_PENDING		0x45
#define WQLAB_NR_WORK_BUSY			0x46
#define WQLAB_NR_DISABLE_WORK			0x50
#define WQLAB_NR_DISABLE_WORK_SYNC		0x51
#define WQLAB_NR_ENABLE_WORK			0x52
#define WQLAB_NR_DISABLE_DELAYED_WORK		0x53
#define WQLAB_NR_DISABLE_DELAYED_WORK_SYNC	0x54
#define WQLAB_NR_ENABLE_DELAYED_WORK		0x55
#define WQLAB_NR_ENABLE_AND_QUEUE_WORK		0x56

#define WQLAB_IOC_VERSION			_IOR(WQLAB_IOC_MAGIC, 0x00, struct wqlab_version)
#define WQLAB_IOC_WORK_NEW			_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_WORK_NEW, struct wqlab_cmd)
#define WQLAB_IOC_WORK_FREE			_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_WORK_FREE, struct wqlab_cmd)
#define WQLAB_IOC_RESET				_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_RESET, struct wqlab_cmd)
#define WQLAB_IOC_RELEASE			_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_RELEASE, struct wqlab_cmd)
#define WQLAB_IOC_SCHEDULE_WORK			_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_SCHEDULE_WORK, struct wqlab_cmd)
#define WQLAB_IOC_SCHEDULE_WORK_ON		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_SCHEDULE_WORK_ON, struct wqlab_cmd)
#define WQLAB_IOC_SCHEDULE_DELAYED_WORK		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_SCHEDULE_DELAYED_WORK, struct wqlab_cmd)
#define WQLAB_IOC_SCHEDULE_DELAYED_WORK_ON	_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_SCHEDULE_DELAYED_WORK_ON, struct wqlab_cmd)
#define WQLAB_IOC_FLUSH_WORK			_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_FLUSH_WORK, struct wqlab_cmd)
#define WQLAB_IOC_FLUSH_DELAYED_WORK		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_FLUSH_DELAYED_WORK, struct wqlab_cmd)
#define WQLAB_IOC_FLUSH_SCHEDULED_WORK		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_FLUSH_SCHEDULED_WORK, struct wqlab_cmd)
#define WQLAB_IOC_CREATE_WORKQUEUE		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_CREATE_WORKQUEUE, struct wqlab_cmd)
#define WQLAB_IOC_CREATE_SINGLETHREAD_WORKQUEUE	_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_CREATE_SINGLETHREAD_WORKQUEUE, struct wqlab_cmd)
#define WQLAB_IOC_ALLOC_WORKQUEUE		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_ALLOC_WORKQUEUE, struct wqlab_cmd)
#define WQLAB_IOC_ALLOC_ORDERED_WORKQUEUE	_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_ALLOC_ORDERED_WORKQUEUE, struct wqlab_cmd)
#define WQLAB_IOC_WORKQUEUE_SET_MAX_ACTIVE	_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_WORKQUEUE_SET_MAX_ACTIVE, struct wqlab_cmd)
#define WQLAB_IOC_DESTROY_WORKQUEUE		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_DESTROY_WORKQUEUE, struct wqlab_cmd)
#define WQLAB_IOC_QUEUE_WORK			_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_QUEUE_WORK, struct wqlab_cmd)
#define WQLAB_IOC_QUEUE_WORK_ON			_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_QUEUE_WORK_ON, struct wqlab_cmd)
#define WQLAB_IOC_QUEUE_DELAYED_WORK		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_QUEUE_DELAYED_WORK, struct wqlab_cmd)
#define WQLAB_IOC_QUEUE_DELAYED_WORK_ON		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_QUEUE_DELAYED_WORK_ON, struct wqlab_cmd)
#define WQLAB_IOC_MOD_DELAYED_WORK		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_MOD_DELAYED_WORK, struct wqlab_cmd)
#define WQLAB_IOC_MOD_DELAYED_WORK_ON		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_MOD_DELAYED_WORK_ON, struct wqlab_cmd)
#define WQLAB_IOC_FLUSH_WORKQUEUE		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_FLUSH_WORKQUEUE, struct wqlab_cmd)
#define WQLAB_IOC_DRAIN_WORKQUEUE		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_DRAIN_WORKQUEUE, struct wqlab_cmd)
#define WQLAB_IOC_CANCEL_WORK			_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_CANCEL_WORK, struct wqlab_cmd)
#define WQLAB_IOC_CANCEL_WORK_SYNC		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_CANCEL_WORK_SYNC, struct wqlab_cmd)
#define WQLAB_IOC_CANCEL_DELAYED_WORK		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_CANCEL_DELAYED_WORK, struct wqlab_cmd)
#define WQLAB_IOC_CANCEL_DELAYED_WORK_SYNC	_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_CANCEL_DELAYED_WORK_SYNC, struct wqlab_cmd)
#define WQLAB_IOC_WORK_PENDING			_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_WORK_PENDING, struct wqlab_cmd)
#define WQLAB_IOC_DELAYED_WORK_PENDING		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_DELAYED_WORK_PENDING, struct wqlab_cmd)
#define WQLAB_IOC_WORK_BUSY			_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_WORK_BUSY, struct wqlab_cmd)
#define WQLAB_IOC_DISABLE_WORK			_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_DISABLE_WORK, struct wqlab_cmd)
#define WQLAB_IOC_DISABLE_WORK_SYNC		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_DISABLE_WORK_SYNC, struct wqlab_cmd)
#define WQLAB_IOC_ENABLE_WORK			_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_ENABLE_WORK, struct wqlab_cmd)
#define WQLAB_IOC_DISABLE_DELAYED_WORK		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_DISABLE_DELAYED_WORK, struct wqlab_cmd)
#define WQLAB_IOC_DISABLE_DELAYED_WORK_SYNC	_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_DISABLE_DELAYED_WORK_SYNC, struct wqlab_cmd)
#define WQLAB_IOC_ENABLE_DELAYED_WORK		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_ENABLE_DELAYED_WORK, struct wqlab_cmd)
#define WQLAB_IOC_ENABLE_AND_QUEUE_WORK		_IOWR(WQLAB_IOC_MAGIC, WQLAB_NR_ENABLE_AND_QUEUE_WORK, struct wqlab_cmd)

#endif /* _UAPI_WQLAB_H */
