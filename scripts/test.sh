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

ns_install_packages $NS_BUILD_PACKAGES python3-psycopg2 kcat
bash tests/stack.sh install

echo "== build ($build_dir)"
cmake -S . -B "$build_dir" -DNS_WERROR=ON "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"

stack_dir=$(mktemp -d /tmp/nightshift-test-stack.XXXXXX)
export NS_STACK_DIR=$stack_dir
cleanup() {
    bash tests/stack.sh down >/dev/null 2>&1 || true
    rm -rf "$stack_dir"
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
