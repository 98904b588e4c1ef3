// SPDX-License-Identifier: GPL-2.0
/*
 * wqlab: drive the whole workqueue API on command, from user space.
 *
 * Build:  make -C /lib/modules/$(uname -r)/build M=$PWD modules  (repo root)
 * Load:   insmod module/wqlab.ko [max_items=64]
 * Drive:  debugfs text plane, one command per write, result read back on the
 *         same descriptor:
 *           exec 3<>/sys/kernel/debug/wqlab/control
 *           echo "schedule_work id=0 sleep_ms=10" >&3; cat <&3   # ret=1
 *         or the ioctl plane on /dev/wqlab (include/uapi/wqlab.h), or the
 *         generic netlink family "wqlab" (wqlab_netlink.c), whose group
 *         "events" streams every run's start, end and block.
 *         `cat /sys/kernel/debug/wqlab/control` lists every command.
 * Watch:  /sys/kernel/debug/wqlab/{works,workqueues,stats,features} and the
 *         wqlab:* and workqueue:* trace events.
 *
 * docs/commands.md is the contract between this module and the harness.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <net/genetlink.h>

#include "wqlab.h"

static_assert(sizeof(struct wqlab_cmd) == 160);
static_assert(sizeof(struct wqlab_version) == 8);

unsigned int wqlab_max_items = WQLAB_MAX_ITEMS_DFL;
module_param_named(max_items, wqlab_max_items, uint, 0444);
MODULE_PARM_DESC(max_items, "size of the dynamic work item pool (default 64, max 1024)");

unsigned int wqlab_block_max_ms = WQLAB_BLOCK_MAX_MS_DFL;
module_param_named(block_max_ms, wqlab_block_max_ms, uint, 0444);
MODULE_PARM_DESC(block_max_ms, "longest a block=1 run waits for release, in ms (default 30000, 1..100000)");

static struct dentry *wqlab_root;

/* ---- debugfs text plane ------------------------------------------------ */

#define WQLAB_HELP_SIZE		8192
#define WQLAB_RESULT_SIZE	128

/**
 * struct wqlab_text - per-open state of the control file
 * @lock: serialises users of one open file
 * @buf: [lock] what read() returns: the last result line, or the help text
 * @len: [lock] length of @buf
 * @pos: [lock] read position in @buf; rewound by every write. Kept here, not
 *	 in file->f_pos, because the VFS does not store the position a write
 *	 sets when the write fails, and a rejected command must rewind too.
 */
struct wqlab_text {
	struct mutex lock;
	char *buf;
	size_t len;
	loff_t pos;
};

static int wqlab_control_open(struct inode *inode, struct file *file)
{
	struct wqlab_text *t = kzalloc(sizeof(*t), GFP_KERNEL);

	if (!t)
		return -ENOMEM;
	mutex_init(&t->lock);
	file->private_data = t;
	return nonseekable_open(inode, file);
}

static int wqlab_control_release(struct inode *inode, struct file *file)
{
	struct wqlab_text *t = file->private_data;

	kfree(t->buf);
	mutex_destroy(&t->lock);
	kfree(t);
	return 0;
}

static ssize_t wqlab_control_read(struct file *file, char __user *ubuf,
				  size_t count, loff_t *ppos)
{
	struct wqlab_text *t = file->private_data;
	ssize_t ret;

	mutex_lock(&t->lock);
	if (!t->buf) {
		t->buf = kmalloc(WQLAB_HELP_SIZE, GFP_KERNEL);
		if (!t->buf) {
			mutex_unlock(&t->lock);
			return -ENOMEM;
		}
		t->len = wqlab_cmd_help(t->buf, WQLAB_HELP_SIZE);
		t->pos = 0;
	}
	ret = simple_read_from_buffer(ubuf, count, &t->pos, t->buf, t->len);
	mutex_unlock(&t->lock);
	return ret;
}

/*
 * One write is one command line (< WQLAB_LINE_MAX bytes). The result line
 * replaces what read() returns, from its start; a rejected command fails the
 * write with its errno and read() then returns "err=-<errno>".
 */
