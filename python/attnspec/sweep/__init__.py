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
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .._cli import Parser, run_command

PROG = "attnspec sweep"

#: files of a checkpoint folder that decide its results (weights, config, tokenizer)
_MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".txt", ".model")
#: one-file checkpoints (GGUF, llama2.c): a model path with one of these names a file, never a hub id
_CHECKPOINT_FILE_SUFFIXES = (".gguf", ".bin")
#: files up to this size are hashed whole; larger ones (weights) by size and sampled chunks
_WHOLE_HASH_BYTES = 64 << 20
_SAMPLE_BYTES = 1 << 20
#: forward + spectra rate assumed per thread to size tasks (a deliberately modest figure)
_NOMINAL_GFLOPS_PER_THREAD = 10.0


# ---------------------------------------------------------------------------------------------
# The manifest
# ---------------------------------------------------------------------------------------------

@dataclass
class Options:
    """The manifest's ``[options]`` table."""

    windows_per_task: int = 0  # 0: "auto", from task_seconds and a cost estimate per window
    task_seconds: float = 30.0
    max_windows: int = 0  # per (model, text, ctx); 0: all
    layers: int = 0  # analyze layers 0..layers-1; 0: all
    threads: int = 0  # per task; 0: all cores locally, 1 on Ray
    save_spectra: bool = True
    field: str = "unmasked"
    data_side: bool = False
    invariants: bool = False
    causal_method: str = "auto"
    causal_dense_max: int = 1024
    causal_max_values: int = 512
    strip_gutenberg: str = "auto"
    allow_long_context: bool = False
    max_retries: int = 3  # Ray: how often a task whose worker died is run again

    def analysis(self) -> dict:
        return dict(field=self.field, data_side=self.data_side, invariants=self.invariants,
                    causal_method=self.causal_method, causal_dense_max=self.causal_dense_max,
                    causal_max_values=self.causal_max_values)


_OPTION_CHOICES = {"field": ("unmasked", "causal", "both"), "causal_method": ("auto", "dense", "lanczos"),
                   "strip_gutenberg": ("auto", "yes", "no")}
_OPTION_MIN = {"task_seconds": 0.001, "max_windows": 0, "layers": 0, "threads": 0, "causal_dense_max": 0,
               "causal_max_values": 1, "max_retries": 0, "windows_per_task": 1}


@dataclass
class ModelEntry:
    ref: str  # as the workers resolve it: an absolute folder or checkpoint file, or a hub id
    folder: Path  # resolved here: a checkpoint folder, or a one-file checkpoint (.gguf, llama2.c .bin)
    name: str
    tokenizer: Optional[Path] = None


@dataclass
class InputEntry:
    path: Path
    kind: str  # "text" or "token_ids"
    name: str


@dataclass
class Manifest:
    source: Path
    models: list
    inputs: list
    ctx: list
    options: Options


class _Invalid(Exception):
    pass


def _read_manifest_file(path: Path) -> dict:
    from .._core import InputError

    if not path.is_file():
        raise InputError(f"{path}: no such manifest file")
    suffix = path.suffix.lower()
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: unreadable ({e.strerror})") from None
    try:
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ModuleNotFoundError:
                raise InputError(f"{path}: a YAML manifest needs PyYAML (pip install pyyaml), or write it in TOML") from None
            data = yaml.safe_load(raw.decode("utf-8"))
        elif suffix == ".json":
            data = json.loads(raw.decode("utf-8"))
        else:
            try:
                import tomllib
            except ModuleNotFoundError:  # Python < 3.11
                try:
                    import tomli as tomllib
                except ModuleNotFoundError:
                    raise InputError(f"{path}: a TOML manifest needs Python 3.11 or tomli (pip install tomli), or "
                                     "write it in JSON") from None
            data = tomllib.loads(raw.decode("utf-8"))
    except InputError:
        raise
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 (byte {e.start})") from None
    except Exception as e:  # the parsers' own errors say where
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: not a valid {'YAML' if suffix in ('.yaml', '.yml') else 'JSON' if suffix == '.json' else 'TOML'} "
                         f"manifest ({msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the manifest must be a table of keys (models, texts / token_ids, ctx, options)")
    return data


def _as_list(data: dict, key: str) -> list:
    v = data.get(key, [])
    if isinstance(v, (str, dict)):
        v = [v]
    if not isinstance(v, list):
        raise _Invalid(f"'{key}' must be a list")
    return v


