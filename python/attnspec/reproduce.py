"""``attnspec reproduce``: every model on every text at every context length, then the paper table.

    attnspec reproduce --model PATH [PATH ...] (--text FILE ... | --token-ids FILE ...) --ctx N [N ...]
                       --out DIR [--max-windows K] [--threads T] [--quiet] [--skip-existing] [--no-spectra]

Each run goes to ``DIR/<model>/<text>/ctx<N>/`` exactly as ``attnspec analyze`` writes it (with
``spectra.jsonl``, which ``attnspec report`` draws from), in-process through ``attnspec._core``; then
``table.md``, ``table.csv`` and ``table.json`` are written into ``DIR``. ``<model>`` is the checkpoint's
folder name, ``<text>`` the input file's name without extension.

Also ``python -m attnspec.reproduce ...``. Exit status 0 on success, 2 for bad input (one line on
stderr), 130 when interrupted (finished windows are kept; run again to continue).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ._cli import Parser, run_command
from .sweep.progress import fmt_seconds

PROG = "attnspec reproduce"




def _parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Run every model on every text at every context length into "
                "DIR/<model>/<text>/ctx<N>/, then write the table (table.md, table.csv, table.json) into DIR.")
    p.add_argument("--model", action="extend", nargs="+", default=[], metavar="PATH",
                   help="Hugging Face checkpoint folder (repeatable, or several after one flag)")
    p.add_argument("--text", action="extend", nargs="+", default=[], metavar="FILE",
                   help="UTF-8 text, tokenized with each checkpoint's own tokenizer")
    p.add_argument("--token-ids", action="extend", nargs="+", default=[], metavar="FILE",
                   help="token ids (JSON array or whitespace/comma separated), used as given")
    p.add_argument("--ctx", action="extend", nargs="+", type=int, default=[], metavar="N",
                   help="window length(s) in tokens")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--max-windows", type=int, default=0, metavar="K", help="at most K windows per run (default: all)")
    p.add_argument("--threads", type=int, default=0, metavar="T", help="threads (default: all cores)")
    p.add_argument("--tokenizer", default=None, metavar="DIR", help="tokenizer folder for checkpoints without one")
    p.add_argument("--allow-long-context", action="store_true", help="allow --ctx beyond max_position_embeddings")
    p.add_argument("--no-spectra", action="store_true", help="do not write spectra.jsonl (reports then fall back "
                   "to heads.csv for the cumulative-variance figure)")
    p.add_argument("--skip-existing", action="store_true",
                   help="keep runs whose folder already holds a finished run (heads.csv + summary.json)")
    p.add_argument("--report", action="store_true", help="also write the HTML report into DIR/report")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


@dataclass
class Job:
    model: Path
    model_name: str
    source: Path
    kind: str  # "text" or "token_ids"
    text_name: str
    ctx: int
    out: Path


def plan(args) -> list[Job]:
    """The jobs in order (model, then input, then ctx); :class:`InputError` for bad input."""
    from ._core import InputError
    from .sweep.manifest import unique_names

    if not args.model:
        raise InputError("reproduce needs at least one --model PATH")
    if not args.text and not args.token_ids:
        raise InputError("reproduce needs at least one --text FILE or --token-ids FILE")
    if not args.ctx:
        raise InputError("reproduce needs at least one --ctx N")
    for c in args.ctx:
        if c <= 0:
            raise InputError(f"--ctx {c}: must be a positive number of tokens")
    if args.max_windows < 0:
        raise InputError("--max-windows must be >= 0")
    models = [Path(m) for m in args.model]
    for m in models:
        if m.is_file():  # a GGUF file or a llama2.c .bin: attnspec analyze reads and checks it
            continue
        if not m.is_dir():
            raise InputError(f"{m}: no such model folder")
        if not (m / "config.json").is_file():
            raise InputError(f"{m}: no config.json (not a Hugging Face checkpoint folder)")
    inputs = [(Path(t), "text") for t in args.text] + [(Path(t), "token_ids") for t in args.token_ids]
    for f, kind in inputs:
        if not f.is_file():
            raise InputError(f"{f}: no such {'text' if kind == 'text' else 'token-ids'} file")
    model_names = unique_names(models, lambda p: os.path.basename(os.path.normpath(p)))
    text_names = unique_names([f for f, _ in inputs], lambda p: p.stem)
    out = Path(args.out)
    jobs = []
    for m, mname in zip(models, model_names):
        for (f, kind), tname in zip(inputs, text_names):
            for c in dict.fromkeys(args.ctx):  # each ctx once, in the order given
                jobs.append(Job(m, mname, f, kind, tname, c, out / mname / tname / f"ctx{c}"))
    return jobs


def check_contexts(jobs: list[Job], allow_long_context: bool) -> tuple[list[Job], list[str]]:
    """Drops the (model, ctx) pairs the model cannot run (ctx beyond its max_position_embeddings:
    learned positions, or RoPE without --allow-long-context) and says why. Loading each model
    first also turns a broken checkpoint into bad input before any run starts."""
    from ._core import Model

    configs: dict = {}
    keep, skipped = [], []
    for job in jobs:
        if job.model not in configs:
            configs[job.model] = Model.load(os.fspath(job.model)).config
        c = configs[job.model]
        limit = int(c.get("max_positions") or 0)
        learned = c.get("positions") == "learned"
        if limit and job.ctx > limit and (learned or not allow_long_context):
            why = ("learned positions cannot be extended" if learned else "pass --allow-long-context to run it anyway")
            msg = f"skipping {job.model_name} at ctx {job.ctx}: beyond its max_position_embeddings {limit} ({why})"
            if msg not in skipped:
                skipped.append(msg)
            continue
        keep.append(job)
    return keep, skipped


class Progress:
    """One line per (model, text, ctx) on stderr: a bar on a terminal, plain lines otherwise."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet = total, quiet
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.done_times: list[float] = []

    def start(self, i: int, job: Job, note: str = "") -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.t0
        eta = ""
        if self.done_times:
            eta = f", eta {fmt_seconds(sum(self.done_times) / len(self.done_times) * (self.total - i))}"
        what = f"{job.model_name} | {job.text_name} | ctx {job.ctx}"
        if self.tty:
            width = 20
            filled = int(round(width * i / self.total))
            bar = "#" * filled + "-" * (width - filled)
            line = f"attnspec reproduce [{bar}] run {i + 1}/{self.total}: {what}{note}  ({fmt_seconds(elapsed)}{eta})"
        else:
            line = f"attnspec reproduce: run {i + 1}/{self.total}: {what}{note}  ({fmt_seconds(elapsed)} elapsed{eta})"
        print(line, file=sys.stderr, flush=True)

    def finish(self, seconds: float) -> None:
        self.done_times.append(seconds)

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(f"attnspec reproduce: {msg}", file=sys.stderr, flush=True)


