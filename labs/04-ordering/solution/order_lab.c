// SPDX-License-Identifier: GPL-2.0
/*
 * Lab 04, ordering: alloc_ordered_workqueue() against max_active > 1 (solution).
 *
 * At load, order_lab_init() makes two queues, "order_lab_ord" (ordered) and
 * "order_lab_par" (unbound, max_active 4), and queues four items on each, in turn;
 * every item sleeps 40 ms. rmmod destroys both. Grade: wqlab grade 04 --src DIR
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/module.h>
#include <linux/workqueue.h>

#define ORDER_LAB_ITEMS 4

static struct workqueue_struct *order_lab_ordered __maybe_unused;
static struct workqueue_struct *order_lab_parallel __maybe_unused;
static struct work_struct order_lab_a[ORDER_LAB_ITEMS], order_lab_b[ORDER_LAB_ITEMS];

static void order_lab_ordered_fn(struct work_struct *work)
{
	msleep(40);
}

static void order_lab_parallel_fn(struct work_struct *work)
{
	msleep(40);
}

static int __init order_lab_init(void)
{
	int i;

	/* TODO 1: order_lab_ordered: an ordered queue named "order_lab_ord" */
	order_lab_ordered = alloc_ordered_workqueue("order_lab_ord", 0);
	if (!order_lab_ordered)
		return -ENOMEM;
	/* TODO 2: order_lab_parallel: an unbound queue "order_lab_par", max_active 4 */
	order_lab_parallel = alloc_workqueue("order_lab_par", WQ_UNBOUND, 4);
	if (!order_lab_parallel) {
		destroy_workqueue(order_lab_ordered);
		return -ENOMEM;
	}

	for (i = 0; i < ORDER_LAB_ITEMS; i++) {
		INIT_WORK(&order_lab_a[i], order_lab_ordered_fn);
		INIT_WORK(&order_lab_b[i], order_lab_parallel_fn);
	}
	for (i = 0; i < ORDER_LAB_ITEMS; i++) {
		/* TODO 3: order_lab_a[i] on the ordered queue, order_lab_b[i] on the other */
		queue_work(order_lab_ordered, &order_lab_a[i]);
		queue_work(order_lab_parallel, &order_lab_b[i]);
	}
	return 0;
}

static void __exit order_lab_exit(void)
{
	/* TODO 4: destroy both queues */
	destroy_workqueue(order_lab_ordered);
	destroy_workqueue(order_lab_parallel);
}

module_init(order_lab_init);
module_exit(order_lab_exit);
MODULE_DESCRIPTION("wqlab lab 04: ordering");
MODULE_LICENSE("GPL");
