#!/usr/bin/env bash
# The unit tests of the agent's libraries, cross-built (scripts/cross-build ARCH --tests),
# run under qemu-user by ctest (the toolchain file's CMAKE_CROSSCOMPILING_EMULATOR).
# Usage: tests/cross/unit.sh ARCH [ctest arguments, e.g. -R wharf_archive_test]
source "$(dirname "$0")/env.sh"
shift
build=$OUT/cmake
ls "$build"/src/*/wharf_*_test >/dev/null 2>&1 || { echo "no unit tests in $build: run scripts/cross-build $ARCH --tests" >&2; exit 1; }
ctest --test-dir "$build" -L unit --output-on-failure --timeout 900 "$@"
