#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# selftest.sh - quick manual smoke test of wqlab.ko inside a throw-away VM.
#
# Build the module for the guest kernel first, then boot it (TCG, ~35 s):
#   make -C /usr/src/linux-headers-6.1.0-56-amd64 M=$PWD modules
#   vng --run /boot/vmlinuz-6.1.0-56-amd64 --disable-kvm --cpus 2 \
#       --exec 'sh /work/main/module/selftest.sh'
#
# It loads the module, drives commands through the debugfs text plane (and
# a few through the ioctl plane with python3), checks the errnos of bad
# input, removes the module while items are blocked, pending, delayed,
# sleeping and requeueing with custom queues alive, runs an insmod/rmmod
# loop with work in flight, scans dmesg for WARNING/BUG/Oops, and ends with
# "N passed, N failed". Exit status 0 only if nothing failed.
# Needs root, debugfs; writes nothing outside /tmp.

KO=${WQLAB_KO:-$(dirname "$0")/wqlab.ko}
D=/sys/kernel/debug/wqlab
C=$D/control
PASS=0
FAIL=0
LOOPS=${WQLAB_LOOPS:-20}

ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
ko() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }

# cmd LINE: run one command, print its result line (ret=... or err=-N)
cmd() {
	exec 3<>$C
	printf '%s\n' "$1" >&3 2>/dev/null
	cat <&3
	exec 3>&-
}

# expect LINE RESULT: the result line must start with RESULT
expect() {
	r=$(cmd "$1")
	case "$r" in
	"$2"*) ok "$1 -> $r" ;;
	*) ko "$1 -> '$r', expected '$2'" ;;
	esac
}

