# SPDX-License-Identifier: GPL-2.0
# wqlab: `make help` lists the targets.
#
# The module is built the Kbuild way against the headers of the kernel the VM boots
# (not `uname -r`: the host kernel is not a Debian kernel and has no headers here).

KERNEL  ?= default
PYTHON  ?= python3
VENV    := $(CURDIR)/.venv
PY      := $(VENV)/bin/python
KVER    ?= $(shell PYTHONPATH=$(CURDIR) $(PYTHON) -m wqlab.kernels version $(KERNEL) 2>/dev/null)
# the headers of a Debian kernel, or the built tree of the debug line (KERNEL=debug)
KDIR    ?= $(or $(shell PYTHONPATH=$(CURDIR) $(PYTHON) -m wqlab.kernels kdir $(KERNEL) 2>/dev/null),/usr/src/linux-headers-$(KVER))
W       ?= 1
PYTEST_ARGS ?=
# parallel VMs (pytest-xdist): one VM per worker; a whole_vm test has the host to itself.
# auto: one worker more than cores. Without KVM each VM runs its vCPUs in one host thread
# (wqlab.vm.tcg_thread_mode), and a third VM fills the time the others wait on the host
JOBS    ?= auto
AUTO_JOBS := $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
JOBS_N  := $(if $(filter auto,$(JOBS)),$(AUTO_JOBS),$(JOBS))
XDIST   := $(if $(filter-out 1,$(JOBS_N)),-n $(JOBS_N))
SEED    ?=
N       ?= 20000
THREADS ?= 4
FUZZ_ARGS ?=
export PATH := $(VENV)/bin:$(PATH)

.PHONY: all module help setup venv test test-unit test-vm demo shell bench lint clean modinfo labs-check \
	kernel test-matrix fuzz wheel wheel-check

all: module

help:
	@echo "wqlab targets (KERNEL=default|6.1|6.12|latest|rt|debug|<version>|<path>, now: $(KVER)):"
	@echo "  make               build module/wqlab.ko against KDIR=$(KDIR) (W=1)"
	@echo "  make setup         install Debian packages, the .venv and the parser's C extension (idempotent)"
	@echo "  make demo          set up, boot the default kernel, run every API, show traces;"
	@echo "                     PNG=demo.png PERFETTO=demo.pftrace also draw the run (docs/teaching.md)"
	@echo "  make shell         set up, boot KERNEL, a prompt to the module (Tab, help, trace, png FILE)"
	@echo "  make test          set up, then the whole suite: unit tests and VM tests"
	@echo "  make test-unit     unit tests only (no VM)"
	@echo "  make test-vm       VM tests only (KERNEL booted once per worker)"
	@echo "  make test JOBS=N   (and test-vm) parallel VMs, pytest-xdist -n N: one VM per worker, one JUnit"
	@echo "                     and KTAP file; default JOBS=auto: one worker more than cores ($(AUTO_JOBS) here);"
	@echo "                     JOBS=1: one VM. Measured speed-ups per JOBS on 2 cores: README, Measured"
	@echo "  make test-matrix   the VM suite on every installed kernel line (and rt, debug), as a table;"
	@echo "                     LINES=default,6.12,rt picks the lines"
	@echo "  make kernel        install the kernel line KERNEL= (image and headers)"
	@echo "  make kernel KERNEL=debug   build the debug line (KASAN, KFENCE, lockdep, DEBUG_OBJECTS_WORK,"
	@echo "                     WQ_WATCHDOG, hung task, kmemleak) from linux-source-6.12; cached"
	@echo "  make fuzz          fuzz the module in a VM: SEED= (default: clock, printed) N=20000"
	@echo "                     THREADS=4 KERNEL=; FUZZ_ARGS='--commit REV --storm --trace' (old module,"
	@echo "                     long runs, the trace up to the first run overlap)"
	@echo "  make bench         boot, agent and command round trips (debugfs, ioctl, netlink), netlink event"
	@echo "                     rate, per-test fixed cost, load+unload and parser benchmarks"
	@echo "  make labs-check    the teaching labs in a VM (labs/): every solution full marks, every"
	@echo "                     skeleton 0, a class with a broken and a crashing student; KERNEL="
	@echo "  make lint          ruff check, ruff format --check, mypy on wqlab/"
	@echo "  make wheel         build the wqlab wheel into dist/ (module sources and guest agent inside)"
	@echo "  make wheel-check   clean room: the wheel in a new venv in a temp dir, examples/myproject's"
	@echo "                     own module tested there, then wqlab run (boots KERNEL twice); a plain"
	@echo "                     test boots nothing; WQLAB_WHEEL_CHECK_INDEX=1: dependencies from the index"
	@echo "  make modinfo       show the module's metadata"
	@echo "  make clean         remove build products"
	@echo "Results and artifacts (console, dmesg, trace, JUnit, KTAP) go to artifacts/."

module:
	@test -n "$(KVER)" -a -f "$(KDIR)/Makefile" || { \
		echo "wqlab: no kernel headers for '$(KERNEL)' ($(KDIR)); run 'make setup'"; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) W=$(W) modules

modinfo: module
	/sbin/modinfo module/wqlab.ko

setup:
	vm/setup.sh

venv:
	vm/setup.sh --venv

kernel:
	vm/kernels.sh $(KERNEL)

test: setup
	$(PY) -m pytest tests -v $(XDIST) --wqlab-kernel=$(KERNEL) --junitxml=artifacts/junit.xml \
		--wqlab-ktap=artifacts/results.ktap $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest tests/unit -v $(PYTEST_ARGS)

test-vm: setup
	$(PY) -m pytest tests/vm -v $(XDIST) --wqlab-kernel=$(KERNEL) --junitxml=artifacts/junit-vm.xml \
		--wqlab-ktap=artifacts/results-vm.ktap $(PYTEST_ARGS)

test-matrix: setup
	$(PY) -m wqlab.matrix $(if $(LINES),--lines=$(LINES)) $(PYTEST_ARGS)

demo: setup
	$(PY) -m wqlab.cli demo --kernel=$(KERNEL) $(if $(PNG),--png=$(PNG)) \
		$(if $(PERFETTO),--perfetto=$(PERFETTO))

shell: setup
	$(PY) -m wqlab.cli shell --kernel=$(KERNEL)

labs-check: setup
	$(PY) -m pytest tests/vm/test_labs.py tests/unit/test_lab_folders.py -v --wqlab-kernel=$(KERNEL) \
		$(PYTEST_ARGS)

fuzz: setup
	$(PY) -m wqlab.fuzzhost --kernel=$(KERNEL) $(if $(SEED),--seed=$(SEED)) -n $(N) \
		--threads=$(THREADS) $(FUZZ_ARGS)

bench: setup
	$(PY) bench/bench_boot.py --kernel=$(KERNEL)
	$(PY) bench/bench_parser.py

wheel: venv
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist .

wheel-check: setup
	$(PY) vm/wheel_check.py --kernel=$(KERNEL)

lint: venv
	$(VENV)/bin/ruff check wqlab tests bench
	$(VENV)/bin/ruff format --check wqlab tests bench
	$(VENV)/bin/mypy wqlab

clean:
	-$(MAKE) -C $(KDIR) M=$(CURDIR) clean 2>/dev/null
	rm -rf build artifacts
