#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# wqlab set-up: everything the project needs on a fresh Debian 12 or 13 machine.
# Idempotent: a second run checks, changes nothing and takes seconds.
#   vm/setup.sh            Debian packages (QEMU, the default kernel and its headers, ...)
#                          and the Python virtualenv .venv with pinned dependencies
#   vm/setup.sh --venv     only the virtualenv
# Works as root, or as a normal user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\033[1m[setup %s]\033[0m %s\n' "$(date +%T)" "$*"; }
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

PKGS=(
	qemu-system-x86          # the VM (TCG when KVM is unusable)
	linux-image-amd64        # the host suite's default kernel, booted by the VM
	linux-headers-amd64      # its headers, for the module build (pulls the right gcc)
	busybox-static           # what virtme-ng's guest init needs
	zstd                     # unpacks zstd kernels (6.12) for the fast PVH boot
	make gcc libc6-dev kmod  # Kbuild and modinfo; gcc also builds the parser's C extension
	python3 python3-venv     # the guest agent (system python3) and the virtualenv
	python3-dev              # Python.h for the C extension wqlab/_fastparse.c
	linux-libc-dev           # <linux/ioctl.h> for the uapi mirror test
	openssh-server           # sshd run inside the guest for the SSH (fabric) target test
	iproute2                 # the guest's network for that test
)

if [ "${1:-}" != "--venv" ]; then
	[ -r /etc/debian_version ] || { echo "wqlab: this set-up needs Debian 12 or 13" >&2; exit 1; }
	step "Debian $(cat /etc/debian_version): checking packages"
	missing=()
	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		step "installing: ${missing[*]}"
		"${SUDO[@]}" apt-get update -q
		# Install services without starting them on the host (Debian's policy-rc.d hook):
		# openssh-server is only run inside the guest, by the SSH target test.
		guard=0
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
			"${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
			guard=1
		fi
		DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" ||
			{ [ "$guard" = 1 ] && "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; exit 1; }
		[ "$guard" = 1 ] && "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
	else
		step "all Debian packages present"
	fi
	# vng reads /boot/vmlinuz-*: Debian makes it root-only (0600); let a normal user boot it.
	for k in /boot/vmlinuz-*; do
		[ -r "$k" ] || "${SUDO[@]}" chmod 0644 "$k"
	done
fi

PY=${PYTHON:-python3}
stamp=".venv/.wqlab-stamp"
# the C extension's source is in the stamp: a change to it rebuilds wqlab/_fastparse*.so
want="$(cat requirements.lock pyproject.toml setup.py wqlab/_fastparse.c | sha256sum | cut -c1-16) $($PY -c 'import sys; print(sys.version.split()[0])')"
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
	compgen -G 'wqlab/_fastparse*.so' >/dev/null; then
	step "virtualenv .venv up to date"
else
	inc=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
	if [ ! -r "$inc/Python.h" ] || ! command -v gcc >/dev/null; then
		echo "wqlab: building the C extension needs gcc and $inc/Python.h:" \
			"install gcc and python3-dev (vm/setup.sh without --venv does)" >&2
		exit 1
	fi
	step "creating virtualenv .venv ($PY) with pinned dependencies, building the C extension"
	$PY -m venv .venv
	# The pinned wheels are kept in the wqlab cache (a wheelhouse): a second clone installs
	# them without asking an index (pip's resolver online took 23 of 52 s here); the first
	# run, or a changed lock, downloads what is missing. Bytecode is compiled afterwards on
	# every core rather than by pip one file at a time (19 s of the rest).
	wh="${WQLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wqlab}/wheelhouse"
	mkdir -p "$wh"
	# Held while the wheelhouse is read or written: pip download copies each wheel into it
	# in place, and another clone setting up at once would install a half-copied one.
	exec 9>"$wh/.lock"
	flock 9
	pipi=(.venv/bin/pip install -q --disable-pip-version-check --no-compile)
	if ! "${pipi[@]}" --no-index --find-links "$wh" -r requirements.lock 2>/dev/null; then
		step "downloading the pinned wheels into $wh"
		.venv/bin/pip download -q --disable-pip-version-check -d "$wh" -r requirements.lock
		"${pipi[@]}" --no-index --find-links "$wh" -r requirements.lock || {
			echo "wqlab: installing the pinned wheels from $wh failed (a damaged wheel" \
				"there? remove the directory to download them afresh)" >&2
			exit 1
		}
	fi
	exec 9>&-
	.venv/bin/python -m compileall -q -j 0 .venv/lib >/dev/null
	.venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	echo "$want" > "$stamp"
fi
step "done: $(.venv/bin/vng --version 2>/dev/null | head -1), $(qemu-system-x86_64 --version | head -1)"
