# SPDX-License-Identifier: GPL-2.0
# PID 1 of wqlab's fast boot, run by the kernel as `init=/bin/busybox -- sh <this file>
# <tag> <options> <command...>` once virtme-ng's initramfs has mounted the host's root
# (9p, uncached): mount the host's /usr again from the 9p share <tag> with <options>
# (cache=loose), then exec <command> (the guest agent, guest_agent.py --init), so that
# Python starts from the cached share. Started straight from the uncached root, its
# interpreter, libraries and standard library cost about 2.5 s of a 12-13 s boot under
# TCG (wqlab.vm.build_cmdline). busybox is static: no library to load before the mount.
# If the mount fails, the agent starts anyway (from the uncached root, slower) and says so.
tag=$1
opts=$2
shift 2
/bin/busybox mount -t 9p -o "ro,$opts" "$tag" /usr ||
	echo "wqlab init: mounting the $tag share on /usr failed: Python starts uncached" >&2
exec "$@"
