"""``attnspec sweep``: every model on every text at every context length, on one machine or a Ray
cluster, losing nothing and giving the same bytes either way.

    attnspec sweep MANIFEST --out DIR [--ray ADDRESS] [--quiet]

The manifest (TOML, or YAML with PyYAML, or JSON) names the models, the texts and the context
lengths (see ``examples/sweep.toml``). The work is cut into tasks, one per (model, text, ctx,
block of consecutive windows), sized to about ``task_seconds`` each. Each model's W_Q^T W_K spectra
are computed once and shared by its tasks (through the Ray object store, or a cache in this
process). Every task runs the C++ engine with the GIL released, asks Ray for the memory the engine's
own memory guard estimates, and is retried when its worker dies. Each finished task's rows are
written at once (write, then rename) to ``DIR/tasks/``, named by a fingerprint of the model files,
the input, ctx, the window block, the options and the attnspec version: a second run skips what is
there. At the end the rows are merged in (model, text, ctx, window) order into the run folders
``DIR/<model>/<text>/ctx<N>/`` (byte for byte the files ``attnspec analyze`` writes; summary.json
without threads and timings), ``DIR/heads.csv`` (all runs, with model, text and ctx columns) and the
paper table (``table.md``, ``table.csv``, ``table.json``). ``DIR/sweep_report.json`` says where the
time went, per model and per node.

Without ``--ray`` the same tasks run one after another in this process. Exit status 0 on success, 2
for bad input (one line on stderr), 1 when a task failed for another reason, 130 when interrupted
(finished tasks are kept; run the same command again to continue).

The modules, in the order a sweep uses them: :mod:`.manifest` reads and checks the manifest,
:mod:`.options` holds the options and the request that carries them to the engine, :mod:`.plan` cuts
the runs into tasks, :mod:`.executors` runs them (here or on Ray), :mod:`.merge` writes the results,
:mod:`.progress` says how it goes. ``attnspec reproduce`` is a local sweep of these same parts.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from .._cli import Parser, run_command
from .executors import (TASK_GATE, Events, LocalExecutor, RayExecutor, RunExecutor, analyze_run,
                        compute_weight_spectra, execute, run_block, run_block_on_worker)
from .manifest import InputEntry, Manifest, ModelEntry, load_manifest
from .merge import merge
from .options import Options, request
from .plan import (Run, Task, file_fingerprint, model_fingerprint, plan, read_task_file, runs_of, window_seconds,
                   write_atomically)
from .progress import Progress, count, fmt_seconds, one_line, print_report, time_report

PROG = "attnspec sweep"

__all__ = [
    "sweep", "main", "SweepFailed", "PROG",
    "Manifest", "ModelEntry", "InputEntry", "load_manifest", "Options", "request",
    "Run", "Task", "runs_of", "plan", "model_fingerprint", "file_fingerprint", "window_seconds", "read_task_file",
    "write_atomically", "Events", "execute", "LocalExecutor", "RunExecutor", "RayExecutor", "TASK_GATE",
    "compute_weight_spectra", "run_block", "run_block_on_worker", "analyze_run", "merge", "Progress",
    "time_report", "print_report", "fmt_seconds", "count", "one_line",
]


class _Book(Events):
    """The sweep's account of its tasks as they end: the progress line, the failures, and each finished
    task's record, written to its file at once."""

    def __init__(self, progress: Progress, records: dict, failures: list):
        self.progress, self.records, self.failures = progress, records, failures

    def running(self, n: int) -> None:
        self.progress.running = n
        self.progress.update()

    def finished(self, task: Task, result: dict, wall_seconds: float, running: int) -> None:
        p = self.progress
        p.running = running
        result["fingerprint"] = task.fingerprint
        result["task"] = {"model": task.run.model.name, "text": task.run.input.name, "ctx": task.run.ctx,
                          "first": task.first, "last": task.last}
        result["wall_seconds"] = wall_seconds
        write_atomically(task.file, json.dumps(result) + "\n")
        self.records[task] = result
        p.done += 1
        p.done_cost += task.cost
        p.update(event=True)

    def failed(self, task: Task, error: BaseException, running: int) -> None:
        p = self.progress
        p.running = running
        self.failures.append((task, error))
        p.failed += 1
        p.say(f"task {task.label} failed: {one_line(error)}")
        p.update(event=True)


