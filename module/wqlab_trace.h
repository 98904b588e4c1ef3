/* SPDX-License-Identifier: GPL-2.0 */
/*
 * wqlab tracepoints (system "wqlab"): enable with
 *   echo 1 > /sys/kernel/tracing/events/wqlab/enable
 * work=%p is the same hashed value the workqueue events print as
 * "work struct=", so the two can be joined.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM wqlab

#if !defined(_WQLAB_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _WQLAB_TRACE_H

#include <linux/tracepoint.h>
#include <linux/workqueue.h>

DECLARE_EVENT_CLASS(wqlab_work_class,
	TP_PROTO(u32 id, u64 seq, struct work_struct *work, int cpu),
	TP_ARGS(id, seq, work, cpu),
	TP_STRUCT__entry(
		__field(u32, id)
		__field(u64, seq)
		__field(void *, work)
		__field(int, cpu)
	),
	TP_fast_assign(
		__entry->id = id;
		__entry->seq = seq;
		__entry->work = work;
		__entry->cpu = cpu;
	),
	TP_printk("id=%u seq=%llu work=%p cpu=%d", __entry->id,
		  (unsigned long long)__entry->seq, __entry->work, __entry->cpu)
);

/* A work function starts (seq: global run sequence number). */
DEFINE_EVENT(wqlab_work_class, wqlab_work_run,
	TP_PROTO(u32 id, u64 seq, struct work_struct *work, int cpu),
	TP_ARGS(id, seq, work, cpu));

/* A run blocks until `release` (or rmmod). */
DEFINE_EVENT(wqlab_work_class, wqlab_work_block,
	TP_PROTO(u32 id, u64 seq, struct work_struct *work, int cpu),
	TP_ARGS(id, seq, work, cpu));

/* A work function returns (cpu may differ from the run's on unbound pools). */
DEFINE_EVENT(wqlab_work_class, wqlab_work_done,
	TP_PROTO(u32 id, u64 seq, struct work_struct *work, int cpu),
	TP_ARGS(id, seq, work, cpu));

/*
 * A run started while another run of the same item was in flight (never by
 * design: stats run_overlaps). other_seq/other_pid: the run in flight.
 * tracefs: echo traceoff > events/wqlab/wqlab_work_overlap/trigger keeps
 * the events that led to it in the buffer (wqlab.fuzzhost --trace).
 */
TRACE_EVENT(wqlab_work_overlap,
	TP_PROTO(u32 id, u64 seq, u64 other_seq, struct work_struct *work,
		 int cpu, pid_t other_pid),
	TP_ARGS(id, seq, other_seq, work, cpu, other_pid),
	TP_STRUCT__entry(
		__field(u32, id)
		__field(u64, seq)
		__field(u64, other_seq)
		__field(void *, work)
		__field(int, cpu)
		__field(pid_t, other_pid)
	),
	TP_fast_assign(
		__entry->id = id;
		__entry->seq = seq;
		__entry->other_seq = other_seq;
		__entry->work = work;
		__entry->cpu = cpu;
		__entry->other_pid = other_pid;
	),
	TP_printk("id=%u seq=%llu other_seq=%llu work=%p cpu=%d other_pid=%d",
		  __entry->id, (unsigned long long)__entry->seq,
		  (unsigned long long)__entry->other_seq, __entry->work,
		  __entry->cpu, __entry->other_pid)
);

/* A command ran (either plane): ioctl number, item id argument, result. */
TRACE_EVENT(wqlab_cmd,
	TP_PROTO(u32 nr, u32 id, long long ret, int err),
	TP_ARGS(nr, id, ret, err),
	TP_STRUCT__entry(
		__field(u32, nr)
		__field(u32, id)
		__field(long long, ret)
		__field(int, err)
	),
	TP_fast_assign(
		__entry->nr = nr;
		__entry->id = id;
		__entry->ret = ret;
		__entry->err = err;
	),
	TP_printk("nr=0x%02x id=%u ret=%lld err=%d", __entry->nr, __entry->id,
		  __entry->ret, __entry->err)
);

#endif /* _WQLAB_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE wqlab_trace
#include <trace/define_trace.h>
