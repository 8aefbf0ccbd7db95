"""What a sweep says: a progress line while its tasks run, and at the end where the time went, per
model and per node (``DIR/sweep_report.json`` and a few lines on stderr)."""
from __future__ import annotations

import os
import statistics
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .manifest import Manifest


def fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[-1] if text else type(e).__name__).strip()


class Progress:
    """done / running / failed and an ETA on stderr: one line rewritten in place on a terminal, a
    plain line per event otherwise."""

    def __init__(self, total: int, reused: int, todo_cost: float, quiet: bool):
        self.total, self.reused, self.todo_cost, self.quiet = total, reused, todo_cost, quiet
        self.done = self.failed = self.running = 0
        self.done_cost = 0.0
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.last_draw = 0.0
        self.width = 0

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        eta = ""
        if self.done_cost > 0 and self.todo_cost > self.done_cost:
            eta = f", eta {fmt_seconds(elapsed / self.done_cost * (self.todo_cost - self.done_cost))}"
        reused = f" ({self.reused} finished earlier)" if self.reused else ""
        return (f"attnspec sweep: {self.reused + self.done}/{self.total} tasks done{reused}, {self.running} running, "
                f"{self.failed} failed  ({fmt_seconds(elapsed)} elapsed{eta})")

    def update(self, *, force: bool = False, event: bool = False) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if self.tty:
            if force or event or now - self.last_draw >= 0.5:
                text = self.line()
                pad = max(0, self.width - len(text))
                self.width = len(text)
                print("\r" + text + " " * pad, end="", file=sys.stderr, flush=True)
                self.last_draw = now
        elif force or event:
            print(self.line(), file=sys.stderr, flush=True)

    def say(self, msg: str) -> None:
        if self.quiet:
            return
        if self.tty and self.width:
            print("\r" + " " * self.width + "\r", end="", file=sys.stderr)
            self.width = 0
        print(f"attnspec sweep: {msg}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.quiet and self.tty and self.width:
            print(file=sys.stderr, flush=True)
            self.width = 0


def time_report(runs: list, records: dict, ran: set, failures: list, executor, wall: float, manifest: Manifest) -> dict:
    from .. import __version__

    models: dict = {}
    nodes: dict = {}
    overheads = []
    for run in runs:
        m = models.setdefault(run.model.name, {"model": run.model.name, "tasks": 0, "tasks_run": 0, "windows": 0,
                                               "task_seconds": 0.0, "task_seconds_this_run": 0.0})
        for task in run.tasks:
            rec = records.get(task)
            if rec is None:
                continue
            m["tasks"] += 1
            m["windows"] += task.last - task.first
            m["task_seconds"] += rec["seconds"]
            if task not in ran:
                continue
            m["tasks_run"] += 1
            m["task_seconds_this_run"] += rec["seconds"]
            node = rec.get("node", {})
            key = node.get("node_id", "?")
            n = nodes.setdefault(key, {"node_id": key, "ip": node.get("ip"), "hostname": node.get("hostname"),
                                       "cpu": node.get("cpu"), "tasks": 0, "windows": 0, "task_seconds": 0.0,
                                       "pids": []})
            n["tasks"] += 1
            n["windows"] += task.last - task.first
            n["task_seconds"] += rec["seconds"]
            if node.get("pid") not in n["pids"]:
                n["pids"].append(node.get("pid"))
            overheads.append(rec["wall_seconds"] - rec["seconds"])
    return {
        "attnspec_version": __version__,
        "manifest": os.fspath(manifest.source),
        "mode": executor.mode,
        "ray_address": getattr(executor, "address", None),
        "threads_per_task": executor.threads,
        "wall_seconds": wall,
        "tasks": {"total": sum(len(r.tasks) for r in runs), "run": len(ran), "reused": len(records) - len(ran),
                  "failed": len(failures)},
        "runs": len(runs),
        "models": list(models.values()),
        "nodes": sorted(nodes.values(), key=lambda n: (str(n["ip"]), n["node_id"])),
        "scheduling_overhead_seconds": {
            "tasks": len(overheads),
            "median": statistics.median(overheads) if overheads else None,
            "mean": sum(overheads) / len(overheads) if overheads else None,
        },
        "failures": [{"task": t.label, "error": one_line(e)} for t, e in failures],
    }


def print_report(report: dict, quiet: bool) -> None:
    if quiet:
        return
    p = lambda s: print(f"attnspec sweep: {s}", file=sys.stderr, flush=True)
    t = report["tasks"]
    p(f"{count(t['total'], 'task')}: {t['run']} run now, {t['reused']} finished earlier, {t['failed']} failed, "
      f"in {fmt_seconds(report['wall_seconds'])}")
    for m in report["models"]:
        p(f"  model {m['model']}: {count(m['tasks'], 'task')}, {count(m['windows'], 'window')}, "
          f"{m['task_seconds']:.1f} s of task time "
          f"({m['task_seconds_this_run']:.1f} s now)")
    for n in report["nodes"]:
        p(f"  node {n['ip']} ({n['hostname']}, {str(n['node_id'])[:12]}): {count(n['tasks'], 'task')}, "
          f"{count(n['windows'], 'window')}, "
          f"{n['task_seconds']:.1f} s")
    cpus = sorted({str(n.get("cpu")) for n in report["nodes"]})
    if len(cpus) > 1:
        p(f"  note: the nodes have different CPUs ({'; '.join(cpus)}); their results may differ in the last bits")
    s = report["scheduling_overhead_seconds"]
    if s["tasks"]:
        p(f"  scheduling overhead per task: median {s['median']:.3f} s, mean {s['mean']:.3f} s")
