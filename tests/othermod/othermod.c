// SPDX-License-Identifier: GPL-2.0
/*
 * othermod: a tiny module that is not wqlab, to show the wqlab pytest plugin testing
 * someone else's module (tests/vm/test_other_module.py). At load it allocates an
 * ordered workqueue "othermod_wq" and queues three items on it; rmmod flushes and
 * destroys it. Build: make -C $KDIR M=$PWD
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/module.h>
#include <linux/workqueue.h>

static struct workqueue_struct *othermod_wq;
static struct work_struct othermod_works[3];

static void othermod_fn(struct work_struct *work)
{
	msleep(2);
}

static int __init othermod_init(void)
{
	int i;

	othermod_wq = alloc_ordered_workqueue("othermod_wq", 0);
	if (!othermod_wq)
		return -ENOMEM;
	for (i = 0; i < ARRAY_SIZE(othermod_works); i++) {
		INIT_WORK(&othermod_works[i], othermod_fn);
		queue_work(othermod_wq, &othermod_works[i]);
	}
	return 0;
}

static void __exit othermod_exit(void)
{
	destroy_workqueue(othermod_wq);	/* drains: nothing is pending after this */
}

module_init(othermod_init);
module_exit(othermod_exit);
MODULE_DESCRIPTION("A tiny workqueue user, tested with the wqlab pytest plugin");
MODULE_AUTHOR("wqlab developers");
MODULE_LICENSE("GPL");