def _entry(item, where: str, keys: Sequence[str]) -> dict:
    """A list item: a string (its path) or a table with 'path' and some of ``keys``."""
    if isinstance(item, str):
        return {"path": item}
    if not isinstance(item, dict):
        raise _Invalid(f"{where}: must be a string or a table with 'path'")
    unknown = sorted(set(item) - {"path", *keys})
    if unknown:
        raise _Invalid(f"{where}: unknown key '{unknown[0]}' (allowed: path, {', '.join(keys)})")
    if not isinstance(item.get("path"), str) or not item["path"]:
        raise _Invalid(f"{where}: needs 'path' (a string)")
    for k in keys:
        if k in item and not isinstance(item[k], str):
            raise _Invalid(f"{where}: '{k}' must be a string")
    return item


def _options(raw) -> Options:
    if raw is None:
        return Options()
    if not isinstance(raw, dict):
        raise _Invalid("'options' must be a table")
    o = Options()
    defaults = Options.__dataclass_fields__
    for key, value in raw.items():
        if key not in defaults:
            raise _Invalid(f"options: unknown key '{key}' (allowed: {', '.join(defaults)})")
        if key == "windows_per_task" and value == "auto":
            value = 0
        elif key == "layers" and value == "all":
            value = 0
        want = type(defaults[key].default)
        if want is bool:
            if not isinstance(value, bool):
                raise _Invalid(f"options.{key}: must be true or false")
        elif want is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _Invalid(f"options.{key}: must be an integer" + (" or \"auto\"" if key == "windows_per_task" else ""))
        elif want is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _Invalid(f"options.{key}: must be a number")
            value = float(value)
        elif not isinstance(value, str):
            raise _Invalid(f"options.{key}: must be a string")
        if key in _OPTION_CHOICES and value not in _OPTION_CHOICES[key]:
            raise _Invalid(f"options.{key}: '{value}' is not one of {', '.join(_OPTION_CHOICES[key])}")
        if key in _OPTION_MIN and value < _OPTION_MIN[key] and not (key == "windows_per_task" and value == 0):
            raise _Invalid(f"options.{key}: must be >= {_OPTION_MIN[key]}")
        setattr(o, key, value)
    return o


def _model_stem(m: ModelEntry) -> str:
    """A model's default name: its folder's name, a hub id's last part, or a checkpoint file's name
    without .gguf / .bin (so that DIR/<model>/ does not look like a file)."""
    base = os.path.basename(os.path.normpath(m.ref))
    if m.folder.is_file() and Path(base).suffix.lower() in _CHECKPOINT_FILE_SUFFIXES:
        return Path(base).stem
    return base


