"""Checks that the README's "Real trained models" table is what its command gives.

    python scripts/check_real_models_table.py [RUNS] [--write]

RUNS is the output folder of the README's command (default runs/real):

    attnspec reproduce --model $(python -m attnspec.real_models) --text ../shared/corpus/*.txt \\
      --ctx 1024 --max-windows 8 --out runs/real --report

The per-model rows of the table.csv it wrote (every window, layer and head pooled over the five
books) are rendered in the README's format and compared with the rows between the markers
<!-- real-models-table:begin --> and <!-- real-models-table:end --> in README.md. Exit status 0 when
they are equal, 1 with a diff when not; --write puts the rendered rows into README.md instead.
"""
from __future__ import annotations

import argparse
import csv
import difflib
import math
import sys
from pathlib import Path

from attnspec import real_models
from attnspec.table import triple

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- real-models-table:begin -->", "<!-- real-models-table:end -->"
HEADER = ["| model | arch, quantization | d_h | k90(E~) | k90(W_Q^T W_K) | gap k90 | gap erank |",
          "|---|---|--:|--:|--:|--:|--:|"]
#: real_models name -> (the model as people name it, GGUF architecture and the types its file holds)
LABELS = {
    "smollm2-135m": ("SmolLM2-135M-Instruct", "llama, Q4_1"),
    "qwen2.5-coder-0.5b": ("Qwen2.5-Coder-0.5B-Instruct", "qwen2, Q5_0/Q4_K/Q6_K/Q8_0"),
    "gemma3-270m": ("Gemma 3 270M", "gemma3, Q4_K_M"),
}


def gaps(row: dict, col: str) -> str:
    """'min / median / max' of a gap as the README writes it: three significant figures, at most two
    decimals (0.32, 2.88, 22.0, 131)."""
    def fmt(v) -> str:
        if v is None or math.isnan(v):
            return "–"
        if v == 0:
            return "0.00"
        return f"{v:.{max(0, min(2, 2 - math.floor(math.log10(abs(v)))))}f}"
    return " / ".join(fmt(row[f"{col}_{s}"]) for s in ("min", "median", "max"))


def _number(v: str):
    try:
        return float(v) if v != "" else None
    except ValueError:
        return v


def pooled_rows(runs: Path) -> list[dict]:
    """The per-model rows (scope "model") of RUNS/table.csv, as written by reproduce."""
    path = runs / "table.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; run the README's command")
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(f) if r["scope"] == "model"]


def rendered_rows(runs: Path) -> list[str]:
    pooled = pooled_rows(runs)
    lines = list(HEADER)
    for name, (label, kind) in LABELS.items():
        stem = Path(real_models.MODELS[name].gguf).stem
        rows = [r for r in pooled if stem in str(r["model"])]
        if len(rows) != 1:
            raise SystemExit(f"{runs}: expected one pooled row for {stem}, found {len(rows)}; run the README's command")
        r = rows[0]
        cells = [label, kind, str(int(r["head_dim"])), triple(r, "k90_field", 0), triple(r, "k90_weights", 0),
                 gaps(r, "gap_k90"), gaps(r, "gap_erank")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="?", default="runs/real", help="the reproduce output folder (default runs/real)")
    ap.add_argument("--write", action="store_true", help="write the rendered rows into README.md")
    ap.add_argument("--readme", default=str(ROOT / "README.md"))
    args = ap.parse_args(argv)
    readme = Path(args.readme)
    text = readme.read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        print(f"{readme}: expected one {BEGIN} and one {END}", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN)
    current, tail = rest.split(END)
    want = rendered_rows(Path(args.runs))
    have = [line for line in current.strip().splitlines() if line.strip()]
    if args.write:
        readme.write_text(head + BEGIN + "\n" + "\n".join(want) + "\n" + END + tail, encoding="utf-8")
        print(f"wrote {len(want) - 2} rows into {readme}")
        return 0
    if have == want:
        print(f"README table matches {args.runs}")
        return 0
    sys.stdout.writelines(difflib.unified_diff([s + "\n" for s in have], [s + "\n" for s in want], "README.md", args.runs))
    return 1


if __name__ == "__main__":
    sys.exit(main())
