// SPDX-License-Identifier: GPL-2.0
/*
 * debugsplat: on load, provoke the real kernel reports of the debug line's checkers
 * (KERNEL=debug: KASAN, KFENCE, lockdep, ODEBUG, atomic sleep, kmemleak, hung task,
 * workqueue watchdog, soft lockup, RCU stall), one per name in what=, comma-separated:
 *
 *   insmod debugsplat.ko what=kasan,odebug
 *
 * tests/debugsplat/capture.py boots the debug line, loads this module case by case and
 * keeps what the kernel printed as tests/unit/data/splats/debug-<case>.txt, the texts the
 * splat detector's unit tests read. Only for a throw-away VM: several cases leave the
 * kernel with lockdep off or a task stuck for seconds.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/kfence.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timer.h>
#include <linux/workqueue.h>

static char *what = "";
module_param(what, charp, 0444);
MODULE_PARM_DESC(what, "comma-separated cases to provoke (see the table in the source)");
static unsigned int seconds = 12;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "how long the hung/lockup cases block or spin (default 12)");

static DEFINE_MUTEX(debugsplat_a);
static DEFINE_MUTEX(debugsplat_b);
static DEFINE_SPINLOCK(debugsplat_lock);
static DEFINE_SPINLOCK(debugsplat_softirq_lock);
static struct timer_list debugsplat_timer;

struct debugsplat_obj {
	struct delayed_work dw;
};

static void debugsplat_nop(struct work_struct *work)
{
}

/* KASAN: read 64 bytes of a freed kmalloc object */
static noinline void debugsplat_kasan(void)
{
	char *p = kmalloc(64, GFP_KERNEL);

	if (!p)
		return;
	kfree(p);
	OPTIMIZER_HIDE_VAR(p);
	pr_info("kasan: read after free: %d\n", READ_ONCE(p[8]));
}

/* KFENCE: allocate until KFENCE samples one allocation, then read it after free */
static noinline void debugsplat_kfence(void)
{
	unsigned long end = jiffies + 30 * HZ;
	char *p;

	while (time_before(jiffies, end)) {
		p = kmalloc(32, GFP_KERNEL);
		if (!p)
			return;
		if (is_kfence_address(p)) {
			kfree(p);
			OPTIMIZER_HIDE_VAR(p);
			pr_info("kfence: read after free: %d\n", READ_ONCE(p[0]));
			return;
		}
		kfree(p);
		cond_resched();	/* no sleep: the sample goes to the first allocation after the gate opens */
	}
	pr_info("kfence: no sampled allocation within 30 s\n");
}

/*
 * ODEBUG: free an object whose delayed work's timer is armed; ODEBUG's fixup stops the
 * timer. Needs CONFIG_DEBUG_OBJECTS_FREE: without it nothing checks freed memory and the
 * timer later fires in freed memory (an Oops in __run_timers).
 */
static noinline void debugsplat_odebug(void)
{
	struct debugsplat_obj *o = kmalloc(sizeof(*o), GFP_KERNEL);

	if (!o)
		return;
	INIT_DELAYED_WORK(&o->dw, debugsplat_nop);
	schedule_delayed_work(&o->dw, 60 * HZ);
	kfree(o);
}

/* lockdep: a then b, later b then a */
static noinline void debugsplat_circular(void)
{
	mutex_lock(&debugsplat_a);
	mutex_lock(&debugsplat_b);
	mutex_unlock(&debugsplat_b);
	mutex_unlock(&debugsplat_a);
	mutex_lock(&debugsplat_b);
	mutex_lock(&debugsplat_a);
	mutex_unlock(&debugsplat_a);
	mutex_unlock(&debugsplat_b);
}

/* lockdep: two locks of one class (one init site) nested without annotation */
static noinline void debugsplat_recursive(void)
{
	spinlock_t locks[2];
	int i;

	for (i = 0; i < 2; i++)
		spin_lock_init(&locks[i]);
	spin_lock(&locks[0]);
	spin_lock(&locks[1]);
	spin_unlock(&locks[1]);
	spin_unlock(&locks[0]);
}