def run_job(job: Job, args, quiet: bool) -> None:
    from . import _core
    from .runfolder import RunFolder

    resume = RunFolder(job.out).is_interrupted  # an interrupted earlier run: continue it
    sys.stderr.flush()
    _core.run_analyze(
        os.fspath(job.model),
        text=os.fspath(job.source) if job.kind == "text" else None,
        token_ids=os.fspath(job.source) if job.kind == "token_ids" else None,
        ctx=int(job.ctx),
        out=os.fspath(job.out),
        max_windows=int(args.max_windows),
        save_spectra=not args.no_spectra,
        threads=int(args.threads),
        tokenizer=args.tokenizer,
        allow_long_context=bool(args.allow_long_context),
        quiet=quiet,
        resume=resume,
    )


def reproduce(args) -> Path:
    from ._core import InputError
    from .runfolder import RunFolder
    from .table import write_table

    jobs, skipped = check_contexts(plan(args), args.allow_long_context)
    if not jobs:
        raise InputError("no (model, text, ctx) left to run: " + "; ".join(m.replace("skipping ", "") for m in skipped))
    for msg in skipped:  # shown even with --quiet: the table will lack these rows
        print(f"attnspec reproduce: {msg}", file=sys.stderr, flush=True)
    progress = Progress(len(jobs), args.quiet)
    for i, job in enumerate(jobs):
        if args.skip_existing and RunFolder(job.out).is_finished:
            progress.start(i, job, " (finished earlier, kept)")
            continue
        progress.start(i, job)
        t = time.monotonic()
        run_job(job, args, args.quiet)
        progress.finish(time.monotonic() - t)
    out = Path(args.out)
    paths = write_table([j.out for j in jobs], out)
    progress.say(f"wrote {len(jobs)} run(s) and {paths['md']}, {paths['csv'].name}, {paths['json'].name} "
                 f"in {fmt_seconds(time.monotonic() - progress.t0)}")
    if args.report:
        from .report import write_report

        html = write_report([j.out for j in jobs], out / "report")
        progress.say(f"wrote {html}")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``attnspec reproduce`` / ``python -m attnspec.reproduce``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        reproduce(_parser().parse_args(argv))
        return 0

    return run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