static ssize_t wqlab_control_write(struct file *file, const char __user *ubuf,
				   size_t count, loff_t *ppos)
{
	struct wqlab_text *t = file->private_data;
	const struct wqlab_cmd_desc *desc = NULL;
	struct wqlab_cmd cmd;
	char line[WQLAB_LINE_MAX];
	char *buf;
	int ret;

	buf = kmalloc(WQLAB_RESULT_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;

	/*
	 * The file is 0600, but an open descriptor can be inherited by or
	 * passed to anyone: check the writer, as the ioctl plane does.
	 */
	if (!capable(CAP_SYS_ADMIN)) {
		ret = -EPERM;
	} else if (count >= WQLAB_LINE_MAX) {
		ret = -E2BIG;
	} else if (copy_from_user(line, ubuf, count)) {
		ret = -EFAULT;
	} else {
		line[count] = '\0';
		ret = wqlab_cmd_parse(strim(line), &desc, &cmd);
		if (!ret)
			ret = wqlab_cmd_exec(desc, &cmd);
	}
	/* wqlab_cmd_exec() counts what it runs; count lines rejected before it. */
	if (ret && !desc)
		atomic64_inc(&wqlab_stats.cmds_failed);

	mutex_lock(&t->lock);
	kfree(t->buf);
	t->buf = buf;
	if (ret)
		t->len = scnprintf(buf, WQLAB_RESULT_SIZE, "err=%d\n", ret);
	else
		t->len = wqlab_cmd_format(desc, &cmd, buf, WQLAB_RESULT_SIZE);
	t->pos = 0;
	mutex_unlock(&t->lock);
	return ret ?: count;
}

static const struct file_operations wqlab_control_fops = {
	.owner = THIS_MODULE,
	.open = wqlab_control_open,
	.release = wqlab_control_release,
	.read = wqlab_control_read,
	.write = wqlab_control_write,
};

DEFINE_SHOW_ATTRIBUTE(wqlab_works);
DEFINE_SHOW_ATTRIBUTE(wqlab_workqueues);
DEFINE_SHOW_ATTRIBUTE(wqlab_stats);
DEFINE_SHOW_ATTRIBUTE(wqlab_features);

/* ---- ioctl plane ------------------------------------------------------- */

static long wqlab_ioctl(struct file *file, unsigned int ioc, unsigned long arg)
{
	const struct wqlab_cmd_desc *desc;
	void __user *uarg = (void __user *)arg;
	struct wqlab_cmd cmd;
	int ret;

	if (_IOC_TYPE(ioc) != WQLAB_IOC_MAGIC)
		return -ENOTTY;
	if (ioc == WQLAB_IOC_VERSION) {
		struct wqlab_version v = {
			.abi_version = WQLAB_ABI_VERSION,
			.cmd_size = sizeof(struct wqlab_cmd),
		};

		if (!capable(CAP_SYS_ADMIN))
			return -EPERM;
		return copy_to_user(uarg, &v, sizeof(v)) ? -EFAULT : 0;
	}
	desc = wqlab_cmd_by_nr(_IOC_NR(ioc));
	if (!desc ||
	    ioc != _IOWR(WQLAB_IOC_MAGIC, desc->nr, struct wqlab_cmd))
		return -ENOTTY;
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	/*
	 * Copy in, and prove the result can be copied out by writing the
	 * argument back unchanged, before anything runs: a command whose
	 * result would be lost (-EFAULT) must not have run.
	 */
	if (copy_from_user(&cmd, uarg, sizeof(cmd)) ||
	    copy_to_user(uarg, &cmd, sizeof(cmd))) {
		atomic64_inc(&wqlab_stats.cmds_failed);
		return -EFAULT;
	}
	ret = wqlab_cmd_exec(desc, &cmd);
	if (ret)
		return ret;
	if (copy_to_user(uarg, &cmd, sizeof(cmd))) {
		/* Unmapped by another thread meanwhile: undo what can be undone. */
		wqlab_cmd_undo(desc, &cmd);
		return -EFAULT;
	}
	return 0;
}

static const struct file_operations wqlab_dev_fops = {
	.owner = THIS_MODULE,
	.open = nonseekable_open,
	.unlocked_ioctl = wqlab_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice wqlab_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "wqlab",
	.fops = &wqlab_dev_fops,
	.mode = 0600,
};

/* ---- init/exit --------------------------------------------------------- */

static int __init wqlab_init(void)
{
	int ret;

	if (!wqlab_max_items || wqlab_max_items > WQLAB_MAX_ITEMS_MAX) {
		pr_err("max_items must be 1..%d\n", WQLAB_MAX_ITEMS_MAX);
		return -EINVAL;
	}
	if (!wqlab_block_max_ms || wqlab_block_max_ms > WQLAB_BLOCK_MAX_MS_MAX) {
		pr_err("block_max_ms must be 1..%d\n", WQLAB_BLOCK_MAX_MS_MAX);
		return -EINVAL;
	}
	ret = wqlab_work_init();
	if (ret)
		return ret;
	ret = misc_register(&wqlab_misc);
	if (ret)
		goto err_work;
	ret = wqlab_nl_init();
	if (ret)
		goto err_misc;

	wqlab_root = debugfs_create_dir("wqlab", NULL);
	debugfs_create_file("control", 0600, wqlab_root, NULL,
			    &wqlab_control_fops);
	debugfs_create_file("works", 0600, wqlab_root, NULL, &wqlab_works_fops);
	debugfs_create_file("workqueues", 0600, wqlab_root, NULL,
			    &wqlab_workqueues_fops);
	debugfs_create_file("stats", 0600, wqlab_root, NULL, &wqlab_stats_fops);
	debugfs_create_file("features", 0600, wqlab_root, NULL,
			    &wqlab_features_fops);
	pr_info("loaded: abi %d, %u items, %d commands\n", WQLAB_ABI_VERSION,
		wqlab_max_items, wqlab_nr_cmds);
	return 0;

err_misc:
	misc_deregister(&wqlab_misc);
err_work:
	wqlab_work_exit();
	return ret;
}

static void __exit wqlab_exit(void)
{
	/* The planes first: no command can start after this. */
	debugfs_remove(wqlab_root);
	misc_deregister(&wqlab_misc);
	/*
	 * A netlink command holds no module reference: stop (new commands get
	 * -ESHUTDOWN, runs are cut short) so the ones in flight return, then
	 * wqlab_nl_exit() waits for them (those run from its queue answer
	 * first) and unregisters.
	 */
	wqlab_work_stop();
	wqlab_nl_exit();
	wqlab_work_exit();
	pr_info("unloaded\n");
}

module_init(wqlab_init);
module_exit(wqlab_exit);
MODULE_DESCRIPTION("wqlab: drive the workqueue API on command (debugfs, ioctl, generic netlink)");
MODULE_AUTHOR("wqlab developers");
MODULE_LICENSE("GPL");
MODULE_VERSION("0.1.0");	/* the wqlab package's version (wqlab/__init__.py) */
/*
 * No MODULE_ALIAS_GENL_FAMILY: resolving the family name needs no privilege and
 * would let any user autoload a teaching module installed under /lib/modules.
 */