# field ID KEY: a key of item ID in the works file
field() {
	grep "^id=$1 " $D/works | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# wait_field ID KEY VALUE [SECONDS]: poll until the field has the value
wait_field() {
	n=0
	lim=$((${4:-20} * 10))
	while [ "$(field "$1" "$2")" != "$3" ]; do
		n=$((n + 1))
		[ $n -ge $lim ] && return 1
		sleep 0.1
	done
	return 0
}

check_field() {
	if wait_field "$1" "$2" "$3" "${4:-20}"; then
		ok "item $1 $2=$3"
	else
		ko "item $1 $2=$(field "$1" "$2"), expected $3"
	fi
}

dmesg_clean() {
	if dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|INFO: task .* blocked' >/tmp/wqlab-splat; then
		ko "dmesg has a splat ($1):"
		head -40 /tmp/wqlab-splat
	else
		ok "dmesg clean ($1)"
	fi
}

mount | grep -q debugfs || mount -t debugfs none /sys/kernel/debug
rmmod wqlab 2>/dev/null
dmesg -C 2>/dev/null
echo "# kernel $(uname -r), $(nproc) cpus, module $KO"

# ---- load, contract surfaces ----------------------------------------------
if insmod "$KO" max_items=2000 2>/dev/null; then
	ko "insmod max_items=2000 accepted"
	rmmod wqlab
else
	ok "insmod max_items=2000 refused"
fi
insmod "$KO" || { ko "insmod"; echo "0 passed, 1 failed"; exit 1; }
ok "insmod"
[ "$(stat -c %a $C)" = 600 ] && ok "control is 0600" || ko "control mode $(stat -c %a $C)"
[ -c /dev/wqlab ] && [ "$(stat -c %a /dev/wqlab)" = 600 ] && ok "/dev/wqlab 0600" ||
	ko "/dev/wqlab missing or mode"
echo "# features:"; sed 's/^/#   /' $D/features
ncmd=$(grep -c ' # ' $C)
[ "$ncmd" -ge 38 ] && ok "help lists $ncmd commands" || ko "help lists $ncmd commands"
grep -q '^queue_work_on wq cpu id \[sleep_ms\]' $C && ok "help shows arguments" ||
	ko "help line: $(grep '^queue_work_on' $C)"
FEAT_BH=$(sed -n 's/^wq_bh=//p' $D/features)
FEAT_DIS=$(sed -n 's/^disable_work=//p' $D/features)

# ---- global queue, static items -------------------------------------------
expect "schedule_work id=0" "ret=1"
check_field 0 runs 1
check_field 0 state done
expect "schedule_delayed_work id=1 delay_ms=5000" "ret=1"
expect "schedule_delayed_work id=1 delay_ms=5000" "ret=0"
expect "delayed_work_pending id=1" "ret=1"
expect "work_busy id=1" "ret=1 busy=pending"
expect "cancel_delayed_work id=1" "ret=1"
expect "delayed_work_pending id=1" "ret=0"
check_field 1 state canceled
expect "schedule_work_on id=0 cpu=1 sleep_ms=1000" "ret=1"
expect "flush_work id=0" "ret=1"
check_field 0 cpu 1
expect "schedule_delayed_work_on id=1 cpu=0 delay_ms=10" "ret=1"
expect "flush_delayed_work id=1" "ret="
check_field 1 runs 1
expect "flush_scheduled_work" "ret=0"
grep -q "^id=0 .*ptr=[0-9a-f]\{8,\} " $D/works && ok "works shows ptr=%p" || ko "no ptr in works"
grep -q "^id=0 .*fn=wqlab_work_fn " $D/works && ok "works shows fn" || ko "no fn in works"

# ---- tracepoints: wqlab_work_run's work= is the workqueue events' pointer ---
T=/sys/kernel/tracing
[ -d $T/events ] || mount -t tracefs none $T 2>/dev/null
if [ -d $T/events/wqlab ]; then
	echo 0 >$T/tracing_on; echo >$T/trace
	echo 1 >$T/events/wqlab/enable
	echo 1 >$T/events/workqueue/workqueue_execute_start/enable
	echo 1 >$T/tracing_on
	expect "schedule_work id=0" "ret=1"
	expect "flush_work id=0" "ret="
	echo 0 >$T/tracing_on
	ptr=$(field 0 ptr)
	if grep -q "wqlab_work_run: id=0 seq=[0-9]* work=$ptr cpu=" $T/trace &&
		grep -q "workqueue_execute_start: work struct $ptr: function wqlab_work_fn" $T/trace; then
		ok "trace: wqlab_work_run and workqueue_execute_start share ptr=$ptr"
	else
		ko "trace correlation for ptr=$ptr:"; grep -E 'wqlab|execute_start' $T/trace | tail -5
	fi
	grep -q "wqlab_cmd: nr=0x10 id=0 ret=1 err=0" $T/trace && ok "trace: wqlab_cmd" ||
		ko "no wqlab_cmd event"
	echo 0 >$T/events/wqlab/enable
	echo 0 >$T/events/workqueue/workqueue_execute_start/enable
else
	ko "no wqlab trace events"
fi

# ---- errnos: nothing changes on a rejected command ------------------------
before=$(cat $D/workqueues $D/works | md5sum)
expect "no_such_command id=0" "err=-2"
expect "" "err=-22"
expect "schedule_work id" "err=-22"
expect "schedule_work =3" "err=-22"
expect "schedule_work id=0 bogus=1" "err=-22"
expect "schedule_work id=0 id=0" "err=-22"
expect "schedule_work id=0 wq=system" "err=-22"
expect "schedule_work" "err=-22"
expect "queue_work id=0" "err=-22"
expect "schedule_work id=999" "err=-2"
expect "schedule_work id=abc" "err=-22"
expect "schedule_work id=99999999999" "err=-7"
expect "schedule_work_on id=0 cpu=99" "err=-22"
expect "schedule_work_on id=0 cpu=-1" "err=-22"
expect "schedule_delayed_work id=1 delay_ms=60001" "err=-7"
expect "schedule_work id=0 sleep_ms=60001" "err=-7"
expect "schedule_work id=0 spin_us=1000001" "err=-7"
expect "schedule_work id=0 requeue=10001" "err=-7"
expect "schedule_work id=0 block=2" "err=-22"
expect "schedule_delayed_work id=0" "err=-22"
expect "schedule_work id=1" "err=-22"
expect "cancel_work id=1" "err=-22"
expect "queue_work wq=nope id=0" "err=-2"
expect "queue_work wq=system_percpu_nope id=0" "err=-2"
expect "alloc_workqueue name=Bad" "err=-22"
expect "alloc_workqueue name=system_x" "err=-22"
expect "alloc_workqueue name=aaaaaaaaaaaaaaaaaaaaaaaa" "err=-22"
expect "alloc_workqueue name=x flags=bogus" "err=-22"
expect "alloc_workqueue name=x max_active=513" "err=-7"
expect "alloc_workqueue name=x flags=unbound,percpu" "err="
expect "alloc_ordered_workqueue name=x flags=sysfs" "err=-22"
expect "workqueue_set_max_active wq=system max_active=4" "err=-22"
expect "drain_workqueue wq=system" "err=-22"
expect "destroy_workqueue wq=system" "err=-22"
expect "work_free id=0" "err=-22"
expect "work_new delayed=2" "err=-22"
if [ "$FEAT_BH" = 1 ]; then
	expect "queue_work wq=system_bh id=0 sleep_ms=1" "err=-22"
	expect "alloc_workqueue name=x flags=bh max_active=1" "err=-22"
else
	expect "alloc_workqueue name=x flags=bh" "err=-95"
	expect "queue_work wq=system_bh id=0" "err=-2"
fi
if [ "$FEAT_DIS" = 1 ]; then
	expect "disable_work id=0" "ret=0"
	expect "schedule_work id=0" "ret=0"
	expect "enable_work id=0" "ret=1"
else
	expect "disable_work id=0" "err=-95"
	expect "enable_delayed_work id=1" "err=-95"
fi
long=$(printf 'schedule_work id=0 %0300d' 0)
expect "$long" "err=-7"
after=$(cat $D/workqueues $D/works | md5sum)
[ "$before" = "$after" ] && ok "rejected commands changed nothing" || ko "state changed"
grep -q '^cmds_failed=[1-9]' $D/stats && ok "stats count failures" || ko "stats: $(cat $D/stats)"

# ---- custom queues, dynamic items ------------------------------------------
expect "create_workqueue name=cw" "ret=0"
expect "create_workqueue name=cw" "err=-17"
expect "create_singlethread_workqueue name=st" "ret=0"
expect "alloc_workqueue name=ub flags=unbound,highpri max_active=4" "ret=0"
expect "alloc_ordered_workqueue name=ord flags=freezable,mem_reclaim" "ret=0"
expect "alloc_workqueue name=sy flags=sysfs max_active=2" "ret=0"
[ -d /sys/devices/virtual/workqueue/wqlab_sy ] && ok "sysfs queue wqlab_sy" || ko "no sysfs wqlab_sy"
expect "workqueue_set_max_active wq=ub max_active=2" "ret=0"
expect "workqueue_set_max_active wq=ord max_active=2" "err=-22"
expect "workqueue_set_max_active wq=st max_active=2" "err=-22"
grep -q '^name=ub kname=wqlab_ub how=alloc_workqueue flags=unbound,highpri max_active=2' \
	$D/workqueues && ok "workqueues lists ub" || ko "workqueues: $(cat $D/workqueues)"
expect "work_new" "ret=0 id=2"
expect "work_new delayed=1" "ret=0 id=3"
expect "work_new" "ret=0 id=4"
expect "queue_work wq=ub id=2 sleep_ms=1000" "ret=1"
expect "flush_work id=2" "ret=1"
check_field 2 runs 1
expect "queue_work_on wq=cw cpu=0 id=2" "ret=1"
expect "flush_workqueue wq=cw" "ret=0"
check_field 2 cpu 0
check_field 2 runs 2
expect "queue_work wq=cw id=2 requeue=5" "ret=1"
expect "drain_workqueue wq=cw" "ret=0"
check_field 2 runs 8
check_field 2 requeue_left 0
expect "queue_delayed_work wq=ord id=3 delay_ms=5000 spin_us=500" "ret=1"
expect "queue_delayed_work wq=ord id=3 delay_ms=100" "ret=0"
expect "mod_delayed_work wq=st id=3 delay_ms=0" "ret=1"
expect "flush_delayed_work id=3" "ret="
check_field 3 runs 1
check_field 3 wq st
expect "mod_delayed_work_on wq=system cpu=1 id=3 delay_ms=20000" "ret=0"
expect "cancel_delayed_work_sync id=3" "ret=1"
expect "queue_work wq=system_unbound id=4 spin_us=200" "ret=1"
expect "cancel_work_sync id=4" "ret="

# block, then release from another process while a flush waits
expect "queue_work wq=ub id=2 block=1" "ret=1"
check_field 2 state blocked
expect "work_busy id=2" "ret=2 busy=running"
expect "work_free id=2" "err=-16"
expect "destroy_workqueue wq=ub" "err=-16"
(sleep 1; cmd "release id=2" >/tmp/wqlab-release) &
expect "flush_work id=2" "ret=1"
wait
grep -q '^ret=1' /tmp/wqlab-release && ok "release unblocked a flush" ||
	ko "release: $(cat /tmp/wqlab-release)"
check_field 2 state done
expect "release id=2" "ret=0"
expect "destroy_workqueue wq=ub" "ret=0"
expect "queue_work wq=ub id=2" "err=-2"
expect "alloc_workqueue name=ub" "ret=0"
expect "destroy_workqueue wq=sy" "ret=0"
expect "work_free id=4" "ret=0"
expect "work_new" "ret=0 id=4"

# BH queues (6.9+), disable/enable (6.10+), enable_and_queue_work
if [ "$FEAT_BH" = 1 ]; then
	expect "alloc_workqueue name=bhq flags=bh,highpri" "ret=0"
	expect "queue_work wq=bhq id=4 spin_us=100 requeue=3" "ret=1"
	check_field 4 runs 4
	expect "queue_work wq=system_bh id=4 spin_us=10" "ret=1"
	check_field 4 runs 5
	expect "queue_work wq=bhq id=4 block=1" "err=-22"
	expect "queue_work wq=bhq id=4 spin_us=10001" "err=-22"
	expect "workqueue_set_max_active wq=bhq max_active=2" "err=-22"
	expect "destroy_workqueue wq=bhq" "ret=0"
fi
if [ "$FEAT_DIS" = 1 ]; then
	expect "disable_work_sync id=4" "ret=0"
	expect "queue_work wq=cw id=4" "ret=0"
	expect "disable_work id=4" "ret=0"
	expect "enable_work id=4" "ret=0"
	expect "enable_and_queue_work wq=cw id=4 spin_us=10" "ret=1"
	expect "flush_work id=4" "ret="
	expect "disable_delayed_work id=3" "ret=0"
	expect "enable_delayed_work id=3" "ret=1"
fi
expect "flush_scheduled_work" "ret=0"

# concurrent commands from several processes
for p in 1 2 3 4; do
	(
		i=0
		while [ $i -lt 25 ]; do
			cmd "queue_work wq=cw id=2 spin_us=50" >/dev/null
			cmd "work_busy id=2" >/dev/null
			cmd "schedule_work id=0" >/dev/null
			cmd "flush_work id=0" >/dev/null
			cmd "work_pending id=4" >/dev/null
			i=$((i + 1))
		done
	) &
done
wait
expect "flush_workqueue wq=cw" "ret=0"
ok "400 concurrent commands survived"

# ---- ioctl plane (python3, ~5 s to start) ----------------------------------
if command -v python3 >/dev/null; then
	REPO=$(cd "$(dirname "$0")/.." && pwd)
	if python3 - "$REPO" <<'EOF'
import errno, fcntl, importlib.util, os, sys
spec = importlib.util.spec_from_file_location("uapi", sys.argv[1] + "/wqlab/uapi.py")
u = importlib.util.module_from_spec(spec); sys.modules["uapi"] = u; spec.loader.exec_module(u)
fd = os.open("/dev/wqlab", os.O_RDWR)
bad = 0
def check(what, cond):
    global bad
    print(("ok   - " if cond else "FAIL - ") + "ioctl " + what); bad += not cond
v = u.unpack_version(fcntl.ioctl(fd, u.IOC_VERSION, bytes(8)))
check(f"version {v}", v.abi_version == u.ABI_VERSION and v.cmd_size == u.CMD_SIZE)
r = u.unpack_cmd(fcntl.ioctl(fd, u.IOCTLS["work_new"], u.pack_cmd("work_new")))
check(f"work_new id={r.id}", r.ret == 0 and r.id >= 2)
r2 = u.unpack_cmd(fcntl.ioctl(fd, u.IOCTLS["queue_work"], u.pack_cmd(wq="system", id=r.id, spin_us=10)))
check("queue_work ret=1", r2.ret == 1)
fcntl.ioctl(fd, u.IOCTLS["flush_work"], u.pack_cmd(id=r.id))
def err(req, data):
    try:
        fcntl.ioctl(fd, req, data); return 0
    except OSError as e:
        return e.errno
check("unknown nr ENOTTY", err(u._iowr(u.IOC_MAGIC, 0x7f, u.CMD_SIZE), u.pack_cmd()) == errno.ENOTTY)
check("wrong size ENOTTY", err(u._iowr(u.IOC_MAGIC, 0x30, 64), bytes(64)) == errno.ENOTTY)
check("wrong type ENOTTY", err(u._iowr(0x12, 0x30, u.CMD_SIZE), u.pack_cmd()) == errno.ENOTTY)
bad_res = u.Cmd(args=int(u.Arg.ID), id=0, reserved=(0, 1, 0)).pack()
check("reserved EINVAL", err(u.IOCTLS["schedule_work"], bad_res) == errno.EINVAL)
no_bit = u.Cmd(args=int(u.Arg.ID), id=0, sleep_ms=5).pack()
check("field without bit EINVAL", err(u.IOCTLS["schedule_work"], no_bit) == errno.EINVAL)
check("unknown wq ENOENT", err(u.IOCTLS["queue_work"], u.pack_cmd(wq="zz", id=0)) == errno.ENOENT)
check("free ok", err(u.IOCTLS["work_free"], u.pack_cmd(id=r.id)) == 0)
sys.exit(1 if bad else 0)
EOF
	then ok "ioctl plane"; else ko "ioctl plane"; fi
else
	echo "# python3 missing: ioctl plane not tested"
fi
dmesg_clean "after commands"

# ---- rmmod with everything in flight ----------------------------------------
expect "queue_work wq=ub id=4 block=1" "ret=1"
expect "queue_delayed_work wq=ord id=3 delay_ms=30000" "ret=1"
expect "queue_work wq=cw id=2 requeue=10000 spin_us=100" "ret=1"
expect "schedule_delayed_work id=1 delay_ms=20000" "ret=1"
expect "queue_work wq=system_long id=0 sleep_ms=30000" "ret=1"
expect "work_new" "ret=0 id=5"
expect "queue_work wq=st id=5 block=1 requeue=3" "ret=1"
check_field 4 state blocked
sleep 0.5
t0=$(date +%s)
if rmmod wqlab; then ok "rmmod with items blocked/pending/delayed/sleeping/requeueing ($(($(date +%s) - t0)) s)"; else ko "rmmod"; fi
[ -e $D ] && ko "debugfs dir left behind" || ok "debugfs dir removed"
dmesg_clean "after busy rmmod"

# ---- insmod/rmmod loop with work in flight ---------------------------------
i=0
t0=$(date +%s)
while [ $i -lt "$LOOPS" ]; do
	insmod "$KO" || { ko "insmod #$i"; break; }
	cmd "alloc_workqueue name=l flags=unbound max_active=2" >/dev/null
	cmd "work_new" >/dev/null
	cmd "work_new delayed=1" >/dev/null
	cmd "queue_work wq=l id=2 requeue=1000 spin_us=20" >/dev/null
	cmd "queue_delayed_work wq=l id=3 delay_ms=1000" >/dev/null
	cmd "schedule_work id=0 block=1" >/dev/null
	cmd "schedule_delayed_work id=1 delay_ms=1" >/dev/null
	rmmod wqlab || { ko "rmmod #$i"; break; }
	i=$((i + 1))
done
[ $i -eq "$LOOPS" ] && ok "$LOOPS insmod/rmmod cycles with work in flight ($(($(date +%s) - t0)) s)"
dmesg_clean "after loop"
grep -q wqlab /proc/modules && ko "module still loaded" || ok "module unloaded"

echo "# summary: $PASS passed, $FAIL failed"
echo "$PASS passed, $FAIL failed"
[ $FAIL -eq 0 ]
