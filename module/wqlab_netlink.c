// SPDX-License-Identifier: GPL-2.0
/*
 * wqlab generic netlink plane: the family "wqlab" and its "events" group.
 *
 * Every entry of the command table (wqlab_cmds.c) becomes one operation at
 * init: its genetlink command number is the entry's WQLAB_NR_*, its policy
 * admits exactly the arguments the entry takes, with the types and ranges of
 * wqlab_args[], and its handler fills a struct wqlab_cmd and calls
 * wqlab_cmd_exec() like the other planes. Two dump operations list the items
 * and the custom queues; the multicast group "events" carries one message per
 * run start, end and block of a wqlab item and per queue creation and
 * destruction. include/uapi/wqlab.h ("DOC: generic netlink") is the ABI.
 *
 * A command that may wait for work (the table's WQLAB_CMD_WAITS entries) is
 * not run in the doit, which holds genetlink's cb_lock for reading: a family
 * registration anywhere in the system (its writer) and then every genetlink
 * request would queue behind the wait. It runs from wqlab_nl_wq instead;
 * the doit waits only until the command was refused, returned, or began to
 * wait (wqlab_nl_waiting()), acks, and the worker answers by unicast.
 *
 *   python3 -m wqlab shell --plane netlink      # or any genetlink client:
 *   genl ctrl get name wqlab                    # ops, policies, groups
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/errno.h>
#include <linux/mutex.h>
#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/workqueue.h>
#include <net/genetlink.h>
#include <net/net_namespace.h>

/*
 * The events group is for CAP_SYS_ADMIN only; genetlink lets anyone join a group
 * without this flag (mainline 6.7, stable 6.1.70): no open fallback.
 */
#ifndef GENL_MCAST_CAP_SYS_ADMIN
#error "wqlab needs GENL_MCAST_CAP_SYS_ADMIN (Linux 6.7+, or 6.1.70+)"
#endif
#include <net/netlink.h>

#include "wqlab.h"

/* Operations beyond the command table: the two dumps. */
#define WQLAB_NL_EXTRA_OPS	2

static_assert(WQLAB_GENL_CMD_WORKS > WQLAB_NR_ENABLE_AND_QUEUE_WORK);
static_assert(WQLAB_A_DELAYED == 12 && WQLAB_ARG_DELAYED == 1U << 11);

enum wqlab_nl_groups { WQLAB_NL_GRP_EVENTS };

static const struct genl_multicast_group wqlab_nl_mcgrps[] = {
	[WQLAB_NL_GRP_EVENTS] = {
		.name = WQLAB_GENL_MCGRP_EVENTS,
		.flags = GENL_MCAST_CAP_SYS_ADMIN,
	},
};

/*
 * Built at init from the command table, freed at exit; [C] in between.
 * wqlab_nl_ranges[a]: the range of U32 argument a (S32: the CPU range).
 */
static struct genl_ops *wqlab_nl_ops;
static struct nla_policy (*wqlab_nl_policies)[WQLAB_A_MAX + 1];
static struct netlink_range_validation wqlab_nl_ranges[16];
static struct netlink_range_validation_signed wqlab_nl_cpu_range;
static const struct nla_policy wqlab_nl_flags_policy =
	NLA_POLICY_MASK(NLA_U32, WQLAB_WQ_ALL);

static struct genl_family wqlab_nl_family = {
	.name = WQLAB_GENL_NAME,
	.version = WQLAB_GENL_VERSION,
	.maxattr = WQLAB_A_MAX,
	.netnsok = false,
	/* Commands block in the workqueue API: `release` must get through. */
	.parallel_ops = true,
	.module = THIS_MODULE,
	.mcgrps = wqlab_nl_mcgrps,
	.n_mcgrps = ARRAY_SIZE(wqlab_nl_mcgrps),
};

/*
 * Events may be sent from BH work functions (softirq): GFP_ATOMIC, no
 * sleeping. wqlab_nl_live is cleared and an RCU grace period waited for
 * before the family is unregistered, so no event is sent to a group number
 * that is no longer the family's.
 */
static bool wqlab_nl_live;
static atomic64_t wqlab_nl_event_seq;
static atomic64_t wqlab_nl_drops;

static u32 wqlab_nl_attr(u32 bit)
{
	return __ffs(bit) + 1;
}

/* ---- events ------------------------------------------------------------ */

