"""The paper-style table: per model and per (model, text, ctx), the spread of k90 and of the gaps.

Every number comes straight from the ``heads.csv`` of finished run folders (one row per window, layer
and query head); ``summary.json`` supplies the model's description (family, parameter count, d_h). Both
are read by :class:`attnspec.runfolder.RunFolder`.

    >>> import attnspec
    >>> df = attnspec.table(["runs/gpt2/book/ctx1024", "runs/llama/book/ctx1024"])  # a DataFrame
    >>> from attnspec.table import write_table
    >>> write_table(["runs"], "runs")          # table.md, table.csv, table.json

(This module is callable: ``attnspec.table(run_dirs)`` is :func:`table`.)

Statistics: min / median / max over all rows of heads.csv (every window, layer and query head), NaN
gaps (a zero field) left out. A run's row is exactly ``summary.json["aggregates"]``; a model's row
pools the rows of all its runs (every text and context length).
"""
from __future__ import annotations

import json
import math
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence, Union

from ._core import InputError
from .runfolder import HEADS, RunFolder, run_folders

if TYPE_CHECKING:
    import pandas

PathLike = Union[str, os.PathLike]

#: heads.csv column -> how the table names it
METRICS = {
    "k90_field": "k90(E~)",
    "k90_weights": "k90(W_Q^T W_K)",
    "gap_k90": "gap k90(M)/k90(E~)",
    "gap_erank": "gap erank(M)/erank(E~)",
}
#: further columns summarised in CSV / JSON / DataFrame (not in the Markdown table)
EXTRA_METRICS = ("erank_field", "erank_weights")
STATS = ("min", "median", "max")
REQUIRED_COLUMNS = ("window", "layer", "head", "kv_head", "n", "k90_field", "k90_weights", "erank_field",
                    "erank_weights")

NOTES = [
    "min / median / max over all (window, layer, query head) rows of heads.csv; NaN gaps (zero field) left out.",
    "A row per run (model, text, ctx); the model's row (text = all) pools the rows of all its runs.",
    "layers, H (query heads), G (KV heads): the head census of heads.csv itself; d_h and parameters from summary.json.",
    "E~: row-centred logit field s Q_h (K_g - mean K_g)^T (no causal mask); M = W_Q^(h)T W_K^(g) (no bias, norm, RoPE, scale).",
    "k90: smallest k whose top singular values hold 90% of sum sigma^2; gaps: k90(M)/k90(E~) and erank(M)/erank(E~) per head.",
]


@dataclass
class Run:
    """A finished ``attnspec analyze`` run folder, loaded for the table: ``dir`` is how the table names
    the folder, ``folder`` reads it."""

    dir: Path
    summary: dict
    heads: Any  # pandas.DataFrame
    model_name: str = ""
    text_name: str = ""
    folder: Optional[RunFolder] = field(default=None, repr=False)

    def __post_init__(self):
        if self.folder is None:
            self.folder = RunFolder(self.dir)

    @property
    def ctx(self) -> int:
        return int(self.summary.get("ctx", self.heads["n"].max()))

    @property
    def model(self) -> dict:
        return self.summary.get("model", {})

    @property
    def conventions(self) -> dict:
        return self.summary.get("conventions", {})

    @property
    def model_key(self) -> tuple:
        m = self.model
        return (_path_name(m.get("path", "")), m.get("family"), m.get("parameters"), m.get("layers"),
                m.get("heads"), m.get("kv_heads"), m.get("head_dim"))

    @property
    def has_spectra(self) -> bool:
        return self.folder.has_spectra

    def spectra(self) -> list:
        """The rows of spectra.jsonl (empty when the run was made without ``--save-spectra``)."""
        return self.folder.spectra_rows()


def _path_name(p: str) -> str:
    return os.path.basename(os.path.normpath(p)) if p else "model"


def input_name(summary: dict) -> str:
    """The short name of a run's input: the file name of its text or token ids, without extension."""
    inp = summary.get("input", {})
    src = inp.get("text") or inp.get("token_ids") or "input"
    return Path(src).stem or "input"


def find_runs(paths: Iterable[PathLike]) -> list[Path]:
    """Run folders in ``paths``: each path is a run folder (it holds heads.csv) or a folder with run
    folders somewhere below it (like ``attnspec reproduce``'s output). Raises :class:`InputError`
    for a path that is neither."""
    return [run.path for run in run_folders(paths)]


