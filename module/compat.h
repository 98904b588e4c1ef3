/* SPDX-License-Identifier: GPL-2.0 */
/*
 * compat.h - every kernel-version difference wqlab copes with, in one place.
 *
 * Most workqueue APIs are detected by probing <linux/workqueue.h> of the
 * kernel being built against (module/Kbuild greps it and defines
 * WQLAB_HAVE_*), not by LINUX_VERSION_CODE: Debian and the stable trees
 * backport workqueue APIs (Debian's 6.12.95 has system_percpu_wq and
 * system_dfl_wq from 6.17 but not WQ_PERCPU). Behaviour changes that no
 * header shows use LINUX_VERSION_CODE.
 *
 * Upstream commit ids are given where known, each checked against the
 * upstream log or the maintainers' own messages.
 */
#ifndef _WQLAB_COMPAT_H
#define _WQLAB_COMPAT_H

#include <linux/errno.h>
#include <linux/version.h>
#include <linux/workqueue.h>

/*
 * WQ_BH, system_bh_wq, system_bh_highpri_wq: v6.9, commit 4cb1ef64609f
 * ("workqueue: Implement BH workqueues to eventually replace tasklets").
 */
#ifdef WQLAB_HAVE_WQ_BH
#define WQLAB_KWQ_BH			WQ_BH
#else
#define WQLAB_KWQ_BH			0
#endif
#ifdef WQLAB_HAVE_SYSTEM_BH_WQ
#define wqlab_system_bh_wq()		system_bh_wq
#define wqlab_system_bh_highpri_wq()	system_bh_highpri_wq
#else
#define wqlab_system_bh_wq()		NULL
#define wqlab_system_bh_highpri_wq()	NULL
#endif

/*
 * WQ_PERCPU: v6.17, commit 930c2ea566af ("workqueue: Add new WQ_PERCPU
 * flag"). system_percpu_wq and system_dfl_wq: v6.17, commit 128ea9f6ccfb
 * ("workqueue: Add system_percpu_wq and system_dfl_wq"), backported to
 * 6.12.y (as 85d6d6118e4f) without WQ_PERCPU.
 */
#ifdef WQLAB_HAVE_WQ_PERCPU
#define WQLAB_KWQ_PERCPU		WQ_PERCPU
#else
#define WQLAB_KWQ_PERCPU		0
#endif
#ifdef WQLAB_HAVE_SYSTEM_PERCPU_WQ
#define wqlab_system_percpu_wq()	system_percpu_wq
#else
#define wqlab_system_percpu_wq()	NULL
#endif
/*
 * Which queue schedule_*() use: system_percpu_wq from v6.17 (commit
 * 128ea9f6ccfb) and where that is backported (Debian 6.12.95+), a queue of
 * its own, also named "events", beside system_wq. The kernel keeps an item
 * from running twice at once only on one queue, so the `schedule_*`
 * commands must record the queue they really use: an item run by
 * schedule_work() and queued meanwhile with queue_work(system_wq) ran twice
 * at once on Debian 6.12 (fuzzer, stats run_overlaps).
 */
#ifdef WQLAB_SCHEDULE_PERCPU
#define WQLAB_SCHEDULE_WQ_PERCPU	1
#else
#define WQLAB_SCHEDULE_WQ_PERCPU	0
#endif

#ifdef WQLAB_HAVE_SYSTEM_DFL_WQ
#define wqlab_system_dfl_wq()		system_dfl_wq
#else
#define wqlab_system_dfl_wq()		NULL
#endif

/*
 * Unbound workqueues with max_active == 1 stopped being implicitly ordered
 * in v6.9, commit 3bc1e711c26b ("workqueue: Don't implicitly make UNBOUND
 * workqueues w/ @max_active==1 ordered").
 */
#define WQLAB_UNBOUND_MAX_ACTIVE_1_ORDERED \
	(LINUX_VERSION_CODE < KERNEL_VERSION(6, 9, 0))