def load_manifest(path: Path) -> Manifest:
    """Reads and checks a manifest; :class:`InputError` (one line naming the file) when it is wrong.
    Relative paths are relative to the manifest's folder. A model is a checkpoint folder, a one-file
    checkpoint (a GGUF file or a llama2.c .bin, read and checked by the engine when the runs are
    planned), or else a Hugging Face hub id."""
    from .. import resolve_model
    from .._core import InputError
    from ..reproduce import _safe, _unique_names

    path = Path(path)
    data = _read_manifest_file(path)
    base = path.resolve().parent
    here = lambda p: Path(p) if Path(p).is_absolute() else base / p
    try:
        unknown = sorted(set(data) - {"models", "texts", "token_ids", "ctx", "options"})
        if unknown:
            raise _Invalid(f"unknown key '{unknown[0]}' (allowed: models, texts, token_ids, ctx, options)")
        models_raw = [_entry(m, f"models[{i}]", ("name", "tokenizer")) for i, m in enumerate(_as_list(data, "models"))]
        if not models_raw:
            raise _Invalid("'models' must name at least one model (a checkpoint folder or file, or a hub id)")
        inputs_raw = [(_entry(t, f"texts[{i}]", ("name",)), "text") for i, t in enumerate(_as_list(data, "texts"))]
        inputs_raw += [(_entry(t, f"token_ids[{i}]", ("name",)), "token_ids")
                       for i, t in enumerate(_as_list(data, "token_ids"))]
        if not inputs_raw:
            raise _Invalid("needs at least one of 'texts' (UTF-8 files) and 'token_ids' (token-id files)")
        ctx = _as_list(data, "ctx") if not isinstance(data.get("ctx"), int) else [data["ctx"]]
        if not ctx:
            raise _Invalid("'ctx' must list at least one context length")
        for c in ctx:
            if isinstance(c, bool) or not isinstance(c, int) or c <= 0:
                raise _Invalid(f"ctx: {c!r} is not a positive number of tokens")
        options = _options(data.get("options"))
    except _Invalid as e:
        raise InputError(f"{path}: {e}") from None

    models = []
    for i, m in enumerate(models_raw):
        ref = m["path"]
        local = here(ref)
        if local.is_file():  # a GGUF file or a llama2.c .bin: the engine reads and checks it in plan()
            folder, ref = local, os.fspath(local)
        elif local.suffix.lower() in _CHECKPOINT_FILE_SUFFIXES and not local.is_dir():
            raise InputError(f"{path}: models[{i}]: no such checkpoint file {local}")
        elif local.exists() or ref.startswith((".", "/", "~")):
            if not local.is_dir():
                raise InputError(f"{path}: models[{i}]: {local} is not a folder")
            if not (local / "config.json").is_file():
                raise InputError(f"{path}: models[{i}]: {local} has no config.json (not a Hugging Face checkpoint folder)")
            folder, ref = local, os.fspath(local)
        else:
            folder = resolve_model(ref)  # a hub id: the local hub cache, or a download
        tok = m.get("tokenizer")
        if tok is not None and not (here(tok).is_dir() or here(tok).is_file()):
            raise InputError(f"{path}: models[{i}]: tokenizer {here(tok)}: no such folder or file (a tokenizer folder, "
                             "a .gguf or a llama2.c tok*.bin)")
        models.append(ModelEntry(ref=ref, folder=folder, name=m.get("name") or "",
                                 tokenizer=None if tok is None else here(tok)))
    inputs = []
    for i, (t, kind) in enumerate(inputs_raw):
        f = here(t["path"])
        if not f.is_file():
            raise InputError(f"{path}: {'texts' if kind == 'text' else 'token_ids'}: no such file {f}")
        inputs.append(InputEntry(path=f, kind=kind, name=t.get("name") or ""))
    model_names = _unique_names(models, lambda m: m.name or _model_stem(m))
    for m, n in zip(models, model_names):
        m.name = n
    input_names = _unique_names(inputs, lambda t: t.name or t.path.stem)
    for t, n in zip(inputs, input_names):
        t.name = _safe(n)
    return Manifest(source=path, models=models, inputs=inputs, ctx=list(dict.fromkeys(ctx)), options=options)


# ---------------------------------------------------------------------------------------------
# Runs and tasks
# ---------------------------------------------------------------------------------------------

@dataclass(eq=False)  # identity: runs and tasks are dict keys
class Run:
    model: ModelEntry
    input: InputEntry
    ctx: int
    windows: int = 0
    memory_bytes: int = 0
    window_seconds: float = 0.0  # estimated, per window on one thread
    tasks: list = field(default_factory=list)

    @property
    def rel(self) -> str:
        return f"{self.model.name}/{self.input.name}/ctx{self.ctx}"


@dataclass(eq=False)
class Task:
    run: Run
    first: int
    last: int
    fingerprint: str
    file: Path
    cost: float  # estimated seconds

    @property
    def label(self) -> str:
        return f"{self.run.rel} windows {self.first}-{self.last - 1}"


def request(run: Run, options: Options, *, for_workers: bool, threads: int, out: Optional[Path] = None) -> dict:
    """The engine's request for ``run`` (see ``_core.describe_run``)."""
    return {
        "model": run.model.ref if for_workers else os.fspath(run.model.folder),
        "text": os.fspath(run.input.path) if run.input.kind == "text" else None,
        "token_ids": os.fspath(run.input.path) if run.input.kind == "token_ids" else None,
        "tokenizer": None if run.model.tokenizer is None else os.fspath(run.model.tokenizer),
        "ctx": run.ctx,
        "out": None if out is None else os.fspath(out),
        "max_windows": options.max_windows,
        "save_spectra": options.save_spectra,
        "threads": threads,
        "strip_gutenberg": {"auto": -1, "no": 0, "yes": 1}[options.strip_gutenberg],
        "allow_long_context": options.allow_long_context,
        "layers": options.layers,
        "options": options.analysis(),
    }


