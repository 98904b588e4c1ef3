// SPDX-License-Identifier: GPL-2.0
/*
 * Lab 07, bug patterns: the workqueue mistakes the kernel reports itself, made on
 * purpose, one per load (solution).
 *
 *   insmod bugs_lab.ko bug=flush_dependency   a WQ_MEM_RECLAIM worker flushes a
 *                                             !WQ_MEM_RECLAIM queue's item (WARN)
 *   insmod bugs_lab.ko bug=queue_draining     queueing onto a queue being drained (WARN)
 *   insmod bugs_lab.ko bug=destroy_busy       queueing onto a queue being destroyed,
 *                                             after its drain (WARN: busy pwq, up to 6.2)
 *   insmod bugs_lab.ko bug=free_active        kfree() of a queued item (ODEBUG; a kernel
 *                                             with CONFIG_DEBUG_OBJECTS_FREE only)
 *   insmod bugs_lab.ko bug=self_flush         a work item flushes itself (lockdep; a
 *                                             kernel with lockdep only: it deadlocks,
 *                                             the module cannot be unloaded after it)
 *
 * Every case recovers what it can (the kernel's fixups, a stuck PENDING bit cleared), so
 * the VM lives on; each report is printed once per boot at most. Only ever load this in
 * a throw-away VM. Grade: wqlab grade 07 --src DIR (the debug cases: --kernel debug).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/workqueue.h>

static char *bug = "";
module_param(bug, charp, 0444);
MODULE_PARM_DESC(bug, "the mistake to make at load: flush_dependency, queue_draining, "
		 "destroy_busy, free_active or self_flush");

static DECLARE_COMPLETION(bugs_lab_release);
static DECLARE_COMPLETION(bugs_lab_draining);

static void bugs_lab_target_fn(struct work_struct *work)
{
	msleep(50);
}

/* --- flush_dependency ------------------------------------------------------------- */

static struct workqueue_struct *bugs_lab_plain;
static struct work_struct bugs_lab_target;

static void bugs_lab_flusher_fn(struct work_struct *work)
{
	queue_work(bugs_lab_plain, &bugs_lab_target);
	/* TODO 1: wait here for bugs_lab_target (a !WQ_MEM_RECLAIM queue's item) */
	flush_work(&bugs_lab_target);
}

static int bugs_lab_flush_dependency(void)
{
	struct workqueue_struct *reclaim;
	struct work_struct flusher;

	reclaim = alloc_workqueue("bugs_lab_reclaim", WQ_MEM_RECLAIM, 0);
	bugs_lab_plain = alloc_workqueue("bugs_lab_plain", 0, 0);
	if (!reclaim || !bugs_lab_plain)
		goto out;
	INIT_WORK(&bugs_lab_target, bugs_lab_target_fn);
	INIT_WORK_ONSTACK(&flusher, bugs_lab_flusher_fn);
	queue_work(reclaim, &flusher);
	flush_work(&flusher);
	flush_work(&bugs_lab_target);
	destroy_work_on_stack(&flusher);
out:
	if (bugs_lab_plain)
		destroy_workqueue(bugs_lab_plain);
	if (reclaim)
		destroy_workqueue(reclaim);
	return 0;
}

/* --- queue_draining ---------------------------------------------------------------- */

static struct workqueue_struct *bugs_lab_drainq;

static void bugs_lab_blocker_fn(struct work_struct *work)
{
	wait_for_completion_timeout(&bugs_lab_release, 10 * HZ);
}

static void bugs_lab_drainer_fn(struct work_struct *work)
{
	complete(&bugs_lab_draining);
	drain_workqueue(bugs_lab_drainq);	/* waits for the blocker */
}

static int bugs_lab_queue_draining(void)
{
	struct work_struct blocker, drainer, late;

	bugs_lab_drainq = alloc_workqueue("bugs_lab_drain", 0, 0);
	if (!bugs_lab_drainq)
		return -ENOMEM;
	INIT_WORK_ONSTACK(&blocker, bugs_lab_blocker_fn);
	INIT_WORK_ONSTACK(&drainer, bugs_lab_drainer_fn);
	INIT_WORK_ONSTACK(&late, bugs_lab_target_fn);
	queue_work(bugs_lab_drainq, &blocker);
	queue_work(system_unbound_wq, &drainer);
	wait_for_completion(&bugs_lab_draining);
	msleep(100);		/* drain_workqueue() is waiting for the blocker by now */
	/* TODO 2: queue `late` on bugs_lab_drainq, from here: outside its own workers */
	queue_work(bugs_lab_drainq, &late);

	complete(&bugs_lab_release);
	flush_work(&drainer);
	/* the refused item kept its PENDING bit: it is on no list, reset it before it goes */
	INIT_WORK_ONSTACK(&late, bugs_lab_target_fn);
	destroy_work_on_stack(&late);
	destroy_work_on_stack(&drainer);
	destroy_work_on_stack(&blocker);
	destroy_workqueue(bugs_lab_drainq);
	return 0;
}

/* --- destroy_busy ------------------------------------------------------------------ */

static struct workqueue_struct *bugs_lab_dying;
static struct work_struct bugs_lab_straggler;
static bool bugs_lab_armed;