/* Payload of an event: the common attributes, then the largest kind's. */
static size_t wqlab_nl_event_size(void)
{
	size_t common = nla_total_size(sizeof(u32)) +		/* EVENT */
			2 * nla_total_size_64bit(sizeof(u64)) +	/* EVENT_SEQ DROPS */
			nla_total_size_64bit(sizeof(u64));	/* TIME_NS */
	size_t run = nla_total_size(sizeof(u32)) +		/* ID */
		     nla_total_size_64bit(sizeof(u64)) +	/* SEQ */
		     2 * nla_total_size(sizeof(u32)) +		/* CPU PID */
		     nla_total_size(WQLAB_NAME_LEN);		/* WQ */
	size_t wq = nla_total_size(WQLAB_NAME_LEN) +		/* NAME */
		    nla_total_size(32) +			/* HOW */
		    nla_total_size(sizeof(u32));		/* FLAGS */

	return common + max(run, wq);
}

static struct sk_buff *wqlab_nl_event_new(u32 event, void **hdr)
{
	/* Small skbs: a listener's receive buffer counts their true size. */
	struct sk_buff *msg = genlmsg_new(wqlab_nl_event_size(), GFP_ATOMIC);

	if (!msg)
		return NULL;
	*hdr = genlmsg_put(msg, 0, 0, &wqlab_nl_family, 0,
			   WQLAB_GENL_CMD_EVENT);
	if (!*hdr ||
	    nla_put_u32(msg, WQLAB_A_EVENT, event) ||
	    nla_put_u64_64bit(msg, WQLAB_A_EVENT_SEQ,
			      atomic64_inc_return(&wqlab_nl_event_seq),
			      WQLAB_A_PAD) ||
	    nla_put_u64_64bit(msg, WQLAB_A_DROPS,
			      atomic64_read(&wqlab_nl_drops), WQLAB_A_PAD)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

/* Send under rcu_read_lock(), wqlab_nl_live checked; counts what was lost. */
static void wqlab_nl_event_send(struct sk_buff *msg, void *hdr)
{
	int ret;

	genlmsg_end(msg, hdr);
	ret = genlmsg_multicast(&wqlab_nl_family, msg, 0, WQLAB_NL_GRP_EVENTS,
				GFP_ATOMIC);
	/* -ESRCH: the last listener left meanwhile; nobody missed it. */
	if (ret && ret != -ESRCH)
		atomic64_inc(&wqlab_nl_drops);
}

static bool wqlab_nl_listened(void)
{
	return READ_ONCE(wqlab_nl_live) &&
	       genl_has_listeners(&wqlab_nl_family, &init_net,
				  WQLAB_NL_GRP_EVENTS);
}

/**
 * wqlab_nl_event_run() - multicast a run's start, end or block
 * @event: WQLAB_EV_START, WQLAB_EV_END or WQLAB_EV_BLOCK
 * @item: the item
 * @seq: the run's sequence number
 * @cpu: where it is now
 * @wq: the queue it was taken from (NULL: unknown)
 * @time_ns: ktime_get_ns() of the event
 *
 * Context: any (work functions, BH work functions included); does not sleep.
 */
void wqlab_nl_event_run(u32 event, const struct wqlab_item *item, u64 seq,
			int cpu, const struct wqlab_wq *wq, u64 time_ns)
{
	struct sk_buff *msg;
	void *hdr;

	rcu_read_lock();
	if (!wqlab_nl_listened())
		goto out;
	msg = wqlab_nl_event_new(event, &hdr);
	if (!msg)
		goto lost;
	if (nla_put_u32(msg, WQLAB_A_ID, item->id) ||
	    nla_put_u64_64bit(msg, WQLAB_A_SEQ, seq, WQLAB_A_PAD) ||
	    nla_put_s32(msg, WQLAB_A_CPU, cpu) ||
	    nla_put_u32(msg, WQLAB_A_PID, task_pid_nr(current)) ||
	    nla_put_u64_64bit(msg, WQLAB_A_TIME_NS, time_ns, WQLAB_A_PAD) ||
	    (wq && nla_put_string(msg, WQLAB_A_WQ, wq->name))) {
		nlmsg_free(msg);
		goto lost;
	}
	wqlab_nl_event_send(msg, hdr);
	goto out;
lost:
	atomic64_inc(&wqlab_nl_drops);
out:
	rcu_read_unlock();
}

/**
 * wqlab_nl_event_wq() - multicast a custom queue's creation or destruction
 * @event: WQLAB_EV_WQ_CREATE or WQLAB_EV_WQ_DESTROY
 * @wq: the queue (still allocated)
 *
 * Context: process, wqlab_lock held.
 */
void wqlab_nl_event_wq(u32 event, const struct wqlab_wq *wq)
{
	struct sk_buff *msg;
	void *hdr;

	rcu_read_lock();
	if (!wqlab_nl_listened())
		goto out;
	msg = wqlab_nl_event_new(event, &hdr);
	if (!msg)
		goto lost;
	if (nla_put_string(msg, WQLAB_A_NAME, wq->name) ||
	    nla_put_string(msg, WQLAB_A_HOW, wq->how) ||
	    nla_put_u32(msg, WQLAB_A_FLAGS, wq->flags) ||
	    nla_put_u64_64bit(msg, WQLAB_A_TIME_NS, ktime_get_ns(),
			      WQLAB_A_PAD)) {
		nlmsg_free(msg);
		goto lost;
	}
	wqlab_nl_event_send(msg, hdr);
	goto out;
lost:
	atomic64_inc(&wqlab_nl_drops);
out:
	rcu_read_unlock();
}

/* ---- commands ---------------------------------------------------------- */

/* Version and CAP_SYS_ADMIN (the core checked CAP_NET_ADMIN). */
static int wqlab_nl_check(struct sk_buff *skb, const struct genlmsghdr *hdr,
			  struct netlink_ext_ack *extack)
{
	if (hdr->version != WQLAB_GENL_VERSION) {
		NL_SET_ERR_MSG(extack,
			       "wqlab: unsupported family version (this module speaks version 1)");
		return -EPROTO;
	}
	if (!netlink_capable(skb, CAP_SYS_ADMIN)) {
		NL_SET_ERR_MSG(extack, "wqlab: CAP_SYS_ADMIN required");
		return -EPERM;
	}
	return 0;
}

/*
 * Which attribute a refusal of the shared validation or the handler is about,
 * and in words. Called after wqlab_cmd_exec() failed; nothing has changed.
 */
static void wqlab_nl_blame(int err, const struct wqlab_cmd *cmd,
			   struct nlattr **attrs,
			   struct netlink_ext_ack *extack)
{
	struct nlattr *bad = NULL;

	switch (err) {
	case -ENOENT:
		mutex_lock(&wqlab_lock);
		if (attrs[WQLAB_A_ID] && !wqlab_item_find(cmd->id))
			bad = attrs[WQLAB_A_ID];
		else if (attrs[WQLAB_A_WQ] && !wqlab_wq_find(cmd->wq))
			bad = attrs[WQLAB_A_WQ];
		mutex_unlock(&wqlab_lock);
		if (bad && bad == attrs[WQLAB_A_ID])
			NL_SET_ERR_MSG(extack, "wqlab: no such work item");
		else
			NL_SET_ERR_MSG(extack, "wqlab: no such workqueue (or absent on this kernel)");
		break;
	case -EINVAL:
		if (attrs[WQLAB_A_CPU] && !cpu_online(cmd->cpu)) {
			bad = attrs[WQLAB_A_CPU];
			NL_SET_ERR_MSG(extack, "wqlab: CPU offline");
		} else {
			NL_SET_ERR_MSG(extack, "wqlab: invalid for this command, item or queue (docs/commands.md)");
		}
		break;
	case -EEXIST:
		bad = attrs[WQLAB_A_NAME];
		NL_SET_ERR_MSG(extack, "wqlab: a workqueue of that name exists");
		break;
	case -EBUSY:
		NL_SET_ERR_MSG(extack, "wqlab: item or queue busy (pending, running, blocked, flushed or drained)");
		break;
	case -ENOSPC:
		NL_SET_ERR_MSG(extack, "wqlab: no free work item or workqueue slot");
		break;
	case -EOPNOTSUPP:
		NL_SET_ERR_MSG(extack, "wqlab: not on this kernel (see the features file)");
		break;
	case -ESHUTDOWN:
		NL_SET_ERR_MSG(extack, "wqlab: the module is being removed");
		break;
	case -E2BIG:
		NL_SET_ERR_MSG(extack, "wqlab: value above its maximum");
		break;
	}
	if (bad)
		NL_SET_BAD_ATTR(extack, bad);
}

/* Extack text of a missing required attribute, by attribute. */
static const char * const wqlab_nl_missing[WQLAB_A_DELAYED + 1] = {
	[WQLAB_A_ID] = "wqlab: missing attribute WQLAB_A_ID (id)",
	[WQLAB_A_WQ] = "wqlab: missing attribute WQLAB_A_WQ (wq)",
	[WQLAB_A_NAME] = "wqlab: missing attribute WQLAB_A_NAME (name)",
	[WQLAB_A_CPU] = "wqlab: missing attribute WQLAB_A_CPU (cpu)",
	[WQLAB_A_FLAGS] = "wqlab: missing attribute WQLAB_A_FLAGS (flags)",
	[WQLAB_A_MAX_ACTIVE] = "wqlab: missing attribute WQLAB_A_MAX_ACTIVE (max_active)",
	[WQLAB_A_DELAY_MS] = "wqlab: missing attribute WQLAB_A_DELAY_MS (delay_ms)",
	[WQLAB_A_SLEEP_MS] = "wqlab: missing attribute WQLAB_A_SLEEP_MS (sleep_ms)",
	[WQLAB_A_SPIN_US] = "wqlab: missing attribute WQLAB_A_SPIN_US (spin_us)",
	[WQLAB_A_REQUEUE] = "wqlab: missing attribute WQLAB_A_REQUEUE (requeue)",
	[WQLAB_A_BLOCK] = "wqlab: missing attribute WQLAB_A_BLOCK (block)",
	[WQLAB_A_DELAYED] = "wqlab: missing attribute WQLAB_A_DELAYED (delayed)",
};

/* Fill @cmd from the attributes the policy admitted. */
static void wqlab_nl_to_cmd(struct nlattr **attrs, struct wqlab_cmd *cmd)
{
	unsigned int a;

	for (a = 0; a < wqlab_nr_args; a++) {
		const struct wqlab_arg_desc *arg = &wqlab_args[a];
		struct nlattr *nla = attrs[wqlab_nl_attr(arg->bit)];
		void *field = (char *)cmd + arg->off;

		if (!nla)
			continue;
		cmd->args |= arg->bit;
		switch (arg->type) {
		case WQLAB_T_U32:
		case WQLAB_T_FLAGS:
			*(u32 *)field = nla_get_u32(nla);
			break;
		case WQLAB_T_S32:
			*(s32 *)field = nla_get_s32(nla);
			break;
		case WQLAB_T_NAME:
			nla_strscpy(field, nla, WQLAB_NAME_LEN);
			break;
		}
	}
}

/* ---- commands that wait: run from wqlab_nl_wq --------------------------- */

/*
 * D: wqlab_nl_defer_lock (spinlock) guards wqlab_nl_deferred and
 * wqlab_nl_closing. A request holds one slot of WQLAB_GENL_DEFERRED_MAX from
 * the doit until its last reference is put.
 */
static DEFINE_SPINLOCK(wqlab_nl_defer_lock);
static unsigned int wqlab_nl_deferred;		/* [D] requests alive */
static bool wqlab_nl_closing;			/* [D] rmmod: no new ones */
static atomic64_t wqlab_nl_replies_lost;
/*
 * Unbound, one worker per slot: a command waiting for a blocked item never
 * delays another sender's. The name is outside what commands can create
 * ([a-z0-9_]), so no custom queue shares it.
 */
static struct workqueue_struct *wqlab_nl_wq;

/**
 * struct wqlab_nl_req - a waiting command between its doit and its answer
 * @work: [C] on wqlab_nl_wq
 * @ref: the doit's and the worker's
 * @desc: [C] table entry
 * @cmd: arguments; written by the worker, read by the doit once @decided
 * @decided: completed by the worker once: the command returned (@ret), or
 *	     it began to wait (@waiting)
 * @acked: completed by the doit once the ack is out: the worker may answer
 * @ret: wqlab_cmd_exec()'s, for the doit when !@waiting
 * @waiting: [worker] set before @decided when the command waits
 * @answer: [C] the last message, allocated by the doit (a result that
 *	    could not be sent would be a lie); NULL once sent
 * @hdr: [C] its genetlink header
 * @net: [C] the sender's namespace (a reference)
 * @portid: [C] the sender's port
 */
struct wqlab_nl_req {
	struct work_struct work;
	refcount_t ref;
	const struct wqlab_cmd_desc *desc;
	struct wqlab_cmd cmd;
	struct completion decided;
	struct completion acked;
	int ret;
	bool waiting;
	struct sk_buff *answer;
	void *hdr;
	struct net *net;
	u32 portid;
};

static void wqlab_nl_req_put(struct wqlab_nl_req *req)
{
	if (!refcount_dec_and_test(&req->ref))
		return;
	nlmsg_free(req->answer);
	put_net(req->net);
	kfree(req);
	spin_lock(&wqlab_nl_defer_lock);
	wqlab_nl_deferred--;
	spin_unlock(&wqlab_nl_defer_lock);
}

/* Put the result of a command that ran: RET, and ID for work_new. */
static int wqlab_nl_put_result(struct sk_buff *msg,
			       const struct wqlab_cmd_desc *desc,
			       const struct wqlab_cmd *cmd)
{
	if (nla_put_s64(msg, WQLAB_A_RET, cmd->ret, WQLAB_A_PAD) ||
	    ((desc->out & WQLAB_OUT_ID) && nla_put_u32(msg, WQLAB_A_ID, cmd->id)))
		return -EMSGSIZE;
	return 0;
}

static void wqlab_nl_deferred_fn(struct work_struct *work)
{
	struct wqlab_nl_req *req = container_of(work, struct wqlab_nl_req, work);
	struct sk_buff *answer;
	int ret;

	ret = wqlab_cmd_exec(req->desc, &req->cmd);
	if (!req->waiting) {
		/* Refused, or done before it waited: the doit answers. */
		req->ret = ret;
		complete(&req->decided);
		wqlab_nl_req_put(req);
		return;
	}
	wait_for_completion(&req->acked);
	answer = req->answer;
	req->answer = NULL;
	if (ret ? nla_put_u32(answer, WQLAB_A_ERRNO, -ret) :
		  wqlab_nl_put_result(answer, req->desc, &req->cmd)) {
		nlmsg_free(answer);	/* cannot happen: room for both */
		atomic64_inc(&wqlab_nl_replies_lost);
	} else {
		genlmsg_end(answer, req->hdr);
		/* The sender may be gone (-ECONNREFUSED) or full (-EAGAIN). */
		if (genlmsg_unicast(req->net, answer, req->portid))
			atomic64_inc(&wqlab_nl_replies_lost);
	}
	wqlab_nl_req_put(req);
}

/**
 * wqlab_nl_waiting() - a command began to wait in the workqueue API
 *
 * Called by wqlab_wait_begin(). In a worker of wqlab_nl_wq, the command is
 * now accepted: its doit may ack and return while it waits.
 *
 * Context: process, wqlab_lock not held.
 */
void wqlab_nl_waiting(void)
{
	struct work_struct *work = current_work();
	struct wqlab_nl_req *req;

	if (!work || work->func != wqlab_nl_deferred_fn)
		return;
	req = container_of(work, struct wqlab_nl_req, work);
	if (req->waiting)
		return;
	req->waiting = true;
	complete(&req->decided);
}

/* The stats file's lines of this plane. */
void wqlab_nl_stats_show(struct seq_file *m)
{
	unsigned int deferred;

	spin_lock(&wqlab_nl_defer_lock);
	deferred = wqlab_nl_deferred;
	spin_unlock(&wqlab_nl_defer_lock);
	seq_printf(m, "nl_deferred=%u\n", deferred);
	seq_printf(m, "nl_replies_lost=%lld\n",
		   atomic64_read(&wqlab_nl_replies_lost));
}

/* Take a slot. Return: 0, -ESHUTDOWN (rmmod) or -EAGAIN (all taken). */
static int wqlab_nl_defer_slot(struct netlink_ext_ack *extack)
{
	int ret = 0;

	spin_lock(&wqlab_nl_defer_lock);
	if (wqlab_nl_closing)
		ret = -ESHUTDOWN;
	else if (wqlab_nl_deferred >= WQLAB_GENL_DEFERRED_MAX)
		ret = -EAGAIN;
	else
		wqlab_nl_deferred++;
	spin_unlock(&wqlab_nl_defer_lock);
	if (ret == -ESHUTDOWN)
		NL_SET_ERR_MSG(extack, "wqlab: the module is being removed");
	else if (ret)
		NL_SET_ERR_MSG(extack,
			       "wqlab: too many netlink commands waiting (WQLAB_GENL_DEFERRED_MAX): retry when one has answered");
	return ret;
}

/*
 * The doit of a command that may wait. Return: as wqlab_nl_doit(); -EINTR
 * once the command waits: the ack is sent here, before the worker may
 * answer, and -EINTR tells netlink_rcv_skb() not to send another (as
 * netlink_dump_start() does for a dump).
 */
static int wqlab_nl_defer(const struct wqlab_cmd_desc *desc,
			  struct sk_buff *skb, struct genl_info *info)
{
	struct netlink_ext_ack *extack = info->extack;
	struct wqlab_nl_req *req;
	struct sk_buff *reply;
	void *hdr;
	int ret;

	ret = wqlab_nl_defer_slot(extack);
	if (ret)
		goto refused;
	req = kzalloc(sizeof(*req), GFP_KERNEL);
	if (!req) {
		spin_lock(&wqlab_nl_defer_lock);
		wqlab_nl_deferred--;
		spin_unlock(&wqlab_nl_defer_lock);
		ret = -ENOMEM;
		goto refused;
	}
	refcount_set(&req->ref, 2);
	req->net = get_net(genl_info_net(info));
	req->portid = info->snd_portid;
	req->desc = desc;
	init_completion(&req->decided);
	init_completion(&req->acked);
	INIT_WORK(&req->work, wqlab_nl_deferred_fn);
	wqlab_nl_to_cmd(info->attrs, &req->cmd);

	reply = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	/*
	 * Held while the command waits, then charged to the receiver's buffer:
	 * the size of what it carries (RET with its pad; ERRNO or ID), not a
	 * page.
	 */
	req->answer = genlmsg_new(nla_total_size_64bit(sizeof(s64)) +
				  nla_total_size(sizeof(u32)), GFP_KERNEL);
	hdr = reply ? genlmsg_put_reply(reply, info, &wqlab_nl_family, 0,
					info->genlhdr->cmd) : NULL;
	req->hdr = req->answer ?
		   genlmsg_put(req->answer, info->snd_portid, info->snd_seq,
			       &wqlab_nl_family, 0, info->genlhdr->cmd) : NULL;
	if (!hdr || !req->hdr) {
		nlmsg_free(reply);
		refcount_set(&req->ref, 1);
		wqlab_nl_req_put(req);
		ret = -ENOMEM;
		goto refused;
	}

	queue_work(wqlab_nl_wq, &req->work);
	/* Short: the command takes wqlab_lock and checks, it does not wait. */
	wait_for_completion(&req->decided);

	if (!req->waiting) {
		ret = req->ret;
		if (ret) {
			nlmsg_free(reply);
			wqlab_nl_blame(ret, &req->cmd, info->attrs, extack);
		} else if (wqlab_nl_put_result(reply, desc, &req->cmd)) {
			nlmsg_free(reply);	/* cannot happen */
			ret = -EMSGSIZE;
		} else {
			genlmsg_end(reply, hdr);
			ret = genlmsg_reply(reply, info);
		}
		wqlab_nl_req_put(req);
		return ret;
	}

	if (nla_put_u32(reply, WQLAB_A_DEFERRED, 1)) {
		nlmsg_free(reply);	/* cannot happen */
	} else {
		genlmsg_end(reply, hdr);
		genlmsg_reply(reply, info);	/* a sender gone loses it */
	}
	if (info->nlhdr->nlmsg_flags & NLM_F_ACK)
		/* netlink_ack() does not write the header it is given */
		netlink_ack(skb, (struct nlmsghdr *)info->nlhdr, 0, extack);
	complete(&req->acked);
	wqlab_nl_req_put(req);
	return -EINTR;

refused:
	atomic64_inc(&wqlab_stats.cmds_failed);
	return ret;
}

static int wqlab_nl_doit(struct sk_buff *skb, struct genl_info *info)
{
	const struct wqlab_cmd_desc *desc;
	struct netlink_ext_ack *extack = info->extack;
	struct wqlab_cmd cmd = {};
	struct sk_buff *reply;
	unsigned int a;
	void *hdr;
	int ret;

	ret = wqlab_nl_check(skb, info->genlhdr, extack);
	if (ret)
		goto refused;
	desc = wqlab_cmd_by_nr(info->genlhdr->cmd);
	if (WARN_ON_ONCE(!desc)) {
		ret = -EOPNOTSUPP;
		goto refused;
	}
	for (a = 0; a < wqlab_nr_args; a++) {
		u32 attr = wqlab_nl_attr(wqlab_args[a].bit);

		if ((desc->required & wqlab_args[a].bit) && !info->attrs[attr]) {
			NL_SET_ERR_ATTR_MISS(extack, NULL, attr);
			/* NL_SET_ERR_MSG() takes literals only; these are static */
			if (extack)
				extack->_msg = wqlab_nl_missing[attr];
			ret = -EINVAL;
			goto refused;
		}
	}
	if (desc->waits)
		return wqlab_nl_defer(desc, skb, info);
	/* Before the command runs: a result that could not be sent is a lie. */
	reply = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!reply) {
		ret = -ENOMEM;
		goto refused;
	}
	hdr = genlmsg_put_reply(reply, info, &wqlab_nl_family, 0,
				info->genlhdr->cmd);
	if (!hdr) {
		nlmsg_free(reply);
		ret = -EMSGSIZE;
		goto refused;
	}

	wqlab_nl_to_cmd(info->attrs, &cmd);
	ret = wqlab_cmd_exec(desc, &cmd);
	if (ret) {
		nlmsg_free(reply);
		wqlab_nl_blame(ret, &cmd, info->attrs, extack);
		return ret;
	}
	if (wqlab_nl_put_result(reply, desc, &cmd)) {
		/* Cannot happen with NLMSG_GOODSIZE; undo what can be undone. */
		nlmsg_free(reply);
		wqlab_cmd_undo(desc, &cmd);
		return -EMSGSIZE;
	}
	genlmsg_end(reply, hdr);
	ret = genlmsg_reply(reply, info);
	if (ret)
		wqlab_cmd_undo(desc, &cmd);
	return ret;

refused:
	/* wqlab_cmd_exec() counts what it runs; count refusals before it. */
	atomic64_inc(&wqlab_stats.cmds_failed);
	return ret;
}

/* ---- dumps ------------------------------------------------------------- */

/*
 * Start one part of a dump: the request is checked on the first part only
 * (cb->args[1]), then wqlab_lock is taken. Return: 0 with wqlab_lock held, or
 * an errno without it (-ESHUTDOWN once rmmod began).
 */
static int wqlab_nl_dump_lock(struct netlink_callback *cb)
{
	int ret;

	if (!cb->args[1]) {
		ret = wqlab_nl_check(cb->skb, nlmsg_data(cb->nlh), cb->extack);
		if (ret)
			return ret;
		cb->args[1] = 1;
	}
	mutex_lock(&wqlab_lock);
	if (wqlab_is_stopping()) {
		mutex_unlock(&wqlab_lock);
		return -ESHUTDOWN;
	}
	return 0;
}

/* cb->args[0]: next item position; cb->args[1]: checked. */
static int wqlab_nl_dump_works(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct wqlab_record rec;
	struct wqlab_item *item;
	unsigned long irqflags;
	u32 pos = cb->args[0];
	int ret;
	void *hdr;

	ret = wqlab_nl_dump_lock(cb);
	if (ret)
		return ret;
	while ((item = wqlab_item_next(&pos))) {
		spin_lock_irqsave(&wqlab_rec_lock, irqflags);
		rec = item->rec;
		spin_unlock_irqrestore(&wqlab_rec_lock, irqflags);
		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid,
				  cb->nlh->nlmsg_seq, &wqlab_nl_family,
				  NLM_F_MULTI, WQLAB_GENL_CMD_WORKS);
		if (!hdr)
			break;
		if (nla_put_u32(skb, WQLAB_A_ID, item->id) ||
		    nla_put_u32(skb, WQLAB_A_DELAYED, item->delayed) ||
		    nla_put_string(skb, WQLAB_A_STATE,
				   wqlab_state_name(rec.state)) ||
		    (rec.target &&
		     nla_put_string(skb, WQLAB_A_WQ, rec.target->name)) ||
		    nla_put_u64_64bit(skb, WQLAB_A_RUNS, rec.runs, WQLAB_A_PAD) ||
		    nla_put_u64_64bit(skb, WQLAB_A_SEQ, rec.seq, WQLAB_A_PAD) ||
		    nla_put_s32(skb, WQLAB_A_CPU, rec.cpu) ||
		    nla_put_u32(skb, WQLAB_A_PID, rec.pid) ||
		    nla_put_string(skb, WQLAB_A_COMM, rec.comm) ||
		    nla_put_u64_64bit(skb, WQLAB_A_QUEUED_NS, rec.queued_ns,
				      WQLAB_A_PAD) ||
		    nla_put_u64_64bit(skb, WQLAB_A_STARTED_NS, rec.started_ns,
				      WQLAB_A_PAD) ||
		    nla_put_u64_64bit(skb, WQLAB_A_FINISHED_NS,
				      rec.finished_ns, WQLAB_A_PAD)) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
		cb->args[0] = pos;
	}
	mutex_unlock(&wqlab_lock);
	return skb->len;
}

