// SPDX-License-Identifier: GPL-2.0
/*
 * splatmod: prints a real kernel WARNING when loaded, so the harness's own tests can
 * prove that a splat fails the running test (tests/vm/test_harness.py). Nothing else.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bug.h>
#include <linux/module.h>

static int __init splatmod_init(void)
{
	WARN(1, "splatmod: a deliberate warning for the harness test\n");
	return 0;
}

static void __exit splatmod_exit(void)
{
}

module_init(splatmod_init);
module_exit(splatmod_exit);
MODULE_DESCRIPTION("Emit one deliberate WARNING (harness self-test)");
MODULE_AUTHOR("wqlab developers");
MODULE_LICENSE("GPL");
