// SPDX-License-Identifier: GPL-2.0
/*
 * Lab 02, delayed work and cancellation (student skeleton).
 *
 * At load, delayed_lab_init() arms delayed_lab_work to run delay_ms from now, arms
 * delayed_lab_late for five times that, and takes delayed_lab_late back before it
 * expires; `cancelled` (read-only parameter) says whether that found it pending.
 * Grade: wqlab grade 02 --src DIR
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/module.h>
#include <linux/workqueue.h>

static unsigned int delay_ms = 200;
module_param(delay_ms, uint, 0444);
MODULE_PARM_DESC(delay_ms, "delay of delayed_lab_work in ms (10-2000, default 200)");

static bool cancelled;
module_param(cancelled, bool, 0444);
MODULE_PARM_DESC(cancelled, "set by init: what cancelling delayed_lab_late returned");

static void __maybe_unused delayed_lab_fn(struct work_struct *work)
{
	pr_info("delayed_lab_fn: %u ms are up\n", delay_ms);
}

static void __maybe_unused delayed_lab_late_fn(struct work_struct *work)
{
	pr_info("delayed_lab_late_fn ran: it should have been cancelled\n");
}

/* TODO 1: a delayed work item, delayed_lab_work, that runs delayed_lab_fn */
/* TODO 2: a delayed work item, delayed_lab_late, that runs delayed_lab_late_fn */

static int __init delayed_lab_init(void)
{
	if (delay_ms < 10 || delay_ms > 2000)
		return -EINVAL;
	/* TODO 3: run delayed_lab_work on the system workqueue delay_ms from now */
	/* TODO 4: arm delayed_lab_late to run 5 * delay_ms from now */
	/* TODO 5: take delayed_lab_late back before it runs; keep the result in cancelled */

	return 0;
}

static void __exit delayed_lab_exit(void)
{
	/* TODO 6: neither item may be armed, pending or running once we return */
}

module_init(delayed_lab_init);
module_exit(delayed_lab_exit);
MODULE_DESCRIPTION("wqlab lab 02: delayed work and cancellation");
MODULE_LICENSE("GPL");
