// SPDX-License-Identifier: GPL-2.0
/*
 * Lab 05, CPU affinity and the concurrency-managed pools: bound, unbound, highpri,
 * cpu_intensive (solution).
 *
 * At load, pool_lab_init() makes four queues and queues on them:
 *   pool_lab_bound (per-CPU):        pool_lab_bound_fn on CPU `cpu`, then two
 *                                    pool_lab_spin_fn items on CPU 0, the second
 *                                    queued once the first runs
 *   pool_lab_unbound (WQ_UNBOUND):   pool_lab_unbound_fn
 *   pool_lab_highpri (WQ_HIGHPRI):   pool_lab_highpri_fn
 *   pool_lab_cpu (WQ_CPU_INTENSIVE): two pool_lab_hog_fn items on CPU 0, the same way
 * A spinning item keeps its CPU busy for 4 ms, giving it up only at cond_resched().
 * Grade: wqlab grade 05 --src DIR
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/workqueue.h>

static unsigned int cpu = 1;
module_param(cpu, uint, 0444);
MODULE_PARM_DESC(cpu, "the CPU pool_lab_bound_fn must run on (default 1)");

static struct workqueue_struct *pool_lab_bound, *pool_lab_unbound;
static struct workqueue_struct *pool_lab_highpri, *pool_lab_cpu;
static struct work_struct pool_lab_bound_work, pool_lab_unbound_work, pool_lab_highpri_work;
static struct work_struct pool_lab_spin_works[2], pool_lab_hog_works[2];

/* signalled by each spinning item as it starts: the next one is queued only then */
static DECLARE_COMPLETION(pool_lab_spinning);

/* 4 ms of CPU time, short of the 10 ms after which 6.5+ marks an item CPU-intensive */
static void pool_lab_busy(void)
{
	int i;

	complete(&pool_lab_spinning);
	for (i = 0; i < 40; i++) {
		udelay(100);
		cond_resched();
	}
}

static void pool_lab_bound_fn(struct work_struct *work)
{
	msleep(2);
}

static void pool_lab_unbound_fn(struct work_struct *work)
{
	msleep(2);
}

static void pool_lab_highpri_fn(struct work_struct *work)
{
	msleep(2);
}

static void pool_lab_spin_fn(struct work_struct *work)
{
	pool_lab_busy();
}

static void pool_lab_hog_fn(struct work_struct *work)
{
	pool_lab_busy();
}

static void pool_lab_destroy(void)
{
	if (pool_lab_cpu)
		destroy_workqueue(pool_lab_cpu);
	if (pool_lab_highpri)
		destroy_workqueue(pool_lab_highpri);
	if (pool_lab_unbound)
		destroy_workqueue(pool_lab_unbound);
	if (pool_lab_bound)
		destroy_workqueue(pool_lab_bound);
}

static int __init pool_lab_init(void)
{
	int i;

	if (cpu >= nr_cpu_ids || !cpu_online(cpu))
		return -EINVAL;
	/* TODO 1: pool_lab_bound: a per-CPU queue (no flags) named "pool_lab_bound" */
	pool_lab_bound = alloc_workqueue("pool_lab_bound", 0, 0);
	/* TODO 2: pool_lab_unbound: an unbound queue named "pool_lab_unbound" */
	pool_lab_unbound = alloc_workqueue("pool_lab_unbound", WQ_UNBOUND, 0);
	/* TODO 3: pool_lab_highpri: a per-CPU high priority queue, "pool_lab_highpri" */
	pool_lab_highpri = alloc_workqueue("pool_lab_highpri", WQ_HIGHPRI, 0);
	/* TODO 4: pool_lab_cpu: a per-CPU queue for CPU hogs, "pool_lab_cpu" */
	pool_lab_cpu = alloc_workqueue("pool_lab_cpu", WQ_CPU_INTENSIVE, 0);
	if (!pool_lab_bound || !pool_lab_unbound || !pool_lab_highpri || !pool_lab_cpu) {
		pool_lab_destroy();
		return -ENOMEM;
	}

	INIT_WORK(&pool_lab_bound_work, pool_lab_bound_fn);
	INIT_WORK(&pool_lab_unbound_work, pool_lab_unbound_fn);
	INIT_WORK(&pool_lab_highpri_work, pool_lab_highpri_fn);
	for (i = 0; i < 2; i++) {
		INIT_WORK(&pool_lab_spin_works[i], pool_lab_spin_fn);
		INIT_WORK(&pool_lab_hog_works[i], pool_lab_hog_fn);
	}
	/* TODO 5: pool_lab_bound_work on pool_lab_bound, on CPU `cpu` */
	queue_work_on(cpu, pool_lab_bound, &pool_lab_bound_work);
	/* TODO 6: pool_lab_unbound_work and pool_lab_highpri_work on their queues */
	queue_work(pool_lab_unbound, &pool_lab_unbound_work);
	queue_work(pool_lab_highpri, &pool_lab_highpri_work);
	/* TODO 7: pool_lab_spin_works[0] on pool_lab_bound, on CPU 0 */
	queue_work_on(0, pool_lab_bound, &pool_lab_spin_works[0]);

	wait_for_completion_timeout(&pool_lab_spinning, 2 * HZ);	/* it is running */
	/* TODO 8: pool_lab_spin_works[1] on the same queue and CPU; wait for both */
	queue_work_on(0, pool_lab_bound, &pool_lab_spin_works[1]);
	flush_workqueue(pool_lab_bound);

	reinit_completion(&pool_lab_spinning);
	/* TODO 9: pool_lab_hog_works[0] on pool_lab_cpu, on CPU 0 */
	queue_work_on(0, pool_lab_cpu, &pool_lab_hog_works[0]);

	wait_for_completion_timeout(&pool_lab_spinning, 2 * HZ);	/* it is running */
	/* TODO 10: pool_lab_hog_works[1] on the same queue and CPU */
	queue_work_on(0, pool_lab_cpu, &pool_lab_hog_works[1]);

	return 0;
}

static void __exit pool_lab_exit(void)
{
	pool_lab_destroy();	/* each destroy_workqueue() runs what is queued first */
}

module_init(pool_lab_init);
module_exit(pool_lab_exit);
MODULE_DESCRIPTION("wqlab lab 05: CPU affinity and the concurrency-managed pools");
MODULE_LICENSE("GPL");