def load_run(d: Union[PathLike, RunFolder]) -> Run:
    """Loads heads.csv and summary.json of one run folder; :class:`InputError` when they are missing
    or unreadable."""
    folder = d if isinstance(d, RunFolder) else RunFolder(d)
    folder.require_finished()
    summary = folder.summary()
    heads = folder.heads()
    heads_file = folder.path / HEADS
    missing = [c for c in REQUIRED_COLUMNS if c not in heads.columns]
    if missing:
        raise InputError(f"{heads_file}: missing column(s) {', '.join(missing)}")
    if heads.empty:
        raise InputError(f"{heads_file}: no rows")
    for c in ("gap_k90", "gap_erank"):  # older files: derive the gaps as outputs.cpp does
        if c not in heads.columns:
            num, den = ("k90_weights", "k90_field") if c == "gap_k90" else ("erank_weights", "erank_field")
            heads[c] = (heads[num] / heads[den].where(heads[den] > 0)).astype(float)
    return Run(dir=folder.path, summary=summary, heads=heads,
               model_name=_path_name(summary.get("model", {}).get("path", "")), text_name=input_name(summary),
               folder=folder)


def load_runs(paths: Iterable[PathLike]) -> list[Run]:
    """:func:`find_runs` then :func:`load_run` for each; model names made unique (a suffix when two
    different checkpoints share a folder name)."""
    runs = [load_run(folder) for folder in run_folders(paths)]
    names: dict[str, list] = {}
    for r in runs:
        keys = names.setdefault(r.model_name, [])
        if r.model_key not in keys:
            keys.append(r.model_key)
        i = keys.index(r.model_key)
        if i:
            r.model_name = f"{r.model_name} ({i + 1})"
    return runs