static int wqlab_nl_dump_workqueues(struct sk_buff *skb,
				    struct netlink_callback *cb)
{
	unsigned int pos = cb->args[0];
	struct wqlab_wq *wq;
	int ret;
	void *hdr;

	ret = wqlab_nl_dump_lock(cb);
	if (ret)
		return ret;
	while ((wq = wqlab_wq_next(&pos))) {
		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid,
				  cb->nlh->nlmsg_seq, &wqlab_nl_family,
				  NLM_F_MULTI, WQLAB_GENL_CMD_WORKQUEUES);
		if (!hdr)
			break;
		if (nla_put_string(skb, WQLAB_A_NAME, wq->name) ||
		    nla_put_string(skb, WQLAB_A_HOW, wq->how) ||
		    nla_put_u32(skb, WQLAB_A_FLAGS, wq->flags) ||
		    nla_put_u32(skb, WQLAB_A_MAX_ACTIVE, wq->max_active) ||
		    nla_put_u32(skb, WQLAB_A_ORDERED, wq->ordered) ||
		    nla_put_u32(skb, WQLAB_A_BH, wq->bh)) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
		cb->args[0] = pos;
	}
	mutex_unlock(&wqlab_lock);
	return skb->len;
}

/* ---- init/exit --------------------------------------------------------- */

