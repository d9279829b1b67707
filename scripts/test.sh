#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs
# (idempotently), builds with warnings as errors, starts the real stack
# (PostgreSQL, Redis, Apache Kafka — tests/stack.sh), runs ctest, stops
# the stack.
#
#   scripts/test.sh               normal build (build/)
#   scripts/test.sh --sanitize    AddressSanitizer + UBSan build (build-asan/)
#   scripts/test.sh -- -R analyzer   extra arguments go to ctest
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

build_dir=build
cmake_args=()
if [[ ${1:-} == --sanitize ]]; then
    build_dir=build-asan
    cmake_args+=(-DNS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
    shift
fi
[[ ${1:-} == -- ]] && shift

ns_install_packages $NS_BUILD_PACKAGES $NS_TEST_PACKAGES
ns_install_tools
export NS_TOOLS_VENV
bash tests/stack.sh install

echo "== build ($build_dir)"
cmake -S . -B "$build_dir" -DNS_WERROR=ON "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"

stack_dir=$(mktemp -d /tmp/nightshift-test-stack.XXXXXX)
export NS_STACK_DIR=$stack_dir
cleanup() {
    # An absolute path: the tests run from the build directory. (A relative
    # one failed there, and deleting the stack's directory under them then
    # stopped PostgreSQL and Kafka but left Redis running.)
    bash "$NS_ROOT/tests/stack.sh" down >/dev/null 2>&1 || true
    # Nothing of the stack may outlive it: say so loudly, and stop it.
    local p cwd
    for p in /proc/[0-9]*; do
        cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
        if [[ $cwd == "$stack_dir"/* ]]; then
            echo "warning: left running by the stack: pid ${p#/proc/} ($(tr '\0' ' ' <"$p/cmdline" 2>/dev/null))" >&2
            kill "${p#/proc/}" 2>/dev/null || true
        fi
    done
    rm -rf "$stack_dir" "$stack_dir.lock"
}
trap cleanup EXIT
echo "== stack"
bash tests/stack.sh up
eval "$(bash tests/stack.sh env)"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
echo "== tests"
cd "$build_dir"
# Unit tests are independent and fast; integration tests share the broker
# and run one at a time.
ctest --output-on-failure -L unit -j"$(nproc)" "$@"
ctest --output-on-failure -L integration "$@"
