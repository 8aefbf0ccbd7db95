"""The options of a sweep and how they reach the engine, in one place: the manifest's ``[options]``
table (names, defaults, allowed values, checked here) and the request that carries a run and its
options to ``attnspec._core`` (``describe_run``, ``weight_spectra``, ``analyze_windows``, ``write_run``
and, for whole runs, ``run_analyze``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


class Invalid(Exception):
    """A wrong manifest entry, said in one line (the manifest's path is put in front of it)."""


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


def parse_options(raw) -> Options:
    """The ``[options]`` table of a manifest, checked; :class:`Invalid` names the first wrong key."""
    if raw is None:
        return Options()
    if not isinstance(raw, dict):
        raise Invalid("'options' must be a table")
    o = Options()
    defaults = Options.__dataclass_fields__
    for key, value in raw.items():
        if key not in defaults:
            raise Invalid(f"options: unknown key '{key}' (allowed: {', '.join(defaults)})")
        if key == "windows_per_task" and value == "auto":
            value = 0
        elif key == "layers" and value == "all":
            value = 0
        want = type(defaults[key].default)
        if want is bool:
            if not isinstance(value, bool):
                raise Invalid(f"options.{key}: must be true or false")
        elif want is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise Invalid(f"options.{key}: must be an integer" + (" or \"auto\"" if key == "windows_per_task" else ""))
        elif want is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise Invalid(f"options.{key}: must be a number")
            value = float(value)
        elif not isinstance(value, str):
            raise Invalid(f"options.{key}: must be a string")
        if key in _OPTION_CHOICES and value not in _OPTION_CHOICES[key]:
            raise Invalid(f"options.{key}: '{value}' is not one of {', '.join(_OPTION_CHOICES[key])}")
        if key in _OPTION_MIN and value < _OPTION_MIN[key] and not (key == "windows_per_task" and value == 0):
            raise Invalid(f"options.{key}: must be >= {_OPTION_MIN[key]}")
        setattr(o, key, value)
    return o


def request(run, options: Options, *, for_workers: bool, threads: int, out: Optional[Path] = None) -> dict:
    """The engine's request for ``run`` (a :class:`~attnspec.sweep.plan.Run`; see ``_core.describe_run``)."""
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
