"""The options of a sweep and how they reach the engine, in one place: the manifest's ``[options]``
table (names, defaults, allowed values, checked here) and the request that carries a run and its
options to ``attnspec._core`` (``describe_run``, ``weight_spectra``, ``analyze_windows``, ``write_run``
and, for whole runs, ``run_analyze``)."""
from __future__ import annotations

import os
from dataclasses import field, make_dataclass
from pathlib import Path
from typing import Optional

from .. import _core


class Invalid(Exception):
    """A wrong manifest entry, said in one line (the manifest's path is put in front of it)."""


# The engine's options a manifest may set: analyze's, from the one option table of the C++ core
# (names, defaults, types, choices, minima), except what a sweep decides per run (the model, the
# input, ctx, out) or for its console (quiet, resume).
_PER_RUN = {"model", "text", "token_ids", "tokenizer", "out", "ctx", "quiet", "resume"}
_ENGINE = [o for o in _core.options() if "analyze" in o["commands"] and o["keyword"] not in _PER_RUN]
_TYPES = {"int": int, "flag": bool, "choice": str}

# A sweep's own options: how its work is cut into tasks and how often a lost task is run again.
_OWN_FIRST = [("windows_per_task", int, 0, 1),  # 0: "auto", from task_seconds and a cost per window
              ("task_seconds", float, 30.0, 0.001)]
_OWN_LAST = [("max_retries", int, 3, 0)]  # Ray: how often a task whose worker died is run again

_FIELDS = (_OWN_FIRST + [(o["keyword"], _TYPES[o["type"]], o["default"], o["min"]) for o in _ENGINE] + _OWN_LAST)
_OPTION_CHOICES = {o["keyword"]: tuple(o["choices"]) for o in _ENGINE if o["choices"]}
_OPTION_MIN = {name: least for name, _, _, least in _FIELDS if least is not None}

# The manifest's ``[options]`` table: one attribute per option above, with its default.
Options = make_dataclass("Options", [(name, kind, field(default=default)) for name, kind, default, _ in _FIELDS])
Options.__doc__ = "The manifest's ``[options]`` table."
# The options that identify what a task computes beyond its run and windows (the task fingerprint).
Options.analysis = lambda self: dict(field=self.field, data_side=self.data_side, invariants=self.invariants,
                                     causal_method=self.causal_method, causal_dense_max=self.causal_dense_max,
                                     causal_max_values=self.causal_max_values)


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
        **{o["keyword"]: getattr(options, o["keyword"]) for o in _ENGINE},
        "threads": threads,
    }