static void debugsplat_timer_fn(struct timer_list *t)
{
	spin_lock(&debugsplat_softirq_lock);
	spin_unlock(&debugsplat_softirq_lock);
}

/* lockdep: a lock taken with softirqs on, then in a timer (softirq) */
static noinline void debugsplat_inconsistent(void)
{
	spin_lock(&debugsplat_softirq_lock);
	spin_unlock(&debugsplat_softirq_lock);
	mod_timer(&debugsplat_timer, jiffies + 1);
	msleep(200);
	del_timer_sync(&debugsplat_timer);
}

/* might_sleep() under a spinlock */
static noinline void debugsplat_atomic_sleep(void)
{
	spin_lock(&debugsplat_lock);
	might_sleep();
	spin_unlock(&debugsplat_lock);
}

/* schedule() with preemption disabled */
static noinline void debugsplat_sched_atomic(void)
{
	preempt_disable();
	schedule_timeout_uninterruptible(1);
	preempt_enable();
}

/* kmemleak: objects nobody points to any more */
static noinline void debugsplat_leak(void)
{
	int i;

	for (i = 0; i < 3; i++) {
		void *p = kmalloc(128, GFP_KERNEL);

		pr_info("leak: %d at %p\n", i, p);
	}
}

/* hung task: uninterruptible sleep in init (lower hung_task_timeout_secs first) */
static noinline void debugsplat_hung(void)
{
	msleep(seconds * 1000);
}

static void debugsplat_spin(struct work_struct *work)
{
	rcu_read_lock();
	mdelay(seconds * 1000);
	rcu_read_unlock();
}

static DECLARE_WORK(debugsplat_spin_work, debugsplat_spin);
static DECLARE_WORK(debugsplat_stuck_work, debugsplat_nop);

/* a work item spinning in an RCU reader, another stuck behind it on the same pool:
 * soft lockup, workqueue lockup, RCU stall (lower their thresholds first) */
static noinline void debugsplat_lockup(void)
{
	queue_work_on(0, system_wq, &debugsplat_spin_work);
	queue_work_on(0, system_wq, &debugsplat_stuck_work);
	flush_work(&debugsplat_spin_work);
	flush_work(&debugsplat_stuck_work);
}

static const struct {
	const char *name;
	void (*fn)(void);
} debugsplat_cases[] = {
	{ "kasan", debugsplat_kasan },
	{ "kfence", debugsplat_kfence },
	{ "odebug", debugsplat_odebug },
	{ "circular", debugsplat_circular },
	{ "recursive", debugsplat_recursive },
	{ "inconsistent", debugsplat_inconsistent },
	{ "atomic_sleep", debugsplat_atomic_sleep },
	{ "sched_atomic", debugsplat_sched_atomic },
	{ "leak", debugsplat_leak },
	{ "hung", debugsplat_hung },
	{ "lockup", debugsplat_lockup },
};

static int __init debugsplat_init(void)
{
	char *buf, *cur, *name;
	int i;

	timer_setup(&debugsplat_timer, debugsplat_timer_fn, 0);
	buf = kstrdup(what, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	cur = buf;
	while ((name = strsep(&cur, ",")) != NULL) {
		for (i = 0; i < ARRAY_SIZE(debugsplat_cases); i++) {
			if (strcmp(name, debugsplat_cases[i].name))
				continue;
			pr_info("case %s\n", name);
			debugsplat_cases[i].fn();
			pr_info("case %s done\n", name);
			break;
		}
		if (i == ARRAY_SIZE(debugsplat_cases) && *name)
			pr_warn("unknown case '%s'\n", name);
	}
	kfree(buf);
	return 0;
}

static void __exit debugsplat_exit(void)
{
	del_timer_sync(&debugsplat_timer);
	cancel_work_sync(&debugsplat_spin_work);
	cancel_work_sync(&debugsplat_stuck_work);
}

module_init(debugsplat_init);
module_exit(debugsplat_exit);
MODULE_DESCRIPTION("Provoke real debug-kernel reports (splat detector test data)");
MODULE_AUTHOR("wqlab developers");
MODULE_LICENSE("GPL");
