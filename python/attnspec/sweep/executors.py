"""Where a sweep's tasks run: one after another in this process (:class:`LocalExecutor`; whole
``analyze`` runs with :class:`RunExecutor`) or on a Ray cluster (:class:`RayExecutor`), what a task
runs there, and :func:`execute`, the loop that keeps an executor busy.

An executor offers ``slots()``, ``check_memory(runs)``, ``submit(task)`` (a handle), ``wait(handles,
timeout)`` (``(handle, result, error)`` for each task that ended) and ``cancel(handles)``."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

from ..runfolder import RunFolder
from .options import Options, request
from .plan import Run, Task, write_atomically
from .progress import one_line


# ---------------------------------------------------------------------------------------------
# What runs on a worker (or in this process)
# ---------------------------------------------------------------------------------------------

def _cpu() -> str:
    """The CPU model and the vector extensions that choose BLAS kernels and vector math code paths:
    nodes that differ here may differ in the last bits of their results."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    ext = [f for f in ("avx", "avx2", "fma", "avx512f", "amx_tile") if f in flags]
    return f"{model or 'unknown CPU'} [{' '.join(ext)}]"


def _node() -> dict:
    info = {"hostname": socket.gethostname(), "pid": os.getpid(), "cpu": _cpu()}
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        info["node_id"] = ray.get_runtime_context().get_node_id()
        info["ip"] = ray.util.get_node_ip_address()
    else:
        info["node_id"] = "local"
        info["ip"] = "127.0.0.1"
    return info


def compute_weight_spectra(req: dict):
    """The model's W_Q^T W_K singular values ([layers, heads, d_h], NaN-padded), once per model."""
    from .. import _core, resolve_model

    req = dict(req, model=os.fspath(resolve_model(req["model"])))
    return _core.weight_spectra(req)


def run_block(req: dict, first: int, last: int, weights) -> dict:
    """Windows [first, last) of one run with the model's shared W_Q^T W_K spectra: the rows of
    heads.csv etc., where and how long it took."""
    from .. import _core, resolve_model

    t0 = time.time()
    req = dict(req, model=os.fspath(resolve_model(req["model"])))
    rows = _core.analyze_windows(req, first, last, weights)
    t1 = time.time()
    return {"rows": [list(r) for r in rows], "node": _node(), "started": t0, "seconds": t1 - t0}


# A test point for the loss of a worker. With ATTNSPEC_TEST_TASK_GATE=DIR in the environment of
# `attnspec sweep --ray`, every task on a Ray worker (never one run in this process) first writes
# DIR/<pid>-<first window>.json naming itself and its node, then stops its own process (SIGSTOP)
# before it computes anything. A test can so kill a worker that provably holds a task, or let it
# go on (SIGCONT), and nothing it checks depends on how fast the machine is.
TASK_GATE = "ATTNSPEC_TEST_TASK_GATE"


def run_block_on_worker(req: dict, first: int, last: int, weights) -> dict:
    """run_block as a Ray task, held at the test gate when one is set."""
    gate = os.environ.get(TASK_GATE)
    if gate:
        held = {"pid": os.getpid(), "node": _node(), "ctx": req["ctx"], "first": first, "last": last}
        write_atomically(Path(gate) / f"{os.getpid()}-{first}.json", json.dumps(held) + "\n")
        os.kill(os.getpid(), signal.SIGSTOP)
    return run_block(req, first, last, weights)


def analyze_run(run: Run, options: Options, threads: int, out: Path, quiet: bool) -> None:
    """A whole run by the engine's own ``analyze`` into ``out``, with its progress line per window
    unless ``quiet``, continuing the run an earlier one left unfinished there."""
    from .. import _core

    req = request(run, options, for_workers=False, threads=threads, out=out)
    resume = RunFolder(out).is_interrupted
    sys.stderr.flush()
    _core.run_analyze(**req, quiet=quiet, resume=resume)


# ---------------------------------------------------------------------------------------------
# Executors: the same tasks in this process, or on Ray
# ---------------------------------------------------------------------------------------------

class LocalExecutor:
    """Runs the tasks one after another in this process (each using ``threads`` threads)."""

    mode = "local"

    def __init__(self, options: Options, threads: int):
        self.options, self.threads = options, threads
        self.weights: dict = {}  # model ref -> array, the local cache

    def slots(self) -> int:
        return 1

    def check_memory(self, runs) -> None:
        pass  # the engine's own guard refuses, per task, what this machine cannot hold

    def submit(self, task: Task):
        return task

    def wait(self, inflight: list, timeout: float):
        task = inflight[0]
        try:
            return [(task, self.run(task), None)]
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - reported per task, like a Ray task's failure
            return [(task, None, e)]

    def run(self, task: Task) -> dict:
        req = request(task.run, self.options, for_workers=True, threads=self.threads)
        if task.run.model.ref not in self.weights:
            self.weights[task.run.model.ref] = compute_weight_spectra(req)
        return run_block(req, task.first, task.last, self.weights[task.run.model.ref])

    def cancel(self, inflight: list) -> None:
        pass


class RunExecutor(LocalExecutor):
    """Runs each task as a whole run of the engine's ``analyze``, written straight into
    ``out/<model>/<text>/ctx<N>/`` (see :func:`analyze_run`), one after another in this process."""

    def __init__(self, options: Options, threads: int, out: Path, quiet: bool):
        super().__init__(options, threads)
        self.out, self.quiet = out, quiet

    def run(self, task: Task) -> dict:
        analyze_run(task.run, self.options, self.threads, self.out / task.run.rel, self.quiet)
        return {}


