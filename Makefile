# SPDX-License-Identifier: MIT
# The two commands of the README, and a few helpers. Everything goes through CMake presets.
#   make run    install what is missing, build, start the streamer on the virtual board
#   make test   install what is missing, build, run every test (what CI runs)
JOBS ?= $(shell nproc)
RUN_ARGS ?=

.PHONY: run test deps deps-test build build-release sanitize-tests format format-check tidy bench clean cross-test

deps:
	scripts/install-deps.sh build

deps-test:
	scripts/install-deps.sh test

build-release: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS) --target printcast-streamer

run: build-release
	./build/release/apps/streamer/printcast-streamer --board virtual $(RUN_ARGS)

# run-tests.sh installs the packages itself (its first timed stage).
test:
	scripts/run-tests.sh

bench: deps-test
	cmake --preset release
	cmake --build --preset release -j $(JOBS)
	bench/run.sh build/release

format:
	git ls-files '*.cpp' '*.h' | xargs clang-format -i

format-check:
	git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run --Werror

tidy:
	cmake --preset ci
	git ls-files 'hal/*.cpp' 'bsp/*.cpp' 'codecs/*.cpp' 'transport/*.cpp' 'apps/*.cpp' | \
	  xargs clang-tidy -p build/ci --quiet

# Cross builds (docs/cross-builds.md). `make rinkhals-ks1` -> build/rinkhals/printcast-anycubic-ks1.zip;
# models: ks1 ks1m k3 k3v2 k3m k2p (presets <model>-release, all armhf static).
cross-test: deps-test
	scripts/cross-test.sh

rinkhals-%: deps-test
	scripts/make-sysroot.sh armhf --static
	cmake --preset $*-release
	cmake --build --preset $*-release -j $(JOBS) --target rinkhals-package printcast-size-report
	ctest --preset $*-release

clean:
	rm -rf build

# The MJPEG benchmark in the lab VM against ustreamer (docs/benchmarks.md); prints a table.
.PHONY: bench-lab
bench-lab: deps-test
	cmake --preset ci
	cmake --build --preset ci -j $(JOBS)
	tests/lab/run-lab.sh --bench build/ci