/* Set the entry of argument @a (of wqlab_args[]) in @policy. */
static void wqlab_nl_arg_policy(unsigned int a, struct nla_policy *policy)
{
	const struct wqlab_arg_desc *arg = &wqlab_args[a];
	struct nla_policy *pol = &policy[wqlab_nl_attr(arg->bit)];

	switch (arg->type) {
	case WQLAB_T_U32:
		pol->type = NLA_U32;
		/* an id is a name, not a quantity: an unknown one is -ENOENT */
		if (arg->max) {
			wqlab_nl_ranges[a].max = arg->max;
			pol->validation_type = NLA_VALIDATE_RANGE_PTR;
			pol->range = &wqlab_nl_ranges[a];
		}
		break;
	case WQLAB_T_S32:
		pol->type = NLA_S32;
		pol->validation_type = NLA_VALIDATE_RANGE_PTR;
		pol->range_signed = &wqlab_nl_cpu_range;
		break;
	case WQLAB_T_FLAGS:
		/* ->mask is const: copy a whole entry (arg->max is WQLAB_WQ_ALL) */
		memcpy(pol, &wqlab_nl_flags_policy, sizeof(*pol));
		break;
	case WQLAB_T_NAME:
		pol->type = NLA_NUL_STRING;
		pol->len = WQLAB_NAME_LEN - 1;
		break;
	}
}

