#!/usr/bin/env bash
# The test suite with AddressSanitizer + UndefinedBehaviorSanitizer: one clang build (build/fuzz,
# shared with scripts/fuzz.sh) of the core, the attnspec command, the Python module and the
# GoogleTest binary; then the C++ unit tests, and pytest with the sanitized command first on PATH and
# the sanitized module imported (the Python process preloads the shared sanitizer runtime).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DATTNSPEC_FUZZ=ON \
  -DATTNSPEC_BUILD_TESTS=ON -DATTNSPEC_BUILD_PYTHON=ON -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" > build/sanitize.log 2>&1 || { cat build/sanitize.log; exit 1; }
cmake --build build/fuzz -j 2 --target attnspec_tests attnspec _core >> build/sanitize.log 2>&1 || { tail -40 build/sanitize.log; exit 1; }
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "C++ unit tests under ASan/UBSan:"
build/fuzz/attnspec_tests --gtest_brief=1
mkdir -p build/fuzz/bin
ln -sf "$PWD/build/fuzz/attnspec" build/fuzz/bin/attnspec
echo "command-line tests with the sanitized attnspec (leaks checked):"
cli_tests=(tests/test_cli_errors.py tests/test_crash_safety.py tests/test_analyze_text.py)
PATH="$PWD/build/fuzz/bin:$PATH" python3 -m pytest -q -p no:cacheprovider "${cli_tests[@]}"
stage=build/fuzz/python
rm -rf "$stage" && mkdir -p "$stage" && cp -r python/attnspec "$stage"/ && cp build/fuzz/_core*.so "$stage"/attnspec/
echo "the rest of the suite with the sanitized command and Python module:"
# Leaks are not checked inside Python: the interpreter and torch keep memory until exit by design.
# Left to the plain pytest run: the report test (its headless Chromium must not inherit the sanitizer
# preload), the Ray sweep tests (nor must Ray's own services) and the whole-book comparisons with
# Hugging Face tokenizers (minutes of Rust tokenizing under the preloaded allocator; attnspec's
# tokenizers are fuzzed under the sanitizers instead), and the real GGUF models (transformers loading
# and running 135M-0.5B parameter models under the preloaded allocator; attnspec's part of them, the
# dequantizers and the GGUF reader, runs here in test_quant_types and test_format_gguf).
LD_PRELOAD="$(clang++ -print-file-name=libclang_rt.asan-x86_64.so)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
  PATH="$PWD/build/fuzz/bin:$PATH" PYTHONPATH="$PWD/$stage" \
  python3 -m pytest -q -p no:cacheprovider tests $(printf -- '--ignore=%s ' "${cli_tests[@]}" tests/test_report.py tests/test_sweep.py tests/test_real_gguf.py) \
  -k "not test_books_match_tokenizers" "$@"
