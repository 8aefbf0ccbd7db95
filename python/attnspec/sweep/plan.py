"""The plan of a sweep: its runs, every model on every input at every context length (a context a
model cannot take is left out with a note), and their tasks, blocks of consecutive windows sized to
about ``task_seconds`` and named by a fingerprint of all that decides their results; and the record
file a finished task leaves in ``DIR/tasks/``."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from .manifest import InputEntry, Manifest, ModelEntry
from .options import request

#: files of a checkpoint folder that decide its results (weights, config, tokenizer)
_MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".txt", ".model")
#: files up to this size are hashed whole; larger ones (weights) by size and sampled chunks
_WHOLE_HASH_BYTES = 64 << 20
_SAMPLE_BYTES = 1 << 20
#: forward + spectra rate assumed per thread to size tasks (a deliberately modest figure)
_NOMINAL_GFLOPS_PER_THREAD = 10.0


@dataclass(eq=False)  # identity: runs and tasks are dict keys
class Run:
    model: ModelEntry
    input: InputEntry
    ctx: int
    windows: int = 0
    memory_bytes: int = 0
    window_seconds: float = 0.0  # estimated, per window on one thread
    tasks: list = field(default_factory=list)
    config: dict = field(default_factory=dict, repr=False)  # the model's, as the engine reads it

    @property
    def rel(self) -> str:
        return f"{self.model.name}/{self.input.name}/ctx{self.ctx}"


@dataclass(eq=False)
class Task:
    """Windows ``[first, last)`` of a run (``last`` None: the whole run, as one ``analyze``)."""

    run: Run
    first: int = 0
    last: Optional[int] = None
    fingerprint: str = ""
    file: Optional[Path] = None  # where its record goes
    cost: float = 0.0  # estimated seconds

    @property
    def label(self) -> str:
        return self.run.rel if self.last is None else f"{self.run.rel} windows {self.first}-{self.last - 1}"


def runs_of(manifest: Manifest, skip: Callable[[str], None], how_to_allow: str) -> Iterator[Run]:
    """The runs of ``manifest`` in (model, input, ctx) order, each model loaded once by the engine (a
    broken checkpoint is :class:`InputError` before its first run). A context beyond a model's
    max_position_embeddings is left out with a note to ``skip``: learned positions cannot be
    extended, and RoPE only with allow_long_context (``how_to_allow`` says how to set it)."""
    from .._core import Model

    for m in manifest.models:
        config = Model.load(os.fspath(m.folder)).config
        limit = int(config.get("max_positions") or 0)
        learned = config.get("positions") == "learned"
        for t in manifest.inputs:
            for c in manifest.ctx:
                if limit and c > limit and (learned or not manifest.options.allow_long_context):
                    why = "learned positions cannot be extended" if learned else how_to_allow
                    skip(f"skipping {m.name} at ctx {c}: beyond its max_position_embeddings {limit} ({why})")
                    continue
                yield Run(model=m, input=t, ctx=c, config=config)


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
    from .._core import describe_run

    o = manifest.options
    fingerprints: dict = {}  # model or input entry -> its fingerprint
    planned = []
    for run in runs_of(manifest, say, "set allow_long_context to run it anyway"):
        m, t, c = run.model, run.input, run.ctx
        if id(m) not in fingerprints:
            fingerprints[id(m)] = model_fingerprint(m.folder, m.tokenizer)
        if id(t) not in fingerprints:
            fingerprints[id(t)] = file_fingerprint(t.path)
        d = describe_run(request(run, o, for_workers=False, threads=threads))
        run.windows, run.memory_bytes = int(d["windows"]), int(d["memory_bytes"])
        run.window_seconds = window_seconds(run.config, c) / max(1, threads)
        per_task = o.windows_per_task or max(1, int(o.task_seconds / max(run.window_seconds, 1e-9)))
        for first in range(0, run.windows, per_task):
            last = min(run.windows, first + per_task)
            key = {
                "attnspec_version": __version__, "model": fingerprints[id(m)], "input": fingerprints[id(t)],
                "kind": t.kind, "ctx": c, "windows": [first, last], "layers": o.layers,
                "save_spectra": o.save_spectra, "options": o.analysis(),
                "strip_gutenberg": o.strip_gutenberg if t.kind == "text" else None,
            }
            fp = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
            name = f"{m.name}.{t.name}.ctx{c}.w{first:06d}-{last:06d}.{fp[:16]}.json"
            run.tasks.append(Task(run=run, first=first, last=last, fingerprint=fp, file=out / "tasks" / name,
                                  cost=(last - first) * run.window_seconds))
        planned.append(run)
    return planned


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