def _hash_file(h, path: Path) -> None:
    size = path.stat().st_size
    h.update(f"{path.name}\0{size}\0".encode())
    with path.open("rb") as f:
        if size <= _WHOLE_HASH_BYTES:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        else:  # weights: the header (tensor names, dtypes, offsets) and samples of the data
            for offset in (0, size // 4, size // 2, 3 * size // 4, size - _SAMPLE_BYTES):
                f.seek(offset)
                h.update(f.read(_SAMPLE_BYTES))


def _hash_checkpoint_file(h, path: Path) -> None:
    """A one-file checkpoint: its first 64 MiB whole (a GGUF file's header, with every metadata key
    and the tokenizer's vocabulary, tensor names, types and offsets; or a llama2.c header), then
    the sampled chunks of _hash_file."""
    if path.stat().st_size > _WHOLE_HASH_BYTES:
        with path.open("rb") as f:
            left = _WHOLE_HASH_BYTES
            while left > 0:
                chunk = f.read(min(1 << 20, left))
                h.update(chunk)
                left -= len(chunk)
    _hash_file(h, path)


def model_fingerprint(folder: Path, tokenizer: Optional[Path]) -> str:
    """What decides a model's results: every config, weight and tokenizer file of its folder (and of
    its separate tokenizer folder or file), by name and content (files beyond 64 MiB by size, header
    and sampled chunks: hashing a 15 GB checkpoint whole would take minutes). A one-file checkpoint
    is itself all of that (a GGUF file carries config and tokenizer in its metadata), plus, for a
    llama2.c .bin without a tokenizer of its own, the tok*.bin files beside it (the engine takes
    the one it finds there)."""
    def hash_folder(d: Path) -> None:
        for p in sorted(d.iterdir()):
            if p.is_file() and p.suffix in _MODEL_FILE_SUFFIXES:
                _hash_file(h, p)

    h = hashlib.sha256()
    folder = Path(folder)
    if folder.is_file():
        _hash_checkpoint_file(h, folder)
        if tokenizer is None and folder.suffix.lower() == ".bin":
            for p in sorted(folder.parent.iterdir()):
                if p != folder and p.is_file() and p.name.startswith("tok") and p.suffix == ".bin":
                    _hash_file(h, p)
    else:
        hash_folder(folder)
    if tokenizer is not None:
        if Path(tokenizer).is_file():
            _hash_file(h, Path(tokenizer))
        else:
            hash_folder(Path(tokenizer))
    return h.hexdigest()


def file_fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    _hash_file(h, path)
    return h.hexdigest()


def window_seconds(config: dict, ctx: int) -> float:
    """A rough cost of one window on one thread: projections and MLP (2 flops per weight and token),
    the n x n attention, the O(n d_h^2) reductions per head. Only sizes the tasks."""
    L, d, H, G, dh = (int(config[k]) for k in ("layers", "d_model", "heads", "kv_heads", "head_dim"))
    dff = int(config.get("d_ff") or 4 * d)
    per_layer = (2 * ctx * (d * (H + 2 * G) * dh + H * dh * d + 3 * d * dff) + 4 * ctx * ctx * H * dh
                 + H * 12 * ctx * dh * dh)
    return L * per_layer / (_NOMINAL_GFLOPS_PER_THREAD * 1e9)


def plan(manifest: Manifest, out: Path, threads: int, say) -> list:
    """The runs of the sweep and their tasks, in (model, text, ctx, window) order. Reads every model
    and input once (bad input: InputError, before anything runs)."""
    from .. import __version__
    from .._core import Model, describe_run

    o = manifest.options
    runs = []
    for m in manifest.models:
        config = Model.load(os.fspath(m.folder)).config
        mfp = model_fingerprint(m.folder, m.tokenizer)
        limit = int(config.get("max_positions") or 0)
        learned = config.get("positions") == "learned"
        for t in manifest.inputs:
            ifp = file_fingerprint(t.path)
            for c in manifest.ctx:
                if limit and c > limit and (learned or not o.allow_long_context):
                    why = "learned positions cannot be extended" if learned else "set allow_long_context to run it anyway"
                    say(f"skipping {m.name} at ctx {c}: beyond its max_position_embeddings {limit} ({why})")
                    continue
                run = Run(model=m, input=t, ctx=c)
                d = describe_run(request(run, o, for_workers=False, threads=threads))
                run.windows, run.memory_bytes = int(d["windows"]), int(d["memory_bytes"])
                run.window_seconds = window_seconds(config, c) / max(1, threads)
                per_task = o.windows_per_task or max(1, int(o.task_seconds / max(run.window_seconds, 1e-9)))
                for first in range(0, run.windows, per_task):
                    last = min(run.windows, first + per_task)
                    key = {
                        "attnspec_version": __version__, "model": mfp, "input": ifp, "kind": t.kind, "ctx": c,
                        "windows": [first, last], "layers": o.layers, "save_spectra": o.save_spectra,
                        "options": o.analysis(),
                        "strip_gutenberg": o.strip_gutenberg if t.kind == "text" else None,
                    }
                    fp = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
                    name = f"{m.name}.{t.name}.ctx{c}.w{first:06d}-{last:06d}.{fp[:16]}.json"
                    run.tasks.append(Task(run=run, first=first, last=last, fingerprint=fp, file=out / "tasks" / name,
                                          cost=(last - first) * run.window_seconds))
                runs.append(run)
    return runs


def read_task_file(task: Task) -> Optional[dict]:
    """A finished task's record, or None when it is missing, unreadable or not this task's."""
    try:
        data = json.loads(task.file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("fingerprint") != task.fingerprint:
        return None
    rows = data.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == 5 for r in rows) or \
            [r[0] for r in rows] != list(range(task.first, task.last)):
        return None
    return data


def write_atomically(path: Path, text: str) -> None:
    """Write, fsync, rename: a reader sees the whole file or none of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.partial-{os.getpid()}"
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


# ---------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------

def _fmt_seconds(s: float) -> str:
    from ..reproduce import _fmt_seconds as f

    return f(s)


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
            eta = f", eta {_fmt_seconds(elapsed / self.done_cost * (self.todo_cost - self.done_cost))}"
        reused = f" ({self.reused} finished earlier)" if self.reused else ""
        return (f"attnspec sweep: {self.reused + self.done}/{self.total} tasks done{reused}, {self.running} running, "
                f"{self.failed} failed  ({_fmt_seconds(elapsed)} elapsed{eta})")

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
        req = request(task.run, self.options, for_workers=True, threads=self.threads)
        try:
            if task.run.model.ref not in self.weights:
                self.weights[task.run.model.ref] = compute_weight_spectra(req)
            return [(task, run_block(req, task.first, task.last, self.weights[task.run.model.ref]), None)]
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - reported per task, like a Ray task's failure
            return [(task, None, e)]

    def cancel(self, inflight: list) -> None:
        pass


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

                raise InputError(f"cannot connect to the Ray cluster at {address} ({_one_line(e)}); start it with "
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
# The sweep
# ---------------------------------------------------------------------------------------------

def _execute(executor, todo: list, out: Path, progress: Progress, records: dict, failures: list) -> None:
    """Keeps about as many tasks in flight as the executor has slots; writes each finished task's
    record to its file at once."""
    pending = list(todo)
    inflight: dict = {}  # handle -> task
    submitted: dict = {}
    try:
        while pending or inflight:
            while pending and len(inflight) < executor.slots():
                task = pending.pop(0)
                submitted[task] = time.time()
                inflight[executor.submit(task)] = task
            progress.running = len(inflight)
            progress.update()
            for handle, result, error in executor.wait(list(inflight), timeout=0.5):
                task = inflight.pop(handle)
                progress.running = min(len(inflight) + len(pending), executor.slots())  # after the refill
                if error is not None:
                    failures.append((task, error))
                    progress.failed += 1
                    progress.say(f"task {task.label} failed: {_one_line(error)}")
                    progress.update(event=True)
                    continue
                result["fingerprint"] = task.fingerprint
                result["task"] = {"model": task.run.model.name, "text": task.run.input.name, "ctx": task.run.ctx,
                                  "first": task.first, "last": task.last}
                result["wall_seconds"] = time.time() - submitted[task]
                write_atomically(task.file, json.dumps(result) + "\n")
                records[task] = result
                progress.done += 1
                progress.done_cost += task.cost
                progress.update(event=True)
    except KeyboardInterrupt:
        executor.cancel(list(inflight))
        raise


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[-1] if text else type(e).__name__).strip()


def merge(runs: list, out: Path, options: Options, threads: int) -> None:
    """The run folders, DIR/heads.csv and the table, from the task files, in a fixed order."""
    from .. import _core
    from ..runfolder import RunFolder
    from ..table import load_runs, write_table

    header, lines = None, []
    for run in runs:
        rows = []
        for task in run.tasks:
            rows.extend(tuple(r) for r in read_task_file(task)["rows"])
        dest = out / run.rel
        _core.write_run(request(run, options, for_workers=False, threads=threads, out=dest), rows)
        text = RunFolder(dest).heads_text()
        first_line, _, body = text.partition("\n")
        header = header or "model,text,ctx," + first_line
        prefix = f"{run.model.name},{run.input.name},{run.ctx},"
        lines.extend(prefix + line for line in body.splitlines())
    write_atomically(out / "heads.csv", header + "\n" + "".join(line + "\n" for line in lines))
    loaded = load_runs([out / run.rel for run in runs])
    for run, r in zip(runs, loaded):  # names and folders as the sweep knows them, relative to DIR
        r.dir, r.model_name = Path(run.rel), run.model.name
    write_table(None, out, runs=loaded)


def _report(runs: list, records: dict, ran: set, failures: list, executor, wall: float, manifest: Manifest) -> dict:
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
        "failures": [{"task": t.label, "error": _one_line(e)} for t, e in failures],
    }


def _print_report(report: dict, quiet: bool) -> None:
    if quiet:
        return
    p = lambda s: print(f"attnspec sweep: {s}", file=sys.stderr, flush=True)
    t = report["tasks"]
    p(f"{_count(t['total'], 'task')}: {t['run']} run now, {t['reused']} finished earlier, {t['failed']} failed, "
      f"in {_fmt_seconds(report['wall_seconds'])}")
    for m in report["models"]:
        p(f"  model {m['model']}: {_count(m['tasks'], 'task')}, {_count(m['windows'], 'window')}, "
          f"{m['task_seconds']:.1f} s of task time "
          f"({m['task_seconds_this_run']:.1f} s now)")
    for n in report["nodes"]:
        p(f"  node {n['ip']} ({n['hostname']}, {str(n['node_id'])[:12]}): {_count(n['tasks'], 'task')}, "
          f"{_count(n['windows'], 'window')}, "
          f"{n['task_seconds']:.1f} s")
    cpus = sorted({str(n.get("cpu")) for n in report["nodes"]})
    if len(cpus) > 1:
        p(f"  note: the nodes have different CPUs ({'; '.join(cpus)}); their results may differ in the last bits")
    s = report["scheduling_overhead_seconds"]
    if s["tasks"]:
        p(f"  scheduling overhead per task: median {s['median']:.3f} s, mean {s['mean']:.3f} s")


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
    say(f"{_count(len(runs), 'run')} in {_count(len(tasks), 'task')} ({len(tasks) - len(todo)} finished earlier), "
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
        _execute(executor, todo, out, progress, records, failures)
    except KeyboardInterrupt:
        progress.close()
        raise KeyboardInterrupt(f"interrupted; {len(records)} of {len(tasks)} tasks are finished and kept in "
                                f"{out / 'tasks'}; run the same command again to continue") from None
    finally:
        progress.close()
    ran = set(todo) - {t for t, _ in failures}
    if not failures:
        merge(runs, out, o, threads)
    report = _report(runs, records, ran, failures, executor, time.monotonic() - t0, manifest)
    write_atomically(out / "sweep_report.json", json.dumps(report, indent=2) + "\n")
    _print_report(report, quiet)
    if failures:
        bad_input = all(isinstance(e, InputError) for _, e in failures)
        msg = (f"{len(failures)} of {len(tasks)} tasks failed (first: {failures[0][0].label}: "
               f"{_one_line(failures[0][1])}); the finished ones are kept in {out / 'tasks'}, run the sweep again to retry")
        if bad_input:
            raise InputError(msg)
        raise SweepFailed(msg)
    say(f"wrote {_count(len(runs), 'run')}, {out / 'heads.csv'}, the table ({out / 'table.md'}) and {out / 'sweep_report.json'}")
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
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        args = _parser().parse_args(argv)
        try:
            sweep(Path(args.manifest), Path(args.out), args.ray, args.quiet)
        except SweepFailed as e:
            print(f"attnspec: error: {e}", file=sys.stderr)
            return 1
        return 0

    return run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