def _check_reachable(address: str) -> None:
    """A cluster address (host:port of the head's GCS) that accepts no connection is bad input."""
    from .._core import InputError

    host, sep, port = address.rpartition(":")
    if address == "auto" or address.startswith("ray://") or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise InputError(f"cannot connect to the Ray cluster at {address} ({e.strerror or e}); start it with "
                         "`ray start --head` on that machine and pass the address it prints") from None


class RayExecutor:
    """Submits the tasks to a Ray cluster: each asks for ``threads`` CPUs and the engine's memory
    estimate, the model's W_Q^T W_K spectra come through the object store, and a task whose worker
    dies is run again (``max_retries``)."""

    mode = "ray"

    def __init__(self, address: str, options: Options, threads: int):
        import ray

        self.ray = ray
        self.options, self.threads = options, threads
        if not ray.is_initialized():
            _check_reachable(address)  # ray.init itself retries for minutes
            try:
                gate = os.environ.get(TASK_GATE)  # reaches the workers only through their runtime env
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                         runtime_env={"env_vars": {TASK_GATE: gate}} if gate else None)
            except (ConnectionError, RuntimeError, ValueError) as e:
                from .._core import InputError

                raise InputError(f"cannot connect to the Ray cluster at {address} ({one_line(e)}); start it with "
                                 "`ray start --head` and pass the address it prints") from None
        self.address = address
        self.weights: dict = {}  # model ref -> ObjectRef
        self._weights_fn = ray.remote(compute_weight_spectra)
        self._block_fn = ray.remote(run_block_on_worker)
        self._slots_at = 0.0
        self._slots = 1

    def slots(self) -> int:
        now = time.monotonic()
        if now - self._slots_at > 2.0:  # nodes may join or leave during a sweep
            cpus = self.ray.cluster_resources().get("CPU", 1)
            self._slots = max(1, int(cpus // self.threads))
            self._slots_at = now
        return self._slots

    def check_memory(self, runs) -> None:
        """A task that no node can hold would wait forever: refuse it up front."""
        from .._core import InputError

        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        most = max((n.get("Resources", {}).get("memory", 0) for n in nodes), default=0)
        for run in runs:
            if run.tasks and most and run.memory_bytes > most:
                raise InputError(f"{run.rel}: a task needs about {run.memory_bytes >> 20} MiB (the memory guard's "
                                 f"estimate for {self.threads} thread(s)) but no node of the Ray cluster offers more "
                                 f"than {int(most) >> 20} MiB; use a smaller ctx or add a bigger node")

    def submit(self, task: Task):
        req = request(task.run, self.options, for_workers=True, threads=self.threads)
        ref_key = task.run.model.ref
        if ref_key not in self.weights:
            self.weights[ref_key] = self._weights_fn.options(
                num_cpus=self.threads, memory=max(task.run.memory_bytes, 1),
                max_retries=self.options.max_retries).remote(req)
        ref = self._block_fn.options(
            num_cpus=self.threads, memory=max(task.run.memory_bytes, 1), max_retries=self.options.max_retries,
            retry_exceptions=False).remote(req, task.first, task.last, self.weights[ref_key])
        return ref

    def wait(self, inflight: list, timeout: float):
        ready, _ = self.ray.wait(inflight, num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            try:
                out.append((ref, self.ray.get(ref), None))
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - the task's error, or its worker's death after the retries
                cause = getattr(e, "cause", None)
                out.append((ref, None, cause if isinstance(cause, BaseException) else e))
        return out

    def cancel(self, inflight: list) -> None:
        for ref in inflight:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------

class Events:
    """What :func:`execute` tells as it goes; each does nothing here."""

    def started(self, task: Task) -> None:
        """``task`` is handed to the executor."""

    def running(self, n: int) -> None:
        """``n`` tasks are in flight while the loop waits."""

    def finished(self, task: Task, result: dict, wall_seconds: float, running: int) -> None:
        """``task`` ended with ``result`` after ``wall_seconds`` (from its submission); ``running``
        tasks are in flight once the loop refills."""

    def failed(self, task: Task, error: BaseException, running: int) -> None:
        """``task`` raised ``error`` (raise it again to stop the loop)."""


def execute(executor, todo: list, events: Events) -> None:
    """Runs ``todo`` in order on ``executor``, keeping about as many tasks in flight as it has slots,
    and tells ``events``. Ctrl-C cancels the tasks in flight and goes on up."""
    pending = list(todo)
    inflight: dict = {}  # handle -> task
    submitted: dict = {}
    try:
        while pending or inflight:
            while pending and len(inflight) < executor.slots():
                task = pending.pop(0)
                events.started(task)
                submitted[task] = time.time()
                inflight[executor.submit(task)] = task
            events.running(len(inflight))
            for handle, result, error in executor.wait(list(inflight), timeout=0.5):
                task = inflight.pop(handle)
                running = min(len(inflight) + len(pending), executor.slots())  # after the refill
                if error is not None:
                    events.failed(task, error, running)
                else:
                    events.finished(task, result, time.time() - submitted[task], running)
    except KeyboardInterrupt:
        executor.cancel(list(inflight))
        raise
