"""attnspec: the spectral structure of attention in transformer language models.

The heavy work runs in the C++ core (``attnspec._core``); this package returns its results as
numpy arrays and pandas DataFrames.

    >>> import attnspec
    >>> run = attnspec.analyze("path/to/checkpoint", text="book.txt", ctx=1024)
    >>> run.heads[["layer", "head", "k90_field", "k90_weights"]].describe()

Definitions and conventions: see METRICS.md (``run.summary["conventions"]`` repeats them).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _core
from ._core import InputError, Model, Tokenizer, summarize

__version__ = _core.__version__
__all__ = [
    "analyze",
    "AnalysisResult",
    "energy_field_spectrum",
    "interaction_spectrum",
    "summarize",
    "Model",
    "Tokenizer",
    "InputError",
]

PathLike = Union[str, os.PathLike]


def energy_field_spectrum(Q: np.ndarray, K: np.ndarray, scale: Optional[float] = None) -> np.ndarray:
    """Singular values (descending) of the row-centred energy field ``E~ = s Q (K - mean K)^T``.

    ``Q`` and ``K`` are ``[n, d_h]`` arrays (float32 or float64; float32 with contiguous rows is
    read without a copy). ``scale`` defaults to ``1/sqrt(d_h)``. The ``n x n`` field is never
    built: the exact ``O(n d_h^2)`` QR reduction of METRICS.md is used, in float64.
    Returns ``min(n, d_h)`` values, already multiplied by ``scale``.
    """
    return _core.energy_field_spectrum(Q, K, scale)


def interaction_spectrum(W_q: np.ndarray, W_k: np.ndarray) -> np.ndarray:
    """Singular values (descending) of ``W_q^T W_k`` for ``[d_h, d]`` head blocks (``y = W x``).

    Computed exactly through thin QR factorisations of ``W_q^T`` and ``W_k^T`` (float64); returns
    ``d_h`` values.
    """
    return _core.interaction_spectrum(W_q, W_k)


@dataclass
class AnalysisResult:
    """The outcome of :func:`analyze`: the files of an ``attnspec analyze`` run, loaded."""

    out_dir: Path
    summary: dict
    heads: Any = None  # pandas.DataFrame with the columns of heads.csv
    spectra: dict = field(default_factory=dict)  # (window, layer, head) -> {"field": array, "weights": array}

    @classmethod
    def load(cls, out_dir: PathLike) -> "AnalysisResult":
        """Loads a finished run folder (heads.csv, summary.json, and spectra.jsonl if present)."""
        import pandas as pd

        out = Path(out_dir)
        result = cls(out_dir=out, summary=json.loads((out / "summary.json").read_text()))
        result.heads = pd.read_csv(out / "heads.csv")
        spectra_file = out / "spectra.jsonl"
        if spectra_file.exists():
            with spectra_file.open() as f:
                for line in f:
                    row = json.loads(line)
                    result.spectra[(row["window"], row["layer"], row["head"])] = {
                        "field": np.asarray(row["field"]),
                        "weights": np.asarray(row["weights"]),
                    }
        return result


def analyze(
    model: PathLike,
    text: Optional[PathLike] = None,
    token_ids: Optional[Union[PathLike, Sequence[int]]] = None,
    ctx: int = 1024,
    out: Optional[PathLike] = None,
    max_windows: int = 0,
    save_spectra: bool = True,
    threads: int = 0,
    tokenizer: Optional[PathLike] = None,
    strip_gutenberg: Optional[bool] = None,
    allow_long_context: bool = False,
    quiet: bool = True,
    resume: bool = False,
) -> AnalysisResult:
    """Runs ``attnspec analyze`` in-process and returns its results.

    ``model`` is a Hugging Face checkpoint folder; give ``text`` (a UTF-8 file) or ``token_ids``
    (a file, or a sequence of ints used as given). Results are written to ``out`` (a temporary
    folder when omitted) exactly as the CLI writes them, and loaded from there. ``resume=True``
    continues a run that was interrupted in ``out``. Bad input raises :class:`InputError`.
    """
    if (text is None) == (token_ids is None):
        raise ValueError("give exactly one of text= and token_ids=")
    out_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="attnspec-"))
    ids_file = None
    if token_ids is not None and not isinstance(token_ids, (str, os.PathLike)):
        ids_file = out_dir / ".token_ids.json"
        out_dir.mkdir(parents=True, exist_ok=True)
        ids_file.write_text(json.dumps([int(t) for t in token_ids]))
        token_ids = ids_file
    strip = -1 if strip_gutenberg is None else int(bool(strip_gutenberg))
    try:
        _core.run_analyze(
            os.fspath(model),
            text=None if text is None else os.fspath(text),
            token_ids=None if token_ids is None else os.fspath(token_ids),
            ctx=int(ctx),
            out=os.fspath(out_dir),
            max_windows=int(max_windows),
            save_spectra=bool(save_spectra),
            threads=int(threads),
            tokenizer=None if tokenizer is None else os.fspath(tokenizer),
            strip_gutenberg=strip,
            allow_long_context=bool(allow_long_context),
            quiet=bool(quiet),
            resume=bool(resume),
        )
    finally:
        if ids_file is not None:
            ids_file.unlink(missing_ok=True)
    return AnalysisResult.load(out_dir)
