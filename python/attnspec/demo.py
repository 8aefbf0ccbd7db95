"""``attnspec demo``: the whole pipeline on a small model that ships inside the package.

    attnspec demo [--out DIR] [--ctx N] [--threads T] [--max-windows K] [--quiet]

Runs ``attnspec analyze`` (with ``--save-spectra``) on the bundled demo model -- a 4-layer GPT-2-family
model with heads of d_h = 64, trained by ``scripts/train_demo_model.py`` on five public-domain books
(its model card is ``demo_model/README.md`` beside this file) -- and on the bundled demo text (the
project's own README as prose), then writes the paper table and the HTML report. Nothing is
downloaded. Writes into DIR (default ``./attnspec-demo``):

- ``run/``: the analyze output (heads.csv, summary.json, spectra.jsonl, head_summary.csv),
- ``table.md``, ``table.csv``, ``table.json``: the paper-style table,
- ``report/report.html`` (with ``report/figures/``): the HTML report,

and prints where the report is and the ranges of k90. From Python::

    from attnspec import demo
    result = demo.run("attnspec-demo")      # DemoResult: .run (AnalysisResult), .table, .report
    demo.MODEL, demo.TEXT                    # the bundled checkpoint folder and text

Also ``python -m attnspec.demo ...``. Exit status 0, 2 for bad input (one line on stderr), 130 when
interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

PathLike = Union[str, os.PathLike]
from ._cli import Parser, add_engine_option, run_command

PROG = "attnspec demo"

#: the bundled checkpoint: config.json, model.safetensors, tokenizer.json (and its model card README.md)
MODEL = Path(__file__).resolve().parent / "demo_model"
#: the bundled demo text: README.md as plain prose (made by scripts/train_demo_model.py)
TEXT = MODEL / "demo_text.txt"
#: the model card
MODEL_CARD = MODEL / "README.md"
DEFAULT_OUT = "attnspec-demo"
DEFAULT_CTX = 256


@dataclass
class DemoResult:
    out_dir: Path
    run: object  # attnspec.AnalysisResult
    table: Path  # table.md
    report: Path  # report/report.html
    seconds: float

    def summary_lines(self) -> list[str]:
        """The short summary ``attnspec demo`` prints."""
        s = self.run.summary
        m, agg, inp = s.get("model", {}), s.get("aggregates", {}), s.get("input", {})
        heads = self.run.heads

        def rng(key: str, digits: int = 0) -> str:
            a = agg.get(key, {})
            fmt = (lambda v: f"{v:.{digits}f}") if digits else (lambda v: f"{v:g}")
            return f"min {fmt(a['min'])}, median {fmt(a['median'])}, max {fmt(a['max'])}"

        d_h = m.get("head_dim")
        rows = len(heads)
        return [
            f"attnspec demo: the bundled {m.get('family')}-family model ({m.get('layers')} layers x {m.get('heads')} heads, "
            f"d_h = {d_h}, {m.get('parameters') / 1e6:.2f}M parameters) on the demo text ({inp.get('stream_tokens')} "
            f"tokens, {heads['window'].nunique()} windows of {s.get('ctx')}) in {self.seconds:.1f} s",
            f"  k90(E~)                  {rng('k90_field')}   over {rows} (window, layer, head)",
            f"  k90(W_Q^T W_K)           {rng('k90_weights')}   of d_h = {d_h}",
            f"  gap k90(M)/k90(E~)       {rng('gap_k90', 1)}",
            f"  gap erank(M)/erank(E~)   {rng('gap_erank', 1)}",
            f"report:     {self.report}",
            f"table:      {self.table}",
            f"run:        {self.run.out_dir}",
            f"model card: {MODEL_CARD}",
        ]


def check_bundle() -> None:
    """Raises InputError when the bundled model or text is missing (a broken install)."""
    from ._core import InputError

    for p in (MODEL / "config.json", MODEL / "model.safetensors", MODEL / "tokenizer.json", TEXT):
        if not p.is_file():
            raise InputError(f"{p}: the demo model is not installed with attnspec (reinstall the package)")


def run(out: PathLike = DEFAULT_OUT, ctx: int = DEFAULT_CTX, threads: int = 0, max_windows: int = 0,
        quiet: bool = True) -> DemoResult:
    """Runs the demo into ``out``: analyze (with spectra) into ``out/run``, the table into ``out``, the
    report into ``out/report``; returns a :class:`DemoResult`. Bad input raises
    :class:`attnspec.InputError`."""
    from . import AnalysisResult, _core
    from ._core import InputError
    from .report import write_report
    from .runfolder import RunFolder
    from .table import load_runs, write_table

    check_bundle()
    positions = int(json.loads((MODEL / "config.json").read_text()).get("n_positions", DEFAULT_CTX))
    if not 2 <= ctx <= positions:
        raise InputError(f"--ctx {ctx}: the demo model takes windows of 2 to {positions} tokens (learned positions)")
    t0 = time.monotonic()
    out_dir = Path(out)
    run_dir = out_dir / "run"
    if not quiet:
        print(f"{PROG}: analyzing {TEXT.name} with the bundled model at ctx {ctx} into {run_dir}", file=sys.stderr,
              flush=True)
    sys.stderr.flush()
    _core.run_analyze(
        model=os.fspath(MODEL),
        text=os.fspath(TEXT),
        ctx=int(ctx),
        out=os.fspath(run_dir),
        max_windows=int(max_windows),
        save_spectra=True,
        threads=int(threads),
        strip_gutenberg="no",
        quiet=bool(quiet),
        resume=RunFolder(run_dir).is_interrupted,  # an interrupted earlier demo: continue it
    )
    result = AnalysisResult.load(run_dir)
    runs = load_runs([run_dir])
    table = write_table(None, out_dir, runs=runs)["md"]
    if not quiet:
        print(f"{PROG}: writing the report", file=sys.stderr, flush=True)
    report = write_report([run_dir], out_dir / "report", runs=runs,
                          title="attnspec demo: a 4-layer GPT-2-family model on the project's README")
    return DemoResult(out_dir=out_dir, run=result, table=table, report=report, seconds=time.monotonic() - t0)




def _parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Analyze the bundled demo model on the bundled demo text, then write the "
                "paper table and the HTML report (nothing is downloaded). Model card: " + str(MODEL_CARD))
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"output folder (default: ./{DEFAULT_OUT}): run/, table.md/.csv/.json, report/report.html")
    p.add_argument("--ctx", type=int, default=DEFAULT_CTX, metavar="N",
                   help=f"window length in tokens (default {DEFAULT_CTX}, the model's maximum)")
    add_engine_option(p, "threads", "T")  # as attnspec analyze declares them
    add_engine_option(p, "max-windows", "K")
    p.add_argument("--quiet", action="store_true", help="no progress lines (the summary is still printed)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``attnspec demo`` / ``python -m attnspec.demo``; returns the exit status."""
    def body(args) -> int:
        result = run(args.out, ctx=args.ctx, threads=args.threads, max_windows=args.max_windows, quiet=args.quiet)
        print("\n".join(result.summary_lines()), flush=True)
        return 0

    return run_command(PROG, _parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
