// SPDX-License-Identifier: GPL-2.0
/*
 * Lab 06, safe teardown: cancel and flush before you free, destroy the queue last
 * (student skeleton).
 *
 * At load, teardown_lab_init() allocates a device-like structure holding a delayed work
 * item, the "tick", that re-arms itself every period_ms on the queue "teardown_lab".
 * rmmod must stop the tick for good, then destroy the queue, then free the structure:
 * any other order leaves a timer or a work item pointing into freed memory or into the
 * module's unloaded code. Grade: wqlab grade 06 --src DIR
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/workqueue.h>

static unsigned int period_ms = 50;
module_param(period_ms, uint, 0444);
MODULE_PARM_DESC(period_ms, "the tick's period in ms (10-1000, default 50)");

struct teardown_lab_dev {
	struct delayed_work tick;
	unsigned int ticks;
};

static struct workqueue_struct *teardown_lab_wq;
static struct teardown_lab_dev *teardown_lab_dev;

static void teardown_lab_tick_fn(struct work_struct *work)
{
	struct teardown_lab_dev *dev = container_of(to_delayed_work(work),
						    struct teardown_lab_dev, tick);

	dev->ticks++;
	/* re-arm: the next tick in period_ms, for as long as the module lives */
	queue_delayed_work(teardown_lab_wq, &dev->tick, msecs_to_jiffies(period_ms));
}

static int __init teardown_lab_init(void)
{
	if (period_ms < 10 || period_ms > 1000)
		return -EINVAL;
	teardown_lab_dev = kzalloc(sizeof(*teardown_lab_dev), GFP_KERNEL);
	if (!teardown_lab_dev)
		return -ENOMEM;
	teardown_lab_wq = alloc_workqueue("teardown_lab", 0, 0);
	if (!teardown_lab_wq) {
		kfree(teardown_lab_dev);
		return -ENOMEM;
	}
	INIT_DELAYED_WORK(&teardown_lab_dev->tick, teardown_lab_tick_fn);
	/* TODO 1: start the tick: its first run at once, on teardown_lab_wq */

	return 0;
}

static void __exit teardown_lab_exit(void)
{
	/* TODO 2: stop the tick for good (it re-arms itself: a plain cancel can lose) */
	/* TODO 3: nothing is left to run: destroy the queue */

	pr_info("%u ticks\n", teardown_lab_dev->ticks);
	kfree(teardown_lab_dev);
}

module_init(teardown_lab_init);
module_exit(teardown_lab_exit);
MODULE_DESCRIPTION("wqlab lab 06: safe teardown");
MODULE_LICENSE("GPL");