/*
 * cancel_work() (non-sync) is exported and declared from v5.19/v6.0 (it was
 * static in kernel/workqueue.c before; commit id not known here). The header
 * probe decides; -EOPNOTSUPP where absent.
 */
static inline int wqlab_cancel_work(struct work_struct *work, bool *ret)
{
#ifdef WQLAB_HAVE_CANCEL_WORK
	*ret = cancel_work(work);
	return 0;
#else
	return -EOPNOTSUPP;
#endif
}

/*
 * disable_work(), disable_work_sync(), enable_work() and the delayed
 * variants: v6.10, commit 86898fa6b8cd ("workqueue: Implement disable/enable
 * for (delayed) work items"). -EOPNOTSUPP where absent.
 */
#ifdef WQLAB_HAVE_DISABLE_WORK
#define WQLAB_DISABLE_WORK 1
#define wqlab_disable_work(w)			disable_work(w)
#define wqlab_disable_work_sync(w)		disable_work_sync(w)
#define wqlab_enable_work(w)			enable_work(w)
#define wqlab_disable_delayed_work(w)		disable_delayed_work(w)
#define wqlab_disable_delayed_work_sync(w)	disable_delayed_work_sync(w)
#define wqlab_enable_delayed_work(w)		enable_delayed_work(w)
#else
#define WQLAB_DISABLE_WORK 0
#define wqlab_disable_work(w)			((void)(w), false)
#define wqlab_disable_work_sync(w)		((void)(w), false)
#define wqlab_enable_work(w)			((void)(w), false)
#define wqlab_disable_delayed_work(w)		((void)(w), false)
#define wqlab_disable_delayed_work_sync(w)	((void)(w), false)
#define wqlab_enable_delayed_work(w)		((void)(w), false)
#endif

/*
 * enable_and_queue_work(): v6.11, commit 474a549ff4c9 ("workqueue:
 * Introduce enable_and_queue_work() convenience function"). -EOPNOTSUPP
 * where absent.
 */
#ifdef WQLAB_HAVE_ENABLE_AND_QUEUE_WORK
#define WQLAB_ENABLE_AND_QUEUE_WORK 1
#define wqlab_enable_and_queue_work(wq, w)	enable_and_queue_work(wq, w)
#else
#define WQLAB_ENABLE_AND_QUEUE_WORK 0
#define wqlab_enable_and_queue_work(wq, w)	((void)(wq), (void)(w), false)
#endif

/*
 * flush_scheduled_work(): v5.19 made it a macro that may warn at compile
 * time (commit c4f135d64382, "workqueue: Wrap flush_workqueue() using a
 * macro"), first disabled with "if (0)" (the v6.1 header), later
 * unconditional (the v6.12 header); v6.5 added the runtime warning (commit
 * 20bdedafd2f6, "workqueue: Warn attempt to flush system-wide workqueues."). Where it warns
 * or is gone, the `flush_scheduled_work` command flushes every wqlab item
 * instead (the replacement the kernel documentation recommends: flush the
 * work items you own); `flush_workqueue wq=system` still flushes system_wq.
 */
#ifdef WQLAB_HAVE_FLUSH_SCHEDULED_WORK
#define WQLAB_FLUSH_SCHEDULED_WORK 1
#define wqlab_flush_scheduled_work()	flush_scheduled_work()
#else
#define WQLAB_FLUSH_SCHEDULED_WORK 0
#define wqlab_flush_scheduled_work()	do { } while (0)
#endif

/*
 * WQ_NAME_LEN (private to kernel/workqueue.c): 24 bytes, 32 from v6.8,
 * commit 31c89007285d ("workqueue.c: Increase workqueue name length").
 * alloc_workqueue() truncates longer names silently.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
#define WQLAB_KWQ_NAME_LEN	32
#else
#define WQLAB_KWQ_NAME_LEN	24
#endif

#endif /* _WQLAB_COMPAT_H */
