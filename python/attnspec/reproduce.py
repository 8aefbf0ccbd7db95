"""``attnspec reproduce``: every model on every text at every context length, then the paper table.

    attnspec reproduce --model PATH [PATH ...] (--text FILE ... | --token-ids FILE ...) --ctx N [N ...]
                       --out DIR [--max-windows K] [--threads T] [--quiet] [--skip-existing] [--no-spectra]

Each run goes to ``DIR/<model>/<text>/ctx<N>/`` exactly as ``attnspec analyze`` writes it (with
``spectra.jsonl``, which ``attnspec report`` draws from), in-process through ``attnspec._core``; then
``table.md``, ``table.csv`` and ``table.json`` are written into ``DIR``. ``<model>`` is the checkpoint's
folder name, ``<text>`` the input file's name without extension.

It is a local sweep (:mod:`attnspec.sweep`) of a manifest built from the command line: the same runs
in the same order, a task per run executed whole by the engine's ``analyze`` (:class:`RunExecutor`),
then the table of the run folders instead of the sweep's merge.

Also ``python -m attnspec.reproduce ...``. Exit status 0 on success, 2 for bad input (one line on
stderr), 130 when interrupted (finished windows are kept; run again to continue).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from ._cli import Parser, add_engine_option, run_command
from .sweep.executors import Events, RunExecutor, execute
from .sweep.manifest import InputEntry, Manifest, ModelEntry, unique_names
from .sweep.options import Options
from .sweep.plan import Task, runs_of
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
    for name, metavar in (("max-windows", "K"), ("threads", "T"), ("tokenizer", "DIR"), ("allow-long-context", None)):
        add_engine_option(p, name, metavar)  # as attnspec analyze declares them
    p.add_argument("--no-spectra", action="store_true", help="do not write spectra.jsonl (reports then fall back "
                   "to heads.csv for the cumulative-variance figure)")
    p.add_argument("--skip-existing", action="store_true",
                   help="keep runs whose folder already holds a finished run (heads.csv + summary.json)")
    p.add_argument("--report", action="store_true", help="also write the HTML report into DIR/report")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def manifest(args) -> Manifest:
    """The sweep manifest of the command line: every --model on every --text and --token-ids file at
    every --ctx (each once, in the order given); :class:`InputError` for bad input. Paths stay as
    given; a model is named after its folder (or file), an input after its file without extension."""
    from ._core import InputError

    if not args.model:
        raise InputError("reproduce needs at least one --model PATH")
    if not args.text and not args.token_ids:
        raise InputError("reproduce needs at least one --text FILE or --token-ids FILE")
    if not args.ctx:
        raise InputError("reproduce needs at least one --ctx N")
    for c in args.ctx:
        if c <= 0:
            raise InputError(f"--ctx {c}: must be a positive number of tokens")
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
    return Manifest(
        source=None,
        models=[ModelEntry(ref=os.fspath(m), folder=m, name=name, tokenizer=args.tokenizer)
                for m, name in zip(models, model_names)],
        inputs=[InputEntry(path=f, kind=kind, name=name) for (f, kind), name in zip(inputs, text_names)],
        ctx=list(dict.fromkeys(args.ctx)),
        options=Options(max_windows=args.max_windows, threads=args.threads, save_spectra=not args.no_spectra,
                        allow_long_context=args.allow_long_context),
    )


class Progress(Events):
    """One line per (model, text, ctx) on stderr, in order: a bar on a terminal, plain lines otherwise.
    A run kept from earlier (``--skip-existing``) gets its line when the sweep passes it."""

    def __init__(self, tasks: list, kept: set, quiet: bool):
        self.tasks, self.kept, self.quiet = tasks, kept, quiet
        self.total = len(tasks)
        self.next = 0  # the first task without its line
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.done_times: list[float] = []

    def started(self, task: Task) -> None:
        self._lines_up_to(self.tasks.index(task))

    def finished(self, task: Task, result: dict, wall_seconds: float, running: int) -> None:
        self.done_times.append(wall_seconds)

    def failed(self, task: Task, error: BaseException, running: int) -> None:
        raise error  # the first failure ends reproduce, with its own message

    def close(self) -> None:
        self._lines_up_to(self.total)

    def _lines_up_to(self, index: int) -> None:
        """The lines of the kept runs before ``index``, then of the run at ``index`` (if any)."""
        for i in range(self.next, min(index + 1, self.total)):
            self._line(i, self.tasks[i], " (finished earlier, kept)" if self.tasks[i] in self.kept else "")
        self.next = max(self.next, index + 1)

    def _line(self, i: int, task: Task, note: str) -> None:
        if self.quiet:
            return
        run = task.run
        elapsed = time.monotonic() - self.t0
        eta = ""
        if self.done_times:
            eta = f", eta {fmt_seconds(sum(self.done_times) / len(self.done_times) * (self.total - i))}"
        what = f"{run.model.name} | {run.input.name} | ctx {run.ctx}"
        if self.tty:
            width = 20
            filled = int(round(width * i / self.total))
            bar = "#" * filled + "-" * (width - filled)
            line = f"attnspec reproduce [{bar}] run {i + 1}/{self.total}: {what}{note}  ({fmt_seconds(elapsed)}{eta})"
        else:
            line = f"attnspec reproduce: run {i + 1}/{self.total}: {what}{note}  ({fmt_seconds(elapsed)} elapsed{eta})"
        print(line, file=sys.stderr, flush=True)

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(f"attnspec reproduce: {msg}", file=sys.stderr, flush=True)


def reproduce(args) -> Path:
    from ._core import InputError
    from .runfolder import RunFolder
    from .table import write_table

    m = manifest(args)
    skipped: list = []  # each (model, ctx) once, though the sweep notes it for every input

    def skip(msg: str) -> None:
        if msg not in skipped:
            skipped.append(msg)

    runs = list(runs_of(m, skip, "pass --allow-long-context to run it anyway"))
    if not runs:
        raise InputError("no (model, text, ctx) left to run: " + "; ".join(s.replace("skipping ", "") for s in skipped))
    for msg in skipped:  # shown even with --quiet: the table will lack these rows
        print(f"attnspec reproduce: {msg}", file=sys.stderr, flush=True)
    out = Path(args.out)
    tasks = [Task(run) for run in runs]  # each run whole, by the engine's analyze
    kept = {t for t in tasks if args.skip_existing and RunFolder(out / t.run.rel).is_finished}
    progress = Progress(tasks, kept, args.quiet)
    execute(RunExecutor(m.options, m.options.threads, out, quiet=args.quiet), [t for t in tasks if t not in kept],
            progress)
    progress.close()
    folders = [out / run.rel for run in runs]
    paths = write_table(folders, out)
    progress.say(f"wrote {len(runs)} run(s) and {paths['md']}, {paths['csv'].name}, {paths['json'].name} "
                 f"in {fmt_seconds(time.monotonic() - progress.t0)}")
    if args.report:
        from .report import write_report

        html = write_report(folders, out / "report")
        progress.say(f"wrote {html}")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``attnspec reproduce`` / ``python -m attnspec.reproduce``; returns the exit status."""
    def body(args) -> int:
        reproduce(args)
        return 0

    return run_command(PROG, _parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
