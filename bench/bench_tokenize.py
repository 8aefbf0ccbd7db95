"""Tokenizer throughput: attnspec vs Hugging Face `tokenizers`, single thread, whole books.

For each family in ../shared/tokenizers, encodes each of the five books of ../shared/corpus in
full (one `encode` call per book, no special tokens) with both tokenizers, checks that the ids
agree, and reports tokens per second (best of --repeats runs per book, summed over the corpus).
Writes bench/results_tokenize.json.

    python bench/bench_tokenize.py [--repeats 3] [--families gpt2 llama3 qwen2 mistral]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

# Single-threaded `tokenizers`; must be set before it is imported.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer as HfTokenizer  # noqa: E402

from attnspec import _core  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
FAMILIES = ["gpt2", "llama3", "qwen2", "mistral"]


def best_time(fn, text: str, repeats: int) -> tuple[float, list[int]]:
    best, ids = float("inf"), []
    for _ in range(repeats):
        start = time.perf_counter()
        ids = fn(text)
        best = min(best, time.perf_counter() - start)
    return best, ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", nargs="+", default=FAMILIES)
    parser.add_argument("--out", type=Path, default=HERE / "results_tokenize.json")
    args = parser.parse_args()

    books = sorted((SHARED / "corpus").glob("pg*.txt"))
    if not books:
        print(f"no books in {SHARED / 'corpus'}: the benchmark needs ../shared beside the repository", file=sys.stderr)
        return 1
    texts = {b.name: b.read_text(encoding="utf-8") for b in books}

    rows = []
    for family in args.families:
        folder = SHARED / "tokenizers" / family
        start = time.perf_counter()
        ours = _core.Tokenizer.load(str(folder))
        ours_load = time.perf_counter() - start
        start = time.perf_counter()
        hf = HfTokenizer.from_file(str(folder / "tokenizer.json"))
        hf_load = time.perf_counter() - start

        tokens = ours_seconds = hf_seconds = 0.0
        for name, text in texts.items():
            t_ours, ids_ours = best_time(ours.encode, text, args.repeats)
            t_hf, ids_hf = best_time(lambda s: hf.encode(s, add_special_tokens=False).ids, text, args.repeats)
            if ids_ours != ids_hf:
                print(f"{family} {name}: ids differ from tokenizers", file=sys.stderr)
                return 1
            tokens += len(ids_ours)
            ours_seconds += t_ours
            hf_seconds += t_hf
        rows.append({
            "family": family,
            "tokens": int(tokens),
            "bytes": sum(len(t.encode("utf-8")) for t in texts.values()),
            "attnspec_seconds": ours_seconds,
            "tokenizers_seconds": hf_seconds,
            "attnspec_tokens_per_second": tokens / ours_seconds,
            "tokenizers_tokens_per_second": tokens / hf_seconds,
            "speedup": hf_seconds / ours_seconds,
            "attnspec_load_seconds": ours_load,
            "tokenizers_load_seconds": hf_load,
        })

    header = f"{'family':<8} {'tokens':>9} {'attnspec tok/s':>15} {'tokenizers tok/s':>17} {'ratio':>6} {'load (ours/hf)':>15}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['family']:<8} {r['tokens']:>9} {r['attnspec_tokens_per_second']:>15,.0f} "
              f"{r['tokenizers_tokens_per_second']:>17,.0f} {r['speedup']:>5.1f}x "
              f"{r['attnspec_load_seconds']:>6.2f}s/{r['tokenizers_load_seconds']:.2f}s")

    import tokenizers
    result = {
        "what": "whole-book encode, single thread, best of repeats per book, summed over the five books",
        "repeats": args.repeats,
        "books": sorted(texts),
        "tokenizers_version": tokenizers.__version__,
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "results": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
