"""Reading the folders attnspec writes: one reader for every output folder.

- an analyze run (``attnspec analyze``, ``attnspec.analyze``, and every run of ``reproduce``, ``sweep``
  and ``demo``): ``heads.csv`` and ``summary.json``, and as asked for ``spectra.jsonl``,
  ``head_summary.csv``, ``layers.csv``; while unfinished, the engine's checkpoints in ``.attnspec-run/``;
- a plan run (``attnspec plan``): ``plan.json``, ``plan.csv``, ``plan_curves.csv``;
- a folder of runs (``attnspec reproduce``'s or ``attnspec sweep``'s DIR): analyze runs below it; a
  sweep's DIR also holds ``sweep_report.json`` and a ``heads.csv`` of all its runs' rows.

    >>> from attnspec.runfolder import RunFolder
    >>> run = RunFolder("runs/gpt2/book/ctx1024")
    >>> run.heads(), run.summary(), run.spectra()

Files are read when asked for; a missing or unreadable file is :class:`attnspec.InputError` naming it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import numpy as np

from ._core import InputError

PathLike = Union[str, os.PathLike]

HEADS = "heads.csv"
SUMMARY = "summary.json"
SPECTRA = "spectra.jsonl"
HEAD_SUMMARY = "head_summary.csv"
LAYERS = "layers.csv"
PLAN = "plan.csv"
PLAN_CURVES = "plan_curves.csv"
PLAN_SUMMARY = "plan.json"
COMPRESS_CURVES = "compress_curves.csv"
COMPRESS_HEADS = "compress_heads.csv"
COMPRESS_SUMMARY = "compress.json"
SWEEP_REPORT = "sweep_report.json"
#: the engine's checkpoints of an unfinished analyze run (``--resume`` continues from them)
RUN_STATE = ".attnspec-run"
#: the columns of a spectra.jsonl row that name its head, not a spectrum
SPECTRA_KEYS = ("window", "layer", "head", "kv_head")


class RunFolder:
    """One output folder of attnspec. What it is comes from the files it holds; each reader raises
    :class:`attnspec.InputError` (one line naming the file) when its file is missing or unreadable."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self._summary: Optional[dict] = None
        self._spectra_rows: Optional[list] = None

    def __repr__(self) -> str:
        return f"RunFolder({os.fspath(self.path)!r})"

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    # -- what the folder is ----------------------------------------------------------------------

    @property
    def is_analyze(self) -> bool:
        """Holds heads.csv of its own: an analyze run (finished when summary.json is there too)."""
        return self.has(HEADS) and not self.is_sweep

    @property
    def is_sweep(self) -> bool:
        """A sweep's DIR: its heads.csv holds the rows of the runs below it, not a run's own."""
        return self.has(SWEEP_REPORT)

    @property
    def is_finished(self) -> bool:
        """A finished analyze run: heads.csv and summary.json (written last) are both there."""
        return self.has(HEADS) and self.has(SUMMARY)

    @property
    def is_interrupted(self) -> bool:
        """An analyze run that was stopped: its finished windows wait in .attnspec-run/ for ``--resume``."""
        return (self.path / RUN_STATE).is_dir()

    @property
    def is_plan(self) -> bool:
        return self.has(PLAN_SUMMARY)

    @property
    def is_compress(self) -> bool:
        return self.has(COMPRESS_SUMMARY)

    def require_finished(self) -> None:
        """:class:`InputError` unless this is a finished analyze run."""
        if not self.has(HEADS):
            raise InputError(f"{self.path}: no {HEADS} (not a finished attnspec run folder)")
        if not self.has(SUMMARY):
            raise InputError(f"{self.path}: {HEADS} without {SUMMARY} (not a finished attnspec run folder)")

    def runs(self) -> list["RunFolder"]:
        """The analyze runs this path holds: itself when it is one, else every run folder below it (in
        path order; hidden folders left out). :class:`InputError` when there is none."""
        d = self.path
        if not d.exists():
            raise InputError(f"{d}: no such run folder")
        if not d.is_dir():
            raise InputError(f"{d}: not a folder (give a run folder holding heads.csv and summary.json)")
        if self.is_analyze:
            return [self]
        below = sorted({h.parent for h in d.rglob(HEADS)
                        if not any(x.startswith(".") for x in h.parent.parts[len(d.parts):])
                        and RunFolder(h.parent).is_analyze})
        if not below:
            raise InputError(f"{d}: no {HEADS} (not an attnspec run folder, and none below it)")
        return [RunFolder(p) for p in below]

    # -- an analyze run --------------------------------------------------------------------------

    def summary(self) -> dict:
        """summary.json: the model, input, conventions, aggregates and timings of the run."""
        if self._summary is None:
            if not self.has(SUMMARY):
                self.require_finished()
            self._summary = self._json(SUMMARY, "summary")
        return self._summary

    def heads(self):
        """heads.csv as a pandas DataFrame: a row per (window, layer, query head)."""
        if not self.has(HEADS):
            self.require_finished()
        return self._csv(HEADS)

    def heads_text(self) -> str:
        """heads.csv as written, for copying its rows byte for byte."""
        return (self.path / HEADS).read_text()

    def head_summary(self):
        """head_summary.csv (k90 over windows per head) as a DataFrame, or None when absent."""
        return self._csv(HEAD_SUMMARY) if self.has(HEAD_SUMMARY) else None

    def layers(self):
        """layers.csv (the data side, ``--data-side``) as a DataFrame, or None when absent."""
        return self._csv(LAYERS) if self.has(LAYERS) else None

    @property
    def has_spectra(self) -> bool:
        return self.has(SPECTRA)

    def spectra_rows(self) -> list:
        """The rows of spectra.jsonl as dicts (empty when the run was made without ``--save-spectra``)."""
        if self._spectra_rows is None:
            self._spectra_rows = []
            if self.has_spectra:
                with (self.path / SPECTRA).open() as f:
                    self._spectra_rows = [json.loads(line) for line in f if line.strip()]
        return self._spectra_rows

    def spectra(self) -> dict:
        """spectra.jsonl by head: ``(window, layer, head) -> {"field": array, "weights": array, ...}``."""
        return {(row["window"], row["layer"], row["head"]):
                {name: np.asarray(value) for name, value in row.items() if name not in SPECTRA_KEYS}
                for row in self.spectra_rows()}

    # -- a plan run ------------------------------------------------------------------------------

    def plan_summary(self) -> dict:
        """plan.json: the model, input, tolerances and conventions of an ``attnspec plan`` run."""
        if not self.has(PLAN_SUMMARY):
            raise InputError(f"{self.path}: no {PLAN_SUMMARY} (not a finished attnspec plan folder)")
        return self._json(PLAN_SUMMARY, "plan")

    def plan(self):
        """plan.csv: a row per tolerance and head."""
        return self._csv(PLAN)

    def plan_curves(self):
        """plan_curves.csv: a row per window, head and rank."""
        return self._csv(PLAN_CURVES)

    def compress_summary(self) -> dict:
        """compress.json: the model, calibration and evaluation inputs, conventions and results."""
        if not self.has(COMPRESS_SUMMARY):
            raise InputError(f"{self.path}: no {COMPRESS_SUMMARY} (not a finished attnspec compress folder)")
        return self._json(COMPRESS_SUMMARY, "compress")

    def compress_curves(self):
        """compress_curves.csv: a row per method, rank policy and budget."""
        return self._csv(COMPRESS_CURVES)

    def compress_heads(self):
        """compress_heads.csv: a row per configuration, layer and KV head."""
        return self._csv(COMPRESS_HEADS)

    # -- reading ---------------------------------------------------------------------------------

    def _json(self, name: str, what: str) -> Any:
        f = self.path / name
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"{f}: unreadable {what} ({e})") from None
        if not isinstance(data, dict):
            raise InputError(f"{f}: not a JSON object")
        return data

    def _csv(self, name: str):
        import pandas as pd

        f = self.path / name
        if not f.is_file():
            raise InputError(f"{f}: no such file")
        try:
            return pd.read_csv(f)
        except Exception as e:  # pandas raises several kinds on a malformed file
            raise InputError(f"{f}: unreadable ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def run_folders(paths: Iterable[PathLike]) -> list[RunFolder]:
    """The analyze runs of several paths (see :meth:`RunFolder.runs`), each once (by real path)."""
    seen, unique = set(), []
    for p in paths:
        for run in RunFolder(p).runs():
            key = os.path.realpath(run.path)
            if key not in seen:
                seen.add(key)
                unique.append(run)
    return unique
