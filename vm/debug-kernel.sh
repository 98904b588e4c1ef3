#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the wqlab debug kernel line (KERNEL=debug) from Debian's own linux-source-6.12:
# KASAN, KFENCE, lockdep, DEBUG_OBJECTS_WORK, WQ_WATCHDOG, hung-task, atomic-sleep and
# kmemleak on, everything virtme-ng and the harness need built in (vm/debug.config).
#
#   vm/debug-kernel.sh            install the source + build deps, build once, cache
#   vm/debug-kernel.sh --where    print the cache directory of the current build, build nothing
#
# The tree is built in place under
#   ${WQLAB_CACHE:-${XDG_CACHE_HOME:-~/.cache}/wqlab}/debug-kernel/<source-version>-<config-hash>/
# and doubles as the module build dir (`make -C <tree> M=<repo> modules`, Module.symvers
# kept). `current` next to it points at the newest finished build; wqlab/kernels.py
# resolves `debug` through it. A second run prints "cached" and returns in seconds.
# Called by `vm/kernels.sh debug` (`make kernel KERNEL=debug`), which adds the backports
# suite first when the source package lives there.
set -euo pipefail
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/debug.config
src_pkg=linux-source-6.12
deps=(bc bison flex libelf-dev libssl-dev cpio xz-utils make gcc)
# bump when the recipe below changes in a way that changes the result
recipe=1
say() { printf '[debug-kernel] %s\n' "$*" >&2; }

# The image the harness boots, vmlinuz-<release> next to the tree (a bzImage path
# inside a kernel tree would make vng treat the tree as its --kdir and prepare modules
# there), and `current` pointing at this build.
publish() {
	local release
	release=$(cat "$dir/kernelrelease")
	[ -e "$dir/vmlinuz-$release" ] || cp -p "$tree/arch/x86/boot/bzImage" "$dir/vmlinuz-$release"
	ln -sfn "$(basename "$dir")" "$cache/current"
}

# The whole script is one function called on its last line, so bash has read all of it
# before it runs: editing this file during a build cannot change the running one.
main() {

cache=${WQLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wqlab}/debug-kernel
mkdir -p "$cache"

missing=()
for p in "$src_pkg" "${deps[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || {
		"${SUDO[@]}" apt-get update -q >&2
		DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
	}
fi
srcver=$(dpkg-query -W -f='${Version}' "$src_pkg")
tarball=$(dpkg-query -L "$src_pkg" | grep -E '/usr/src/linux-source-.*\.tar\.(xz|bz2|gz)$' | head -1)
[ -r "$tarball" ] || { say "$src_pkg $srcver installed but no source tarball in /usr/src"; exit 1; }
key=$( { echo "recipe=$recipe"; gcc --version | head -1; cat "$fragment"; } | sha256sum | cut -c1-12)
dir=$cache/${srcver//[~:]/_}-$key
tree=$dir/linux

if [ "${1:-}" = "--where" ]; then echo "$dir"; exit 0; fi

exec 9>"$cache/.lock"
flock -n 9 || { say "another build holds $cache/.lock; waiting"; flock 9; }

if [ -e "$dir/.built" ]; then
	publish
	say "cached: $(cat "$dir/kernelrelease") in $tree ($src_pkg $srcver, config $key)"
	return 0
fi

t0=$(date +%s)
if [ ! -e "$dir/.unpacked" ]; then
	say "unpacking $tarball into $dir"
	rm -rf "$dir"
	mkdir -p "$dir"
	tar -xaf "$tarball" -C "$dir"
	mv "$dir"/linux-source-* "$tree"
	touch "$dir/.unpacked"
fi
cd "$tree"

# --- configure: small base, our fragment, then check every wanted option ---
say "configuring: defconfig + kvm_guest.config + $(basename "$fragment")"
make -s defconfig >&2
make -s kvm_guest.config >&2
scripts/kconfig/merge_config.sh -m .config "$fragment" >"$dir/merge.log" 2>&1 ||
	{ cat "$dir/merge.log" >&2; exit 1; }
make -s olddefconfig >&2
make -s mod2yesconfig >&2
./scripts/config --set-str LOCALVERSION "-wqlab-debug" --disable LOCALVERSION_AUTO
make -s olddefconfig >&2
bad=()
while read -r line; do
	case "$line" in
	CONFIG_*=y) grep -qx "$line" .config || bad+=("${line%=y} (wanted y, got: $(grep -E "^(# )?${line%=y}[= ]" .config || echo absent))") ;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }; opt=${opt%% *}
		grep -q "^$opt=" .config && bad+=("$opt (wanted unset, got: $(grep "^$opt=" .config))") ;;
	esac
done <"$fragment"
if [ "${#bad[@]}" -gt 0 ]; then
	say "the merged config lost options of $(basename "$fragment") (a dependency missing?):"
	printf '    %s\n' "${bad[@]}" >&2
	exit 1
fi
say "config ok: every option of $(basename "$fragment") as wanted"

# --- build, with a progress line every 30 s ---
say "building vmlinux bzImage modules with nice -n 19 make -j$(nproc) (log: $dir/build.log)"
nice -n 19 make -j"$(nproc)" vmlinux bzImage modules >"$dir/build.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
while kill -0 "$pid" 2>/dev/null; do
	for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null && sleep 1; done
	kill -0 "$pid" 2>/dev/null || break
	now=$(date +%s)
	say "$(( (now - t0) / 60 ))m$(( (now - t0) % 60 ))s: $(grep -c '^  CC ' "$dir/build.log" || true) objects compiled, last: $(grep -E '^  [A-Z]+' "$dir/build.log" | tail -1 | sed 's/^ *//')"
done
trap - EXIT INT TERM
if ! wait "$pid"; then
	tail -40 "$dir/build.log" >&2
	say "build failed; the whole log is $dir/build.log"
	exit 1
fi
nice -n 19 make -s modules_prepare >>"$dir/build.log" 2>&1
[ -s Module.symvers ] || { say "no Module.symvers after the build"; exit 1; }
release=$(cat include/config/kernel.release)
echo "$release" >"$dir/kernelrelease"
t1=$(date +%s)
echo "$((t1 - t0))" >"$dir/build-seconds"
touch "$dir/.built"
publish
say "built $release in $(( (t1 - t0) / 60 ))m$(( (t1 - t0) % 60 ))s: $dir/vmlinuz-$release"
}

main "$@"; exit $?
