#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install a kernel line (image + matching headers) from Debian's own archives.
#   vm/kernels.sh default     the host suite's linux-image-amd64 / linux-headers-amd64
#   vm/kernels.sh 6.1|6.12    that line, from the host suite or its backports
#   vm/kernels.sh latest      the newest line the host suite or its backports carry
#   vm/kernels.sh rt          the PREEMPT_RT flavour (-rt-amd64) of the default line
#   vm/kernels.sh debug       build the debug line (KASAN, lockdep, ...) from Debian's
#                             linux-source-6.12: vm/debug-kernel.sh, cached once built
#   vm/kernels.sh --resolve LINE   print the package names only, install nothing
# Idempotent; the backports suite is added (with the mirror the host already uses) when a
# line needs it. Exit 3 with a reason when the line cannot be had on this host.
set -euo pipefail
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
resolve_only=0
[ "${1:-}" = "--resolve" ] && { resolve_only=1; shift; }
line=${1:-default}
. /etc/os-release
codename=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
say() { printf '[kernels] %s\n' "$*" >&2; }

have_backports() { grep -rqs -- "${codename}-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; }

add_backports() {
	have_backports && return 0
	# Reuse the mirror the host already uses for its own suite.
	uri=$(awk -v c="$codename" '
		/^URIs:/ {u=$2} /^Suites:/ { for (i=2;i<=NF;i++) if ($i==c) {print u; exit} }
		/^deb / && $3==c {print $2; exit}' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -1)
	[ -n "$uri" ] || { say "cannot find the mirror of suite $codename in /etc/apt"; exit 3; }
	say "adding ${codename}-backports from $uri"
	printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
		"$uri" "$codename" | "${SUDO[@]}" tee /etc/apt/sources.list.d/wqlab-backports.sources >/dev/null
	"${SUDO[@]}" apt-get update -q >&2
}

# newest image package of a line in the configured archives: linux-image-<ver>-amd64
newest_image() {  # $1: regex for the version part, $2: flavour suffix
	apt-cache search --names-only "^linux-image-$1-$2\$" 2>/dev/null | awk '{print $1}' |
		grep -v -- '-dbg$\|-unsigned$' | sort -V | tail -1
}

case "$line" in
debug)
	# built, not installed: the source package comes from the host suite or its backports
	if [ "$resolve_only" = 1 ]; then echo linux-source-6.12; exit 0; fi
	# apt-cache's output is read whole before grep looks at it: `apt-cache | grep -q` under
	# pipefail fails at random when grep exits on its match and apt-cache gets SIGPIPE.
	has_candidate() { local p; p=$(apt-cache policy linux-source-6.12 2>/dev/null) && grep -q 'Candidate: [0-9]' <<<"$p"; }
	if ! dpkg-query -W -f='${Status}' linux-source-6.12 2>/dev/null | grep -q "install ok installed" &&
		! has_candidate; then
		add_backports
		has_candidate ||
			{ say "linux-source-6.12 is not in Debian $codename or ${codename}-backports"; exit 3; }
	fi
	exec "$(dirname "$0")/debug-kernel.sh"
	;;
default) pkgs="linux-image-amd64 linux-headers-amd64" ;;
rt)      pkgs="linux-image-rt-amd64 linux-headers-rt-amd64" ;;
*)
	case "$line" in
	latest) re='[0-9]+\.[0-9]+\.[0-9]+(-[0-9]+|\+[a-z0-9]+)' ;;
	[0-9]*.[0-9]*) re="${line//./\\.}\\.[0-9]+(-[0-9]+|\\+[a-z0-9]+)" ;;
	*) say "unknown kernel line '$line' (default, 6.1, 6.12, latest, rt, debug)"; exit 2 ;;
	esac
	# a line already installed with its headers is used as it is (no archive needed)
	img=$(dpkg-query -W -f='${Package} ${Status}\n' 'linux-image-*-amd64' 2>/dev/null |
		awk '/install ok installed/ {print $1}' | grep -E "^linux-image-$re-amd64\$" | sort -V | tail -1 || true)
	if [ -n "$img" ] && [ "$line" != latest ] &&
		dpkg-query -W -f='${Status}' "linux-headers-${img#linux-image-}" 2>/dev/null | grep -q "install ok installed"; then
		:
	else
		img=$(newest_image "$re" amd64 || true)
	fi
	if [ -z "$img" ]; then
		add_backports
		img=$(newest_image "$re" amd64 || true)
	elif [ "$line" = latest ]; then
		add_backports
		img=$(newest_image "$re" amd64 || true)
	fi
	if [ -z "$img" ]; then
		say "kernel line $line is not in Debian $codename or ${codename}-backports"
		exit 3
	fi
	ver=${img#linux-image-}
	pkgs="$img linux-headers-$ver"
	;;
esac
if [ "$resolve_only" = 1 ]; then echo "$pkgs"; exit 0; fi
missing=()
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
	say "$line: $pkgs already installed"
	exit 0
fi
say "$line: installing ${missing[*]}"
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || {
	"${SUDO[@]}" apt-get update -q >&2
	DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}
for k in /boot/vmlinuz-*; do [ -r "$k" ] || "${SUDO[@]}" chmod 0644 "$k"; done