/*
 * Given: runs inside destroy_workqueue(bugs_lab_dying), after its drain, when it stops the
 * queue's rescuer thread: the worst moment for a timer or another CPU to queue onto it.
 */
static void bugs_lab_hook(void)
{
	/* TODO 3: queue bugs_lab_straggler on bugs_lab_dying */
	queue_work(bugs_lab_dying, &bugs_lab_straggler);
}

static int bugs_lab_kthread_stop_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct task_struct *task = (struct task_struct *)regs_get_kernel_argument(regs, 0);

	if (READ_ONCE(bugs_lab_armed) && task && strstr(task->comm, "bugs_lab_dying")) {
		WRITE_ONCE(bugs_lab_armed, false);
		bugs_lab_hook();
	}
	return 0;
}

static struct kprobe bugs_lab_kp = {
	.symbol_name = "kthread_stop",
	.pre_handler = bugs_lab_kthread_stop_pre,
};

static int bugs_lab_destroy_busy(void)
{
	int ret;

	/* a rescuer (WQ_MEM_RECLAIM) makes destroy_workqueue() stop a thread of its own */
	bugs_lab_dying = alloc_workqueue("bugs_lab_dying", WQ_MEM_RECLAIM, 0);
	if (!bugs_lab_dying)
		return -ENOMEM;
	INIT_WORK(&bugs_lab_straggler, bugs_lab_target_fn);
	ret = register_kprobe(&bugs_lab_kp);
	if (ret) {
		destroy_workqueue(bugs_lab_dying);
		return ret;
	}
	WRITE_ONCE(bugs_lab_armed, true);
	destroy_workqueue(bugs_lab_dying);	/* leaked if the kernel found it busy */
	WRITE_ONCE(bugs_lab_armed, false);
	unregister_kprobe(&bugs_lab_kp);
	/* refused (6.3+: __WQ_DESTROYING) or run on the leaked queue: either way, settle it */
	if (!flush_work(&bugs_lab_straggler))
		INIT_WORK(&bugs_lab_straggler, bugs_lab_target_fn);
	return 0;
}

/* --- free_active (ODEBUG) ---------------------------------------------------------- */

struct bugs_lab_obj {
	struct work_struct work;
};

static int bugs_lab_free_active(void)
{
	struct workqueue_struct *ord;
	struct bugs_lab_obj *obj;
	struct work_struct blocker;

	if (!IS_ENABLED(CONFIG_DEBUG_OBJECTS_FREE) || !IS_ENABLED(CONFIG_DEBUG_OBJECTS_WORK))
		return -EOPNOTSUPP;	/* nothing would catch it: a real use-after-free */
	ord = alloc_ordered_workqueue("bugs_lab_ord", 0);
	obj = kzalloc(sizeof(*obj), GFP_KERNEL);
	if (!ord || !obj) {
		kfree(obj);
		if (ord)
			destroy_workqueue(ord);
		return -ENOMEM;
	}
	INIT_WORK_ONSTACK(&blocker, bugs_lab_blocker_fn);
	INIT_WORK(&obj->work, bugs_lab_target_fn);
	queue_work(ord, &blocker);
	queue_work(ord, &obj->work);	/* waits behind the blocker */
	/* TODO 4: free obj while its work item is still queued (and forget it) */
	kfree(obj);
	obj = NULL;

	complete(&bugs_lab_release);
	destroy_workqueue(ord);
	destroy_work_on_stack(&blocker);
	kfree(obj);		/* the right place: once nothing can run it (NULL if freed) */
	return 0;
}

/* --- self_flush (lockdep) ---------------------------------------------------------- */

static struct work_struct bugs_lab_selfish;

static void bugs_lab_selfish_fn(struct work_struct *work)
{
	/* TODO 5: wait for this very work item to finish */
	flush_work(work);
}

static int bugs_lab_self_flush(void)
{
	if (!IS_ENABLED(CONFIG_LOCKDEP))
		return -EOPNOTSUPP;	/* nothing would report it: it would only deadlock */
	INIT_WORK(&bugs_lab_selfish, bugs_lab_selfish_fn);
	schedule_work(&bugs_lab_selfish);
	/* a self-flush never ends: keep the module for good (rmmod would wait for ever) */
	__module_get(THIS_MODULE);
	return 0;
}

static int __init bugs_lab_init(void)
{
	if (!strcmp(bug, "flush_dependency"))
		return bugs_lab_flush_dependency();
	if (!strcmp(bug, "queue_draining"))
		return bugs_lab_queue_draining();
	if (!strcmp(bug, "destroy_busy"))
		return bugs_lab_destroy_busy();
	if (!strcmp(bug, "free_active"))
		return bugs_lab_free_active();
	if (!strcmp(bug, "self_flush"))
		return bugs_lab_self_flush();
	pr_err("bug=%s: not one of flush_dependency, queue_draining, destroy_busy, %s\n",
	       bug, "free_active, self_flush");
	return -EINVAL;
}

static void __exit bugs_lab_exit(void)
{
}

module_init(bugs_lab_init);
module_exit(bugs_lab_exit);
MODULE_DESCRIPTION("wqlab lab 07: workqueue bug patterns the kernel reports");
MODULE_LICENSE("GPL");
