// SPDX-License-Identifier: GPL-2.0
/*
 * Lab 05, CPU affinity and the concurrency-managed pools: bound, unbound, highpri,
 * cpu_intensive (solution).
 *
 * At load, pool_lab_init() makes four queues and queues on them:
 *   pool_lab_bound (per-CPU):        pool_lab_bound_fn on CPU `cpu`, then two
 *                                    pool_lab_spin_fn items on CPU 0: the first one
 *                                    queues the second as it starts
 *   pool_lab_unbound (WQ_UNBOUND):   pool_lab_unbound_fn
 *   pool_lab_highpri (WQ_HIGHPRI):   pool_lab_highpri_fn
 *   pool_lab_cpu (WQ_CPU_INTENSIVE): two pool_lab_hog_fn items on CPU 0, the same way
 * A spinning item keeps its CPU busy for 4 ms, never sleeping: it gives the CPU up only
 * when the scheduler asks, at cond_resched(). A hog spins too, and the first one goes
 * on spinning until the second has started (at most 250 ms).
 * Grade: wqlab grade 05 --src DIR
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/delay.h>
#include <linux/ktime.h>
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

/* how many hogs have started */
static atomic_t pool_lab_hogs = ATOMIC_INIT(0);

/* keep the CPU for @us microseconds, never sleeping */
static void pool_lab_spin_us(unsigned int us)
{
	ktime_t end = ktime_add_us(ktime_get(), us);

	while (ktime_before(ktime_get(), end))
		cond_resched();	/* the scheduler may run another task here */
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

/* the first one queues the second on its own CPU as it starts: it is running then */
static void pool_lab_spin_fn(struct work_struct *work)
{
	if (work == &pool_lab_spin_works[0]) {
		/* TODO 8: pool_lab_spin_works[1] on the same queue and CPU */
		queue_work_on(0, pool_lab_bound, &pool_lab_spin_works[1]);
	}
	pool_lab_spin_us(4000);
}

/*
 * The same, and the first hog goes on spinning until the second has started (at most
 * 250 ms). It never sleeps: the pool starts the second hog beside it only if a hog does
 * not count as running (WQ_CPU_INTENSIVE) or, from 6.5, once the first one has run for
 * workqueue.cpu_intensive_thresh_us (the grader makes that 1 s).
 */
static void pool_lab_hog_fn(struct work_struct *work)
{
	ktime_t deadline = ktime_add_ms(ktime_get(), 250);

	atomic_inc(&pool_lab_hogs);
	if (work == &pool_lab_hog_works[0]) {
		/* TODO 10: pool_lab_hog_works[1] on the same queue and CPU */
		queue_work_on(0, pool_lab_cpu, &pool_lab_hog_works[1]);
	}
	pool_lab_spin_us(4000);
	while (atomic_read(&pool_lab_hogs) < 2 && ktime_before(ktime_get(), deadline))
		pool_lab_spin_us(100);
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

	flush_work(&pool_lab_spin_works[0]);	/* wait for both spinners: then the hogs */
	flush_work(&pool_lab_spin_works[1]);
	/* TODO 9: pool_lab_hog_works[0] on pool_lab_cpu, on CPU 0 */
	queue_work_on(0, pool_lab_cpu, &pool_lab_hog_works[0]);

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
