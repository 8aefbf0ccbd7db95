#!/usr/bin/env bash
# The C++ unit tests and the command-line tests with AddressSanitizer + UndefinedBehaviorSanitizer:
# one clang build (build/fuzz, shared with scripts/fuzz.sh) of the core, the attnspec command and the
# GoogleTest binary, then the CLI-driven pytest files with that attnspec first on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DATTNSPEC_FUZZ=ON \
  -DATTNSPEC_BUILD_TESTS=ON > build/sanitize.log 2>&1 || { cat build/sanitize.log; exit 1; }
cmake --build build/fuzz -j 2 --target attnspec_tests attnspec >> build/sanitize.log 2>&1 || { tail -40 build/sanitize.log; exit 1; }
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "C++ unit tests under ASan/UBSan:"
build/fuzz/attnspec_tests --gtest_brief=1
mkdir -p build/fuzz/bin
ln -sf "$PWD/build/fuzz/attnspec" build/fuzz/bin/attnspec
echo "command-line tests with the sanitized attnspec:"
PATH="$PWD/build/fuzz/bin:$PATH" python3 -m pytest -q -p no:cacheprovider tests/test_cli_errors.py tests/test_crash_safety.py \
  tests/test_analyze_text.py "tests/test_real_model.py::test_cli_end_to_end"
