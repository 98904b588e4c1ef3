// SPDX-License-Identifier: GPL-2.0
/*
 * Lab 03, your own queue: alloc_workqueue() flags and max_active (student skeleton).
 *
 * At load, ownq_lab_init() allocates the queue "ownq_lab" (unbound, at most max_active
 * items running at once) and queues `items` work items on it; each sleeps 30 ms.
 * rmmod destroys the queue. Grade: wqlab grade 03 --src DIR
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/module.h>
#include <linux/workqueue.h>

#define OWNQ_LAB_MAX_ITEMS 16

static unsigned int items = 6;
module_param(items, uint, 0444);
MODULE_PARM_DESC(items, "how many work items to queue (2-16, default 6)");

static unsigned int max_active = 2;
module_param(max_active, uint, 0444);
MODULE_PARM_DESC(max_active, "the queue's max_active (1-8, default 2)");

static struct workqueue_struct *ownq_lab_wq __maybe_unused;
static struct work_struct ownq_lab_works[OWNQ_LAB_MAX_ITEMS];

static void ownq_lab_fn(struct work_struct *work)
{
	msleep(30);
}

static int __init ownq_lab_init(void)
{
	unsigned int i;

	if (items < 2 || items > OWNQ_LAB_MAX_ITEMS || max_active < 1 || max_active > 8)
		return -EINVAL;
	/* TODO 1: ownq_lab_wq: an unbound queue named "ownq_lab", max_active at once */

	for (i = 0; i < items; i++) {
		INIT_WORK(&ownq_lab_works[i], ownq_lab_fn);
		/* TODO 2: queue item i on ownq_lab_wq */
	}
	return 0;
}

static void __exit ownq_lab_exit(void)
{
	/* TODO 3: destroy the queue (it runs what is still queued first) */
}

module_init(ownq_lab_init);
module_exit(ownq_lab_exit);
MODULE_DESCRIPTION("wqlab lab 03: your own queue");
MODULE_LICENSE("GPL");
