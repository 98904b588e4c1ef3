// SPDX-License-Identifier: GPL-2.0
/*
 * wqlab: drive the workqueue API on command (walking skeleton).
 *
 *   echo "schedule_work id=0" > /sys/kernel/debug/wqlab/control
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/module.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>

static struct dentry *wqlab_root;

static void wqlab_static_fn(struct work_struct *work)
{
	pr_debug("static work ran on cpu %d\n", raw_smp_processor_id());
}

static DECLARE_WORK(wqlab_static_work, wqlab_static_fn);

static ssize_t wqlab_control_write(struct file *file, const char __user *ubuf,
				   size_t count, loff_t *ppos)
{
	char buf[64];
	size_t len = min(count, sizeof(buf) - 1);

	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	if (strcmp(strim(buf), "schedule_work id=0"))
		return -EINVAL;
	schedule_work(&wqlab_static_work);
	return count;
}

static const struct file_operations wqlab_control_fops = {
	.owner = THIS_MODULE,
	.write = wqlab_control_write,
};

static int __init wqlab_init(void)
{
	wqlab_root = debugfs_create_dir("wqlab", NULL);
	debugfs_create_file("control", 0600, wqlab_root, NULL, &wqlab_control_fops);
	return 0;
}

static void __exit wqlab_exit(void)
{
	debugfs_remove(wqlab_root);
	cancel_work_sync(&wqlab_static_work);
}

module_init(wqlab_init);
module_exit(wqlab_exit);
MODULE_DESCRIPTION("Drive the workqueue API on command");
MODULE_AUTHOR("wqlab developers");
MODULE_LICENSE("GPL");
MODULE_VERSION("0.1");
