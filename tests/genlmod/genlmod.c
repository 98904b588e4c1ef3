// SPDX-License-Identifier: GPL-2.0
/*
 * genlmod: a module that only registers (at load) and unregisters (at rmmod) a generic
 * netlink family, "wqlab_genltest", with one operation that answers nothing. Loading and
 * unloading it takes genetlink's cb_lock for writing: tests/vm/test_netlink.py checks
 * that a wqlab netlink command waiting for work does not hold that up, on every kernel
 * line (the debug line builds no distribution modules such as wireguard).
 * Build: make -C $KDIR M=$PWD
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <net/genetlink.h>

enum { GENLMOD_CMD_UNSPEC, GENLMOD_CMD_NOOP };

static int genlmod_noop(struct sk_buff *skb, struct genl_info *info)
{
	return 0;
}

static const struct genl_small_ops genlmod_ops[] = {
	{
		.cmd = GENLMOD_CMD_NOOP,
		.doit = genlmod_noop,
		.flags = GENL_ADMIN_PERM,
	},
};

static struct genl_family genlmod_family __ro_after_init = {
	.name = "wqlab_genltest",
	.version = 1,
	.module = THIS_MODULE,
	.small_ops = genlmod_ops,
	.n_small_ops = ARRAY_SIZE(genlmod_ops),
	.resv_start_op = GENLMOD_CMD_NOOP + 1,
};

static int __init genlmod_init(void)
{
	return genl_register_family(&genlmod_family);
}

static void __exit genlmod_exit(void)
{
	genl_unregister_family(&genlmod_family);
}

module_init(genlmod_init);
module_exit(genlmod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("wqlab test: registers a generic netlink family at load");
