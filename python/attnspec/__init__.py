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
from .runfolder import RunFolder

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
    "table",
    # beyond the paper (see the end of this module)
    "causal_field_spectrum",
    "causal_field_matrix",
    "energy_field_svd",
    "field_invariants",
    "compression_curve",
    "data_spectrum",
    "plan",
    "PlanResult",
    "compress",
    "CompressResult",
    "aggregate",
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
    # With analyze(field="causal"/"both", data_side=True): spectra entries also hold "causal",
    # "keys", "queries", "queries_centred"; layers is layers.csv (data side), head_summary is
    # head_summary.csv (k90 spread over windows per head).
    layers: Any = None
    head_summary: Any = None

    @classmethod
    def load(cls, out_dir: PathLike) -> "AnalysisResult":
        """Loads a finished run folder (heads.csv, summary.json, and spectra.jsonl, layers.csv,
        head_summary.csv if present); :class:`InputError` when it is not one."""
        run = RunFolder(out_dir)
        run.require_finished()
        return cls(out_dir=run.path, summary=run.summary(), heads=run.heads(), spectra=run.spectra(),
                   layers=run.layers(), head_summary=run.head_summary())

    def report(self, path: Optional[PathLike] = None) -> Path:
        """Writes the HTML report of this run (figures embedded; each figure also as PNG and SVG in
        ``figures/``; the table as ``table.md/.csv/.json``) into the folder ``path`` (default
        ``<out_dir>/report``) and returns the path of ``report.html``. Needs matplotlib.
        See :mod:`attnspec.report`."""
        from .report import write_report

        return write_report([self.out_dir], path)


def resolve_model(model: PathLike) -> Path:
    """A checkpoint folder for ``model``: a path as given, or a Hugging Face hub id (``"gpt2"``,
    ``"org/name"``) from the local hub cache, downloaded from the hub when it is not cached and the
    machine is online (``HF_HUB_OFFLINE`` unset). Raises :class:`InputError` with the way to get the
    files otherwise. (The same resolver as the command line's ``--model``.)"""
    return Path(_core.resolve_model(os.fspath(model)))


# analyze() and plan() take the options of the command line's `attnspec analyze` / `attnspec plan`,
# with the same names (underscores for dashes), defaults and checks: all from the one option table
# of the C++ core (_core.options()). Python's own: token_ids may be a list of ints, out defaults to
# a temporary folder, strip_gutenberg also takes None/True/False, and results are read back.
_OPTIONS = _core.options()
_ANALYZE_DEFAULTS = {o["keyword"]: o["default"] for o in _OPTIONS if "analyze" in o["commands"]}


def _run_in_process(command: str, model: PathLike, out: Optional[PathLike], options: dict) -> Path:
    out_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f"attnspec-{command}-"))
    token_ids = options.get("token_ids")
    ids_file = None
    if token_ids is not None and not isinstance(token_ids, (str, os.PathLike)):
        out_dir.mkdir(parents=True, exist_ok=True)
        ids_file = out_dir / ".token_ids.json"
        ids_file.write_text(json.dumps([int(t) for t in token_ids]))
        options["token_ids"] = ids_file
    run = {"analyze": _core.run_analyze, "plan": _core.run_plan, "compress": _core.run_compress}[command]
    try:
        run(model=os.fspath(model), out=os.fspath(out_dir), **options)
    finally:
        if ids_file is not None:
            ids_file.unlink(missing_ok=True)
    return out_dir


