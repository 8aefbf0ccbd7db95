#!/usr/bin/env bash
# The whole test suite: C++ unit tests (GoogleTest via ctest); the unit and command-line tests again
# under AddressSanitizer + UndefinedBehaviorSanitizer; each fuzz target briefly; then the Python
# tests (pytest), which compare attnspec against Hugging Face transformers and tokenizers.
# Expects attnspec to be installed (pip install .) and ../shared beside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/tests -G Ninja -DATTNSPEC_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release > build-tests.log 2>&1 ||
  { cat build-tests.log; exit 1; }
cmake --build build/tests -j 2 >> build-tests.log 2>&1 || { tail -50 build-tests.log; exit 1; }
(cd build/tests && ctest --output-on-failure -j 2)
bash scripts/sanitize.sh
bash scripts/fuzz.sh 15
python3 -m pytest -q tests "$@"