def group_by_model(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs by model name, in order of first appearance."""
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(r.model_name, []).append(r)
    return out


def _stats(series) -> dict:
    v = series.astype(float)
    v = v[v.notna() & v.map(math.isfinite)]
    if v.empty:
        return {"min": math.nan, "median": math.nan, "max": math.nan}
    return {"min": float(v.min()), "median": float(v.median()), "max": float(v.max())}


def _row(runs: Sequence[Run], heads, *, scope: str, text: str, ctx: str) -> dict:
    m = runs[0].model
    row: dict[str, Any] = {
        "model": runs[0].model_name,
        "scope": scope,
        "text": text,
        "ctx": ctx,
        "family": m.get("family", ""),
        "parameters": m.get("parameters"),
        "layers": int(heads["layer"].nunique()),
        "heads": int(heads["head"].nunique()),
        "kv_heads": int(heads["kv_head"].nunique()),
        "head_dim": m.get("head_dim"),
        "windows": int(sum(r.heads["window"].nunique() for r in runs)),
        "rows": int(len(heads)),
    }
    for col in list(METRICS) + list(EXTRA_METRICS):
        for k, v in _stats(heads[col]).items():
            row[f"{col}_{k}"] = v
    row["runs"] = ";".join(str(r.dir) for r in runs)
    return row


def _ctx_sort_key(r: Run):
    return (r.text_name, r.ctx)


def build_table(run_dirs: Union[PathLike, Iterable[PathLike]], runs: Optional[Sequence[Run]] = None):
    """The table as a pandas DataFrame: a row per run (``scope == "run"``) then a row per model
    (``scope == "model"``, ``text == "all"``), models in order of first appearance.

    Columns: model, scope, text, ctx, family, parameters, layers, heads, kv_heads, head_dim, windows,
    rows, then ``<metric>_min/_median/_max`` for k90_field, k90_weights, gap_k90, gap_erank,
    erank_field, erank_weights, and runs (the run folders).
    """
    import pandas as pd

    if runs is None:
        if isinstance(run_dirs, (str, os.PathLike)):
            run_dirs = [run_dirs]
        runs = load_runs(run_dirs)
    rows = []
    for name, group in group_by_model(runs).items():
        group = sorted(group, key=_ctx_sort_key)
        for r in group:
            rows.append(_row([r], r.heads, scope="run", text=r.text_name, ctx=str(r.ctx)))
        pooled = pd.concat([r.heads for r in group], ignore_index=True)
        ctxs = sorted({r.ctx for r in group})
        rows.append(_row(group, pooled, scope="model", text="all", ctx=",".join(map(str, ctxs))))
    return pd.DataFrame(rows)


def format_parameters(n: Any) -> str:
    """292800 -> '293K', 124439808 -> '124M', 1.2e9 -> '1.24B'."""
    try:
        n = float(n)
    except (TypeError, ValueError):
        return "?"
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            v = n / div
            return f"{v:.3g}{unit}"
    return f"{n:.0f}"


def _fmt(v: float, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if digits == 0:
        return f"{v:g}" if v != int(v) else f"{int(v)}"
    return f"{v:.{digits}f}"


def triple(row: dict, col: str, digits: int) -> str:
    """'min / median / max' of one metric in a row."""
    return " / ".join(_fmt(row[f"{col}_{s}"], digits) for s in STATS)


MARKDOWN_COLUMNS = ["model", "family", "params", "layers", "H", "G", "d_h", "text", "ctx", "windows",
                    "k90(E~) min / med / max", "k90(W_Q^T W_K) min / med / max",
                    "gap k90 min / med / max", "gap erank min / med / max"]


def markdown_cells(row: dict) -> list[str]:
    """The cells of one table row as the Markdown and HTML tables show them."""
    return [
        str(row["model"]), str(row["family"]), format_parameters(row["parameters"]), str(row["layers"]),
        str(row["heads"]), str(row["kv_heads"]), str(row["head_dim"]),
        "all texts" if row["scope"] == "model" else str(row["text"]), str(row["ctx"]), str(row["windows"]),
        triple(row, "k90_field", 0), triple(row, "k90_weights", 0), triple(row, "gap_k90", 2),
        triple(row, "gap_erank", 2),
    ]


def to_markdown(df) -> str:
    """The table as GitHub Markdown, per-model rows in bold, with the notes below it."""
    esc = lambda s: s.replace("|", "\\|")
    lines = ["# attnspec: how many dimensions attention uses", "",
             "| " + " | ".join(esc(c) for c in MARKDOWN_COLUMNS) + " |",
             "|" + "|".join("---" if i < 2 or i == 7 else "--:" for i in range(len(MARKDOWN_COLUMNS))) + "|"]
    for row in df.to_dict("records"):
        cells = [esc(c) for c in markdown_cells(row)]
        if row["scope"] == "model":
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {n}" for n in NOTES]
    return "\n".join(lines) + "\n"


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):  # numpy scalars
        return _json_value(v.item())
    return v


def to_json(df, conventions: Optional[dict] = None) -> dict:
    """The table as a JSON-ready dict: rows with nested {min, median, max} per metric."""
    from . import __version__

    rows = []
    for row in df.to_dict("records"):
        out: dict[str, Any] = {}
        for k, v in row.items():
            base, _, stat = k.rpartition("_")
            if stat in STATS and base in list(METRICS) + list(EXTRA_METRICS):
                out.setdefault(base, {})[stat] = _json_value(v)
            elif k == "runs":
                out[k] = v.split(";") if v else []
            else:
                out[k] = _json_value(v)
        rows.append(out)
    return {"attnspec_version": __version__, "metrics": METRICS, "notes": NOTES,
            "conventions": conventions or {}, "rows": rows}


def table(run_dirs: Union[PathLike, Iterable[PathLike]]) -> "pandas.DataFrame":
    """The paper-style table of finished runs as a pandas DataFrame (also as ``attnspec.table(...)``).

    ``run_dirs``: run folders (each with heads.csv and summary.json), or folders with run folders below
    them (such as the output of ``attnspec reproduce``). A row per run (``scope == "run"``: model, text,
    ctx) and a row per model over all its runs (``scope == "model"``, ``text == "all"``), with family,
    parameter count, layers, query and KV heads (counted in heads.csv), d_h, and
    ``<metric>_min/_median/_max`` of k90_field, k90_weights, gap_k90, gap_erank, erank_field and
    erank_weights over all (window, layer, head) rows. :func:`write_table` writes it as Markdown, CSV
    and JSON. Raises :class:`attnspec.InputError` for a folder without finished runs.
    """
    return build_table(run_dirs)


def write_table(run_dirs: Union[PathLike, Iterable[PathLike]], out_dir: PathLike,
                runs: Optional[Sequence[Run]] = None) -> dict[str, Path]:
    """Writes ``table.md``, ``table.csv`` and ``table.json`` into ``out_dir`` (created if needed) and
    returns their paths by format. ``run_dirs``: run folders, or folders with run folders below."""
    if runs is None:
        if isinstance(run_dirs, (str, os.PathLike)):
            run_dirs = [run_dirs]
        runs = load_runs(run_dirs)
    df = build_table(None, runs=runs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "table.md", "csv": out / "table.csv", "json": out / "table.json"}
    paths["md"].write_text(to_markdown(df))
    df.to_csv(paths["csv"], index=False, float_format="%.10g")
    conventions = runs[0].conventions if runs else {}
    paths["json"].write_text(json.dumps(to_json(df, conventions), indent=2) + "\n")
    return paths


class _CallableModule(types.ModuleType):
    """Lets ``attnspec.table(run_dirs)`` call :func:`table` while ``attnspec.table`` stays this module."""

    def __call__(self, run_dirs: Union[PathLike, Iterable[PathLike]]):
        return table(run_dirs)


sys.modules[__name__].__class__ = _CallableModule