def sweep(manifest_path: Path, out: Path, ray_address: Optional[str] = None, quiet: bool = False) -> dict:
    """Runs the sweep; returns the report (also written to DIR/sweep_report.json). Raises
    :class:`InputError` for bad input and when tasks failed on bad input."""
    from .._core import InputError

    t0 = time.monotonic()
    manifest = load_manifest(Path(manifest_path))
    o = manifest.options
    threads = o.threads or (1 if ray_address else 0)
    out = Path(out)
    say = (lambda m: None) if quiet else (lambda m: print(f"attnspec sweep: {m}", file=sys.stderr, flush=True))
    runs = plan(manifest, out, threads, lambda m: print(f"attnspec sweep: {m}", file=sys.stderr, flush=True))
    if not runs:
        raise InputError(f"{manifest.source}: no (model, text, ctx) left to run")
    tasks = [t for r in runs for t in r.tasks]
    records: dict = {}
    for task in tasks:
        rec = read_task_file(task)
        if rec is not None:
            records[task] = rec
    todo = [t for t in tasks if t not in records]
    say(f"{count(len(runs), 'run')} in {count(len(tasks), 'task')} ({len(tasks) - len(todo)} finished earlier), "
        f"{'on the Ray cluster at ' + ray_address if ray_address else 'in this process'}")
    out.mkdir(parents=True, exist_ok=True)
    executor = RayExecutor(ray_address, o, threads) if ray_address and todo else LocalExecutor(o, threads)
    if ray_address and not todo:
        executor.mode, executor.address = "ray", ray_address
    executor.check_memory([r for r in runs if any(t in todo for t in r.tasks)])
    progress = Progress(len(tasks), len(tasks) - len(todo), sum(t.cost for t in todo), quiet)
    failures: list = []
    progress.update(force=True)
    try:
        execute(executor, todo, _Book(progress, records, failures))
    except KeyboardInterrupt:
        progress.close()
        raise KeyboardInterrupt(f"interrupted; {len(records)} of {len(tasks)} tasks are finished and kept in "
                                f"{out / 'tasks'}; run the same command again to continue") from None
    finally:
        progress.close()
    ran = set(todo) - {t for t, _ in failures}
    if not failures:
        merge(runs, out, o, threads)
    report = time_report(runs, records, ran, failures, executor, time.monotonic() - t0, manifest)
    write_atomically(out / "sweep_report.json", json.dumps(report, indent=2) + "\n")
    print_report(report, quiet)
    if failures:
        bad_input = all(isinstance(e, InputError) for _, e in failures)
        msg = (f"{len(failures)} of {len(tasks)} tasks failed (first: {failures[0][0].label}: "
               f"{one_line(failures[0][1])}); the finished ones are kept in {out / 'tasks'}, run the sweep again to retry")
        if bad_input:
            raise InputError(msg)
        raise SweepFailed(msg)
    say(f"wrote {count(len(runs), 'run')}, {out / 'heads.csv'}, the table ({out / 'table.md'}) and {out / 'sweep_report.json'}")
    return report


class SweepFailed(Exception):
    """Tasks failed for a reason other than bad input (exit 1)."""


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Every model on every text at every context length of MANIFEST, locally or on a "
               "Ray cluster, into DIR/<model>/<text>/ctx<N>/, DIR/heads.csv and the table (DIR/table.md, .csv, .json).")
    p.add_argument("manifest", metavar="MANIFEST", help="sweep manifest (.toml; .yaml/.yml with PyYAML; .json)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (finished tasks in DIR/tasks are reused)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run the tasks on the Ray cluster at ADDRESS (host:port of `ray start --head`, or 'auto')")
    p.add_argument("--quiet", action="store_true", help="no progress or report on stderr")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``attnspec sweep`` / ``python -m attnspec.sweep``; returns the exit status."""
    def body(args) -> int:
        try:
            sweep(Path(args.manifest), Path(args.out), args.ray, args.quiet)
        except SweepFailed as e:
            print(f"attnspec: error: {e}", file=sys.stderr)
            return 1
        return 0

    return run_command(PROG, _parser, body, argv)
