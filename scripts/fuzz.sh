#!/usr/bin/env bash
# Builds the libFuzzer targets with AddressSanitizer + UndefinedBehaviorSanitizer (clang) and runs
# each for SECONDS (default 15) from its seed corpus in fuzz/corpus/<target>. New inputs go to a
# scratch copy of the corpus, so the repository's seeds stay as they are. Any crash fails.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors config tokenizer_json bpe gguf)
cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DATTNSPEC_FUZZ=ON \
  > build/fuzz.log 2>&1 || { cat build/fuzz.log; exit 1; }
cmake --build build/fuzz -j 2 $(printf -- '--target fuzz_%s ' "${targets[@]}") >> build/fuzz.log 2>&1 ||
  { tail -40 build/fuzz.log; exit 1; }
for t in "${targets[@]}"; do
  work="build/fuzz/corpus-$t"
  mkdir -p "$work" build/fuzz/artifacts
  cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  echo "fuzz_$t: ${seconds}s"
  log="build/fuzz/fuzz_$t.log"
  status=0
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "build/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix=build/fuzz/artifacts/ -print_final_stats=1 "$work" > "$log" 2>&1 || status=$?
  grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
  if [ "$status" -ne 0 ] || grep -qE "runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)" "$log"; then
    grep -E -A12 "runtime error|ERROR:" "$log" | head -40
    echo "fuzz_$t found a crash (exit $status): see $log and build/fuzz/artifacts/"
    exit 1
  fi
done
