# derecho-k8s: `make demo` and `make test` work on a fresh Debian 12 machine (they run setup).
SHELL := /bin/bash
.NOTPARALLEL:
.DEFAULT_GOAL := help

NATIVE_DIR      := build/native
NATIVE_ASAN_DIR := build/native-asan
CMAKE_GENERATOR := -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: help setup k8s-tools build node-deps native native-asan ts typecheck demo test test-native test-js bench clean

help:
	@echo "make demo   - set up, build, and run 3 sidecars and the smart-memory app on loopback for 10 s"
	@echo "make test   - set up, build, run native tests (plain and ASan/UBSan) and the jest suite"
	@echo "make setup  - install system packages and npm dependencies (scripts/setup.sh)"
	@echo "make k8s-tools - build kube-apiserver, etcd, kubectl and helm for the operator tests (once, cached outside the repo)"
	@echo "make build  - build the native engine, the addon, the sanitizer tests and the TypeScript"
	@echo "make bench  - set up, build, and run the benchmarks"
	@echo "make clean  - remove build/ and dist/"

setup:
	bash scripts/setup.sh

# The operator tests' control plane (kube-apiserver, etcd), kubectl and helm, built from their Go
# modules into a cache outside the repository (once: minutes on a fresh machine; needs Go >= 1.26).
k8s-tools:
	bash scripts/setup-k8s-tools.sh

# Independent of setup: assumes the system packages, installs npm packages only if missing.
build: node-deps native native-asan ts

# cmake reads the addon headers from node_modules (node-addon-api, node-api-headers).
node-deps:
	@if [ ! -d node_modules ]; then \
	  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi; \
	fi

native: node-deps
	cmake -S native -B $(NATIVE_DIR) $(CMAKE_GENERATOR)
	cmake --build $(NATIVE_DIR)

native-asan:
	cmake -S native -B $(NATIVE_ASAN_DIR) $(CMAKE_GENERATOR) -DDERECHO_SANITIZE=ON
	cmake --build $(NATIVE_ASAN_DIR)

ts: node-deps
	npm run --silent build

typecheck: node-deps
	npm run --silent typecheck

demo: setup build
	node dist/cli/derecho.js local --members 3 --duration 10

# Runs every suite even when an earlier one fails, then fails if any did.
test: setup k8s-tools build
	@status=0; \
	ctest --test-dir $(NATIVE_DIR) --output-on-failure || status=1; \
	echo "verbs device tests:"; ctest --test-dir $(NATIVE_DIR) -R '^VerbsDevice' -V 2>&1 | grep -E 'no RDMA device|Skipped' | sort -u; \
	echo "partition test (network namespaces):"; ctest --test-dir $(NATIVE_DIR) -R '^Partition' -V 2>&1 | grep -E 'skipped|Passed|Failed' | sort -u; \
	echo "full-disk test (a small tmpfs in a private mount namespace):"; ctest --test-dir $(NATIVE_DIR) -R '^PersistentLogFullDisk' -V 2>&1 | grep -E 'Skipped|needs root|Passed|Failed' | sort -u; \
	ctest --test-dir $(NATIVE_ASAN_DIR) --output-on-failure || status=1; \
	npm run --silent typecheck || status=1; \
	npm test || status=1; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (see above)"; fi; \
	exit $$status

test-native: build
	ctest --test-dir $(NATIVE_DIR) --output-on-failure
	ctest --test-dir $(NATIVE_ASAN_DIR) --output-on-failure

test-js: ts
	npm run --silent typecheck
	npm test

bench: setup build
	npm run bench

clean:
	rm -rf build dist