def _with_table_signature(command: str):
    """Gives the decorated ``f(model, out=None, **options)`` the table's keywords as its signature
    and their help as its docstring's option list; unknown keywords fail in the core (TypeError)."""
    import inspect

    def decorate(f):
        params = [inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        lines = []
        for o in _OPTIONS:
            if command not in o["commands"] or o["keyword"] == "model":
                continue
            default = None if o["keyword"] == "out" else o["default"]
            kind = (inspect.Parameter.POSITIONAL_OR_KEYWORD if o["keyword"] in ("text", "token_ids")
                    else inspect.Parameter.KEYWORD_ONLY)
            params.append(inspect.Parameter(o["keyword"], kind, default=default))
            choices = f" ({', '.join(o['choices'])})" if o["choices"] else ""
            lines.append(f"    ``{o['keyword']}={default!r}``: {o['help']}{choices}")
        f.__signature__ = inspect.Signature(params)
        f.__doc__ = (f.__doc__ or "") + "\n    Options (``attnspec " + command + " --help``):\n\n" + "\n".join(lines) + "\n"
        return f

    return decorate


@_with_table_signature("analyze")
def analyze(model: PathLike, text: Optional[PathLike] = None, token_ids=None, *, out: Optional[PathLike] = None,
            **options) -> AnalysisResult:
    """Runs ``attnspec analyze`` in-process and returns its results.

    ``model`` is a checkpoint folder, a .gguf or llama2.c file, or a hub id; give ``text`` (a UTF-8
    file) or ``token_ids`` (a file, or a sequence of ints used as given). Results are written to
    ``out`` (a temporary folder when omitted) exactly as the CLI writes them, and loaded from there.
    ``resume=True`` continues a run that was interrupted in ``out``. Bad input raises
    :class:`InputError`.

    Beyond the paper: ``field="causal"`` or ``"both"`` adds the causal energy field's ``*_causal``
    columns (the fixed ``*_field`` columns stay the unmasked field), ``data_side=True`` the spectra
    of Xc (``layers``), Q, Qc and Kc, ``invariants=True`` the invariants of arXiv 2605.02907. See
    the README.
    """
    if options.get("engine", "native") not in ("native", None):
        return _analyze_with_engine(model, text, token_ids, out, options)
    return AnalysisResult.load(_run_in_process("analyze", model, out, dict(options, text=text, token_ids=token_ids)))


def _analyze_with_engine(model, text, token_ids, out, options: dict) -> AnalysisResult:
    """``engine="torch"``: the checkpoint loaded by transformers and measured by :mod:`attnspec.torch`."""
    engine = options.pop("engine")
    if engine != "torch":
        raise InputError(f"--engine: one of native, torch (got '{engine}')")
    unsupported = [k for k in ("data_side", "invariants", "resume") if options.get(k)]
    if unsupported:
        raise InputError(f"--engine torch does not compute {', '.join('--' + k.replace('_', '-') for k in unsupported)} "
                         "yet; use engine='native' for it")
    for k in ("data_side", "invariants", "resume"):
        options.pop(k, None)
    from .torch import analyze_checkpoint

    kept = {k: v for k, v in options.items() if v is not None}
    return analyze_checkpoint(model, text, token_ids, out=out, **kept)


# ``attnspec.table(run_dirs)`` -> pandas DataFrame of the paper-style table. The module
# attnspec.table is itself callable (it calls attnspec.table.table), so that both
# ``attnspec.table(...)`` and ``from attnspec.table import write_table`` work.
from . import table  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Beyond the paper: the causal field, the invariants, the data side, a compression plan per head
# (README, "Beyond the paper"). Array-level functions take one head's Q and K as [n, d_h] arrays
# (any float dtype; computed in float64) and the model's softmax scale (default 1/sqrt(d_h)).
# ---------------------------------------------------------------------------------------------


def causal_field_spectrum(
    Q: np.ndarray,
    K: np.ndarray,
    scale: Optional[float] = None,
    k: Optional[int] = None,
    window: Optional[int] = None,
    method: str = "auto",
    dense_max: int = _ANALYZE_DEFAULTS["causal_dense_max"],
    max_values: int = _ANALYZE_DEFAULTS["causal_max_values"],
) -> dict:
    """Singular values of the causal energy field ``E~c``.

    Row ``i`` keeps the keys its softmax sees, ``j <= i`` (and ``i - j < window`` for a sliding
    window), centred over them; other entries are 0. ``method="auto"`` takes a dense LAPACK SVD
    of the materialised ``n x n`` matrix when ``n <= dense_max`` and Golub-Kahan-Lanczos with
    ``O(n d_h)`` matrix-free products beyond; ``k`` asks for the leading ``k`` values only.

    Returns a dict: ``sigma`` (descending), ``method``, ``complete`` (every value computed),
    ``krylov_dim``, ``variance`` (``||E~c||_F^2``, exact), ``unexplained`` (rigorous bound on
    the variance share the values miss), ``residual`` (largest Ritz residual up to k99 over
    sigma_1), ``k_tau`` / ``k_tau_lower`` (dicts ``k50..k99``: the reported value, an upper
    bound for Lanczos, and a rigorous lower bound; ``None`` when not reached), ``k_tau_exact``,
    ``numerical_rank``, ``erank``, ``participation_ratio`` (NaN unless complete), ``stable_rank``.
    """
    return _core.causal_field_spectrum(Q, K, scale, k, window, method, int(dense_max), int(max_values))


def causal_field_matrix(
    Q: np.ndarray, K: np.ndarray, scale: Optional[float] = None, window: Optional[int] = None
) -> np.ndarray:
    """The causal energy field ``E~c`` materialised as an ``[n, n]`` float64 array (for checks)."""
    return _core.causal_field_matrix(Q, K, scale, window)


def energy_field_svd(Q: np.ndarray, K: np.ndarray, scale: Optional[float] = None):
    """``(left [n, r], sigma [r], right [n, r])`` with ``E~ = left @ diag(sigma) @ right.T``,
    orthonormal columns, ``r = min(n, d_h)``: the exact QR reduction with singular vectors."""
    return _core.energy_field_svd(Q, K, scale)


def field_invariants(Q: np.ndarray, K: np.ndarray, scale: Optional[float] = None) -> dict:
    """The invariants of arXiv 2605.02907 for one head and window, without building ``E~``.

    ``row_sum_residual`` (max_i |sum_j E~_ij| / max|E~|), ``max_abs``, ``rank`` (numerical rank
    of ``E~``: ``sigma_i > n * 2^-23 * sigma_1``) and ``rank_tolerance``; column energies
    ``c_j = sum_i E~_ij^2``: ``col_participation`` ((sum c)^2 / sum c^2, in [1, n]),
    ``col_top1pct_share`` (share of the ceil(n/100) largest), ``col_top_position``; key
    incoherence: ``key_coherence`` (max leverage * n / rank(Kc)), ``key_coherence_position``,
    ``key_rank``, ``key_leverage`` (all n leverage scores of range(Kc)).
    """
    return _core.field_invariants(Q, K, scale)


def compression_curve(
    Q: np.ndarray,
    K: np.ndarray,
    scale: Optional[float] = None,
    window: Optional[int] = None,
    ranks: Union[None, str, Sequence[int]] = None,
    causal: bool = True,
) -> dict:
    """Attention under rank-k truncation of ``E~``: for each rank ``k`` (``"all"`` = 0..min(n, d_h),
    ``"geometric"``, or a list), the mean over query rows of the total-variation distance and of
    ``KL(P || P_k)`` between the model's causal (``window``: sliding) softmax attention ``P`` and
    the softmax of the best rank-k approximation of ``E~``. ``k = 0`` is uniform attention.
    ``causal=False`` (an encoder such as BERT): every row's softmax runs over all n keys.
    Returns ``{"k", "tv", "kl", "sigma"}`` (arrays)."""
    return _core.compression_curve(Q, K, scale, window,
                                   ranks if ranks is None or isinstance(ranks, str) else list(ranks), causal)


def data_spectrum(X: np.ndarray, centre: bool = True) -> np.ndarray:
    """Singular values of ``X`` ([n, d]) after subtracting its mean row (``centre=True``): the
    generated component ``Xc`` when ``X`` is a layer's normalised attention input."""
    return _core.data_spectrum(X, centre)


@dataclass
class PlanResult:
    """The files of an ``attnspec plan`` run, loaded."""

    out_dir: Path
    summary: dict  # plan.json
    plan: Any = None  # pandas.DataFrame: plan.csv (one row per tolerance and head)
    curves: Any = None  # pandas.DataFrame: plan_curves.csv (one row per window, head and rank)

    @classmethod
    def load(cls, out_dir: PathLike) -> "PlanResult":
        """Loads a finished plan folder; :class:`InputError` when it is not one."""
        run = RunFolder(out_dir)
        return cls(out_dir=run.path, summary=run.plan_summary(), plan=run.plan(), curves=run.plan_curves())


@_with_table_signature("plan")
def plan(model: PathLike, text: Optional[PathLike] = None, token_ids=None, *, out: Optional[PathLike] = None,
         **options) -> PlanResult:
    """Runs ``attnspec plan`` in-process: per head, the smallest rank ``k`` of ``E~`` whose
    softmax attention stays within mean total variation ``EPS`` of the model's (worst window),
    for each tolerance, and the TV/KL curves over ``k``. Inputs as for :func:`analyze`."""
    return PlanResult.load(_run_in_process("plan", model, out, dict(options, text=text, token_ids=token_ids)))


@dataclass
class CompressResult:
    """The files of an ``attnspec compress`` run, loaded."""

    out_dir: Path
    summary: dict  # compress.json
    curves: Any = None  # pandas.DataFrame: compress_curves.csv (one row per method, policy and budget)
    heads: Any = None  # pandas.DataFrame: compress_heads.csv (one row per configuration, layer and KV head)
    projections: Optional[Path] = None  # projections.safetensors (attnspec.projections applies it in transformers)

    @classmethod
    def load(cls, out_dir: PathLike) -> "CompressResult":
        """Loads a finished compress folder; :class:`InputError` when it is not one."""
        run = RunFolder(out_dir)
        return cls(out_dir=run.path, summary=run.compress_summary(), curves=run.compress_curves(),
                   heads=run.compress_heads(), projections=run.path / "projections.safetensors")


@_with_table_signature("compress")
def compress(model: PathLike, *, out: Optional[PathLike] = None, **options) -> CompressResult:
    """Runs ``attnspec compress`` in-process: per layer and KV head, rank-k query/key maps fitted on
    the ``calibrate`` texts (methods pca, field, weights; ranks uniform or shared by field energy,
    per budget), judged on the disjoint ``evaluate`` texts by the model's own next-token
    distribution (perplexity, KL per token, top-1 agreement) and attention TV. See the README."""
    return CompressResult.load(_run_in_process("compress", model, out, dict(options)))


def aggregate(run_dirs: Sequence[Union[PathLike, AnalysisResult]]):
    """The spread of each head's k90 over the windows of several runs (e.g. several texts).

    Reads ``heads.csv`` of every run (all must come from the same model) and returns a pandas
    DataFrame with one row per (layer, head): ``runs``, ``windows``, ``k90_weights`` and, for
    ``k90_field`` (and ``k90_causal`` when every run has it), ``_median``, ``_q25``, ``_q75``,
    ``_iqr``, ``_min``, ``_max`` over all windows of all runs -- the columns of head_summary.csv,
    whose quantiles (linear interpolation) it reproduces for a single run.
    """
    import pandas as pd

    frames = []
    for i, run in enumerate(run_dirs):
        df = RunFolder(run.out_dir if isinstance(run, AnalysisResult) else run).heads()
        df["run"] = i
        frames.append(df)
    if not frames:
        raise ValueError("aggregate needs at least one run folder")
    metrics = ["k90_field"] + (["k90_causal"] if all("k90_causal" in f for f in frames) else [])
    heads = pd.concat(frames, ignore_index=True)
    rows = []
    for (layer, head), g in heads.groupby(["layer", "head"], sort=True):
        row = {
            "layer": int(layer),
            "head": int(head),
            "kv_head": int(g["kv_head"].iloc[0]),
            "runs": int(g["run"].nunique()),
            "windows": int(len(g)),
            "k90_weights": g["k90_weights"].iloc[0],
        }
        for m in metrics:
            v = g[m].dropna().astype(float)
            q25, q75 = (v.quantile(0.25), v.quantile(0.75)) if len(v) else (np.nan, np.nan)
            row.update({
                f"{m}_median": v.median() if len(v) else np.nan,
                f"{m}_q25": q25,
                f"{m}_q75": q75,
                f"{m}_iqr": q75 - q25,
                f"{m}_min": v.min() if len(v) else np.nan,
                f"{m}_max": v.max() if len(v) else np.nan,
            })
        rows.append(row)
    return pd.DataFrame(rows)