/**
 * wqlab_nl_init() - derive the operations and policies from the command
 * table and register the family
 *
 * Return: 0 or -errno.
 */
int wqlab_nl_init(void)
{
	unsigned int i, a, n = wqlab_nr_cmds;
	struct genl_ops *op;
	int ret;

	BUILD_BUG_ON(ARRAY_SIZE(wqlab_nl_ranges) < 12);
	if (WARN_ON(wqlab_nr_args > ARRAY_SIZE(wqlab_nl_ranges)))
		return -EINVAL;
	wqlab_nl_cpu_range.min = 0;
	wqlab_nl_cpu_range.max = nr_cpu_ids - 1;

	wqlab_nl_ops = kcalloc(n + WQLAB_NL_EXTRA_OPS, sizeof(*wqlab_nl_ops),
			       GFP_KERNEL);
	wqlab_nl_policies = kcalloc(n, sizeof(*wqlab_nl_policies), GFP_KERNEL);
	if (!wqlab_nl_ops || !wqlab_nl_policies) {
		ret = -ENOMEM;
		goto err_free;
	}
	for (i = 0; i < n; i++) {
		op = &wqlab_nl_ops[i];
		for (a = 0; a < wqlab_nr_args; a++)
			if (wqlab_cmds[i].allowed & wqlab_args[a].bit)
				wqlab_nl_arg_policy(a, wqlab_nl_policies[i]);
		op->cmd = wqlab_cmds[i].nr;
		op->doit = wqlab_nl_doit;
		op->policy = wqlab_nl_policies[i];
		op->maxattr = WQLAB_A_MAX;
		op->flags = GENL_ADMIN_PERM;
	}
	op = &wqlab_nl_ops[n];
	op->cmd = WQLAB_GENL_CMD_WORKS;
	op->dumpit = wqlab_nl_dump_works;
	op->flags = GENL_ADMIN_PERM;
	op = &wqlab_nl_ops[n + 1];
	op->cmd = WQLAB_GENL_CMD_WORKQUEUES;
	op->dumpit = wqlab_nl_dump_workqueues;
	op->flags = GENL_ADMIN_PERM;

	wqlab_nl_family.ops = wqlab_nl_ops;
	wqlab_nl_family.n_ops = n + WQLAB_NL_EXTRA_OPS;
	wqlab_nl_wq = alloc_workqueue("wqlab-netlink", WQ_UNBOUND,
				      WQLAB_GENL_DEFERRED_MAX);
	if (!wqlab_nl_wq) {
		ret = -ENOMEM;
		goto err_free;
	}
	ret = genl_register_family(&wqlab_nl_family);
	if (ret)
		goto err_wq;
	WRITE_ONCE(wqlab_nl_live, true);
	return 0;

err_wq:
	destroy_workqueue(wqlab_nl_wq);
err_free:
	kfree(wqlab_nl_policies);
	kfree(wqlab_nl_ops);
	return ret;
}

/**
 * wqlab_nl_exit() - stop the events and unregister the family
 *
 * No new waiting command is taken; those waiting answer (while the family
 * still has its id); then the family is unregistered, which waits for the
 * operations in flight (genetlink's cb_lock), and wqlab_nl_wq is destroyed,
 * which waits for any worker a doit started meanwhile (refused: stopping).
 * Listeners still subscribed are removed from the group by the core. Call
 * after wqlab_work_stop(), so that waiting commands return soon, and before
 * wqlab_work_exit() frees what they use.
 */
void wqlab_nl_exit(void)
{
	WRITE_ONCE(wqlab_nl_live, false);
	synchronize_rcu();
	spin_lock(&wqlab_nl_defer_lock);
	wqlab_nl_closing = true;
	spin_unlock(&wqlab_nl_defer_lock);
	flush_workqueue(wqlab_nl_wq);
	genl_unregister_family(&wqlab_nl_family);
	destroy_workqueue(wqlab_nl_wq);
	kfree(wqlab_nl_policies);
	kfree(wqlab_nl_ops);
}
