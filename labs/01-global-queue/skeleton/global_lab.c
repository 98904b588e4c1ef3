// SPDX-License-Identifier: GPL-2.0
/*
 * Lab 01, the global queue: DECLARE_WORK, schedule_work, flush_work (student skeleton).
 *
 * At load, global_lab_init() runs the work item global_lab_work `runs` times on the
 * system workqueue, waiting for each run to finish before it queues the next.
 * Build: make -C /lib/modules/$(uname -r)/build M=$PWD
 * Grade: wqlab grade 01 --src DIR
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/module.h>
#include <linux/workqueue.h>

static unsigned int runs = 3;
module_param(runs, uint, 0444);
MODULE_PARM_DESC(runs, "how many times init runs the work item (1-10, default 3)");

static void __maybe_unused global_lab_fn(struct work_struct *work)
{
	pr_info("global_lab_fn runs on CPU %d\n", raw_smp_processor_id());
	msleep(5);
}

/* TODO 1: a statically initialised work item, global_lab_work, that runs global_lab_fn */

static int __init global_lab_init(void)
{
	unsigned int i;

	if (runs < 1 || runs > 10)
		return -EINVAL;
	for (i = 0; i < runs; i++) {
		/* TODO 2: queue global_lab_work on the system workqueue */
		/* TODO 3: wait until this run has finished */
	}
	return 0;
}

static void __exit global_lab_exit(void)
{
	/* TODO 4: nothing of global_lab_work may be pending or running once we return */
}

module_init(global_lab_init);
module_exit(global_lab_exit);
MODULE_DESCRIPTION("wqlab lab 01: the global queue");
MODULE_LICENSE("GPL");
