// SPDX-License-Identifier: GPL-2.0
/*
 * mymod: a driver developer's own module, tested with the wqlab pytest plugin from an
 * installed wqlab (test_mymod.py beside it). At load it allocates a workqueue
 * "mymod_wq" and queues one work item on it; rmmod flushes and destroys the queue.
 * Build: make -C $KDIR M=$PWD (the wqlab fixtures build it for the kernel they boot).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/module.h>
#include <linux/workqueue.h>

static struct workqueue_struct *mymod_wq;
static struct work_struct mymod_work;

static void mymod_fn(struct work_struct *work)
{
	msleep(5);
	pr_info("work done\n");
}

static int __init mymod_init(void)
{
	mymod_wq = alloc_workqueue("mymod_wq", WQ_UNBOUND, 1);
	if (!mymod_wq)
		return -ENOMEM;
	INIT_WORK(&mymod_work, mymod_fn);
	queue_work(mymod_wq, &mymod_work);
	return 0;
}

static void __exit mymod_exit(void)
{
	destroy_workqueue(mymod_wq);	/* drains: the item has run before it goes */
}

module_init(mymod_init);
module_exit(mymod_exit);
MODULE_DESCRIPTION("One work item on its own workqueue, tested with the wqlab plugin");
MODULE_LICENSE("GPL");
