"""``attnspec report``: one self-contained HTML file with the figures and the table of run folders.

    attnspec report RUN_DIR [RUN_DIR ...] [--out DIR] [--title TEXT] [--quiet]

A RUN_DIR is an ``attnspec analyze`` output folder (heads.csv, summary.json, optionally
spectra.jsonl), an ``attnspec compress`` output folder (compress.json, compress_curves.csv), or a
folder with such folders below it (``attnspec reproduce``'s DIR). Writes into DIR (default:
``<RUN_DIR>/report``, or ``<common parent>/report`` for several):

- ``report.html``: everything in one file (images as base64 PNG; no network, no external CSS/JS);
- ``figures/<name>.png`` and ``figures/<name>.svg`` for every figure;
- ``table.md``, ``table.csv``, ``table.json`` (see :mod:`attnspec.table`) when there are analyze runs.

The figures: (a) the cumulative variance c_k of E~ and W_Q^T W_K (median and interquartile band over
heads, a panel per model; from spectra.jsonl, or the k_tau columns of heads.csv where a run has none),
(b) heat maps of k90(E~), k90(W_Q^T W_K) and their ratio over layer x head, (c) histograms of k90,
(d) k90(E~) by layer. Every figure carries the run's conventions in a footnote. For compress folders,
a section "Key-cache saving against quality": a figure per folder (mean KL per token on a log scale, and
the perplexity change, against the share of the key cache saved; a line per method and rank policy, a
marker per budget) and a table of its compress_curves.csv.

Also ``python -m attnspec.report ...``. Exit status 0, or 2 for bad input (one line on stderr).
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import os
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from .table import (NOTES, Run, build_table, format_parameters, group_by_model, load_runs,
                    markdown_cells, write_table)

PathLike = Union[str, os.PathLike]
from ._cli import Parser, run_command
from ._core import InputError
from .runfolder import COMPRESS_CURVES, COMPRESS_SUMMARY, RunFolder
from .table import _path_name

PROG = "attnspec report"

# One look for every figure: E~ in blue, W_Q^T W_K in red, throughout.
FIELD_COLOR = "#1f5fa8"
WEIGHTS_COLOR = "#c8443a"
FIELD_TEX = r"$\tilde{E}$"
WEIGHTS_TEX = r"$W_Q^{\top}W_K$"
K90_FIELD_TEX = r"$k_{90}(\tilde{E})$"
K90_WEIGHTS_TEX = r"$k_{90}(W_Q^{\top}W_K)$"
DPI = 150
RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.labelsize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "svg.fonttype": "path",  # self-contained SVG
    "svg.hashsalt": "attnspec",  # reproducible SVG ids
    "image.interpolation": "nearest",
}


# ------------------------------------------------------------------------------------------------
# Data per model
# ------------------------------------------------------------------------------------------------


@dataclass
class ModelData:
    name: str
    runs: list
    heads: object  # pandas DataFrame: the rows of all runs, with run, text and ctx columns
    family: str = ""
    parameters: object = None
    layers: int = 0
    n_heads: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    field_ck: dict = field(default_factory=dict)  # ctx -> [rows, d_h] cumulative variance of E~
    weights_ck: Optional[np.ndarray] = None  # [layer*head, d_h] of W_Q^T W_K
    runs_without_spectra: list = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.name.replace("$", r"\$")  # a file name is no mathtext

    @property
    def shape_line(self) -> str:
        return (f"{self.family}, {format_parameters(self.parameters)} params, {self.layers} layers, "
                f"H={self.n_heads}, G={self.kv_heads}, " + r"$d_h$" + f"={self.head_dim}")

    @property
    def runs_line(self) -> str:
        parts = [f"{r.text_name} @ ctx {r.ctx} ({r.heads['window'].nunique()} windows)" for r in self.runs]
        return "; ".join(parts)


def cumulative_variance(sigmas: Sequence[Sequence[float]], width: int) -> np.ndarray:
    """c_k for k = 1..width of each spectrum (rows), padded with 1 beyond its length; rows whose
    spectrum is all zero are dropped."""
    out = np.ones((len(sigmas), width))
    keep = np.ones(len(sigmas), dtype=bool)
    for i, s in enumerate(sigmas):
        s2 = np.asarray(s, dtype=float)[:width] ** 2
        total = s2.sum()
        if not total > 0:
            keep[i] = False
            continue
        out[i, : len(s2)] = np.minimum(np.cumsum(s2) / total, 1.0)
    return out[keep]


def model_data(runs: Sequence[Run]) -> list[ModelData]:
    import pandas as pd

    models = []
    for name, group in group_by_model(runs).items():
        frames = []
        for i, r in enumerate(group):
            h = r.heads.copy()
            h["run"], h["text"], h["ctx"] = i, r.text_name, r.ctx
            frames.append(h)
        heads = pd.concat(frames, ignore_index=True)
        m = group[0].model
        md = ModelData(name=name, runs=list(group), heads=heads, family=m.get("family", ""),
                       parameters=m.get("parameters"), layers=int(heads["layer"].nunique()),
                       n_heads=int(heads["head"].nunique()), kv_heads=int(heads["kv_head"].nunique()),
                       head_dim=int(m.get("head_dim") or 0))
        if not md.head_dim:
            md.head_dim = int(max(heads["k90_weights"].max(), heads["k90_field"].max()))
        by_ctx: dict = {}
        weights_seen: dict = {}
        for r in group:
            if not r.has_spectra:
                md.runs_without_spectra.append(r)
                continue
            rows = r.spectra()
            by_ctx.setdefault(r.ctx, []).extend(row["field"] for row in rows)
            for row in rows:
                weights_seen.setdefault((row["layer"], row["head"]), row["weights"])
        for ctx in sorted(by_ctx):
            md.field_ck[ctx] = cumulative_variance(by_ctx[ctx], md.head_dim)
        if weights_seen:
            md.weights_ck = cumulative_variance([weights_seen[k] for k in sorted(weights_seen)], md.head_dim)
        models.append(md)
    return models


# ------------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------------


def shorten_conventions(conv: dict, keys: Iterable[str]) -> list[str]:
    """The first clause (up to ';') of each named convention: a footnote-sized version."""
    names = {"field": "Ẽ", "weights": "M", "k_tau": "k_τ", "gap_k90": "gap k90", "gap_erank": "gap erank",
             "kv_head": "KV head", "erank": "erank", "windows": "windows"}
    out = []
    for k in keys:
        v = conv.get(k)
        if not v:
            continue
        v = v.split(";")[0].strip()
        v = _unicode(v)
        label = names.get(k, k)
        if not v.startswith(label.split()[0]):
            v = f"{label}: {v}"
        out.append(v)
    return out


def _unicode(v: str) -> str:
    """ASCII notation of summary.json as typeset text."""
    for a, b in (("E~", "Ẽ"), ("sum_{i<=k}", "Σ_{i≤k}"), ("sum_i", "Σ_i"), ("sum_j", "Σ_j"), ("sigma_i^2", "σ_i²"),
                 ("sigma_i^4", "σ_i⁴"), ("sigma_1^2", "σ_1²"), ("sigma", "σ"), (">=", "≥"), ("<=", "≤"),
                 ("tau", "τ"), (" * ", "·"), ("W_Q^(h)T", "W_Q^(h)ᵀ"), ("W_Q^T W_K", "W_QᵀW_K"), ("Q_h (K_g", "Q_h(K_g"),
                 (")^T", ")ᵀ"), ("d_h x d", "d_h×d")):
        v = v.replace(a, b)
    return v


class Caption:
    """A figure footnote: what is shown plus the run's conventions, wrapped to the figure width."""

    def __init__(self, what: str, conventions: dict, keys: Sequence[str], runs: str = ""):
        parts = [_unicode(what)] + shorten_conventions(conventions, keys)
        if runs:
            parts.append(f"Runs: {runs}")
        self.text = " · ".join(p.rstrip(".") for p in parts if p) + "."

    def lines(self, width_in: float, fontsize: float = 7.0) -> list[str]:
        chars = max(40, int(width_in * 72 / (fontsize * 0.56)))
        return textwrap.wrap(self.text, chars)


def new_figure(width: float, height: float, caption: Caption):
    """A Figure (Agg, no pyplot state) with room for the caption below a constrained layout."""
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    fontsize = 7.0
    lines = caption.lines(width, fontsize)
    cap_h = (len(lines) * fontsize * 1.3 + 10) / 72
    fig = Figure(figsize=(width, height + cap_h), dpi=DPI)
    bottom = cap_h / (height + cap_h)
    fig.set_layout_engine(ConstrainedLayoutEngine(rect=(0, bottom, 1, 1 - bottom), h_pad=0.06, w_pad=0.06))
    fig.text(0.012, 4 / 72 / (height + cap_h), "\n".join(lines), ha="left", va="bottom", fontsize=fontsize,
             color="#555555", linespacing=1.3, parse_math=False)
    return fig


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return int(math.ceil(n / cols)), cols


def _panels(fig, n: int, **kw):
    rows, cols = _grid(n)
    axes = fig.subplots(rows, cols, squeeze=False, **kw).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def _model_title(ax, md: ModelData) -> None:
    """The model's name in bold with its shape in small grey type between it and the axes."""
    ax.set_title(md.title, loc="left", pad=15)
    ax.annotate(md.shape_line, xy=(0, 1), xycoords="axes fraction", xytext=(0, 4), textcoords="offset points",
                fontsize=7.5, color="#555555", va="bottom", ha="left")


def _quantile_band(ck: np.ndarray):
    return (np.median(ck, axis=0), np.quantile(ck, 0.25, axis=0), np.quantile(ck, 0.75, axis=0))


def fig_cumulative_variance(models: Sequence[ModelData], conv: dict):
    from matplotlib import colormaps

    panels = [m for m in models]
    rows, cols = _grid(len(panels))
    what = ("Cumulative variance c_k = Σ_{i≤k} σ_i² / Σ_i σ_i² against the number of singular components k. "
            "Line: median over heads; band: interquartile range (25–75%); Ẽ over every (window, layer, query head), "
            "W_Q^T W_K over every (layer, query head); dashed: 90%, which defines k90")
    if any(m.runs_without_spectra for m in models):
        what += (". Runs without spectra.jsonl: k_τ (τ = 0.5, 0.8, 0.9, 0.95, 0.99) from heads.csv as points, "
                 "median with interquartile bars")
    cap = Caption(what, conv, ["field", "weights", "k_tau"])
    fig = new_figure(4.4 * cols, 3.5 * rows, cap)
    axes = _panels(fig, len(panels))
    blues = colormaps["Blues"]
    for ax, md in zip(axes, panels):
        k = np.arange(1, md.head_dim + 1)
        ctxs = sorted(md.field_ck)
        marker = "o" if md.head_dim <= 32 else None
        for j, ctx in enumerate(ctxs):
            ck = md.field_ck[ctx]
            med, lo, hi = _quantile_band(ck)
            color = FIELD_COLOR if len(ctxs) == 1 else blues(0.45 + 0.55 * (j + 1) / len(ctxs))
            label = f"{FIELD_TEX}, ctx {ctx} ({len(ck)} head-windows)"
            ax.fill_between(k, lo, hi, color=color, alpha=0.18, linewidth=0, step=None)
            ax.plot(k, med, color=color, lw=1.8, marker=marker, ms=3.5, label=label)
        if md.weights_ck is not None and len(md.weights_ck):
            med, lo, hi = _quantile_band(md.weights_ck)
            ax.fill_between(k, lo, hi, color=WEIGHTS_COLOR, alpha=0.18, linewidth=0)
            ax.plot(k, med, color=WEIGHTS_COLOR, lw=1.8, marker="s" if marker else None, ms=3.2,
                    label=f"{WEIGHTS_TEX} ({len(md.weights_ck)} heads)")
        if md.runs_without_spectra:
            _ck_from_heads(ax, md, only_fallback=bool(ctxs))
        ax.axhline(0.9, color="#444444", lw=0.9, ls="--", zorder=1)
        ax.text(md.head_dim, 0.9, "90%", ha="right", va="bottom", fontsize=7.5, color="#444444")
        ax.set_xlim(0.5, md.head_dim + 0.5)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("singular components k")
        ax.set_ylabel(r"cumulative variance $c_k$")
        if md.head_dim <= 16:
            ax.set_xticks(k)
        _model_title(ax, md)
        ax.legend(loc="lower right")
    return fig, cap


TAUS = (("k50", 0.5), ("k80", 0.8), ("k90", 0.9), ("k95", 0.95), ("k99", 0.99))


def _ck_from_heads(ax, md: ModelData, only_fallback: bool) -> None:
    """Without singular values: the k_tau columns of heads.csv are points (k_tau, tau) of the curve."""
    import pandas as pd

    heads = pd.concat([r.heads for r in md.runs_without_spectra], ignore_index=True)
    weights = heads.drop_duplicates(["layer", "head"])
    for frame, which, color, mk, label in ((heads, "field", FIELD_COLOR, "o", FIELD_TEX),
                                           (weights, "weights", WEIGHTS_COLOR, "s", WEIGHTS_TEX)):
        pts = []
        for col, tau in TAUS:
            c = f"{col}_{which}"
            if c in frame.columns:
                v = frame[c].astype(float)
                pts.append((tau, v.median(), v.quantile(0.25), v.quantile(0.75)))
        if not pts:
            continue
        tau, med, lo, hi = map(np.array, zip(*pts))
        ax.errorbar(med, tau, xerr=[med - lo, hi - med], color=color, marker=mk, ms=4, lw=1, ls=":", capsize=2,
                    mfc="white", label=f"{label}, k_τ from heads.csv" + (" (runs without spectra)" if only_fallback else ""))


def fig_heatmaps(md: ModelData, conv: dict):
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm, Normalize

    h = md.heads
    med = h.groupby(["layer", "head"]).agg(kf=("k90_field", "median"), kw=("k90_weights", "median"),
                                           gap=("gap_k90", "median"))
    layers = sorted(h["layer"].unique())
    heads = sorted(h["head"].unique())

    def grid(col):
        a = np.full((len(layers), len(heads)), np.nan)
        li = {l: i for i, l in enumerate(layers)}
        hi = {x: i for i, x in enumerate(heads)}
        for (l, x), v in med[col].items():
            a[li[l], hi[x]] = v
        return a

    kf, kw, gap = grid("kf"), grid("kw"), grid("gap")
    nwin = int(h.groupby("run")["window"].nunique().sum())
    cap = Caption(f"Per (layer, query head): median over {nwin} windows of k90(Ẽ), of k90(W_Q^T W_K) (the same in "
                  "every window), and of the per-window ratio k90(W_Q^T W_K) / k90(Ẽ) (gap; log colour scale, 1 = "
                  "white)", conv, ["field", "weights", "k_tau", "kv_head"], runs=md.runs_line)
    cell = 0.34 if len(heads) <= 16 else 0.2
    panel_w = max(2.6, min(5.0, cell * len(heads) + 0.8))
    panel_h = max(1.6, min(6.5, cell * len(layers) + 0.9))
    fig = new_figure(3 * panel_w + 1.2, panel_h + 0.55, cap)
    axes = fig.subplots(1, 3)
    kmax = max(np.nanmax(kf), np.nanmax(kw), 2)
    knorm = Normalize(vmin=1, vmax=max(kmax, md.head_dim if md.head_dim <= 2 * kmax else kmax))
    kcmap = colormaps["viridis"]
    finite = gap[np.isfinite(gap) & (gap > 0)]
    span = max(float(np.max(finite)) if finite.size else 2.0, 1.0 / float(np.min(finite)) if finite.size else 2.0, 1.25)
    gnorm = LogNorm(vmin=1 / span, vmax=span)
    gcmap = colormaps["RdBu_r"]
    annotate = len(layers) * len(heads) <= 256
    for ax, data, norm, cmap, title in ((axes[0], kf, knorm, kcmap, K90_FIELD_TEX),
                                        (axes[1], kw, knorm, kcmap, K90_WEIGHTS_TEX),
                                        (axes[2], gap, gnorm, gcmap, r"gap $k_{90}(W_Q^{\top}W_K)\,/\,k_{90}(\tilde{E})$")):
        im = ax.imshow(data, norm=norm, cmap=cmap, aspect="auto", origin="upper")
        ax.set_title(title, fontweight="bold")
        ax.set_xlabel("query head")
        ax.set_ylabel("layer")
        ax.grid(False)
        ax.set_xticks(range(len(heads)) if len(heads) <= 16 else range(0, len(heads), max(1, len(heads) // 8)))
        ax.set_xticklabels([str(heads[i]) for i in ax.get_xticks().astype(int)])
        ax.set_yticks(range(len(layers)) if len(layers) <= 16 else range(0, len(layers), max(1, len(layers) // 8)))
        ax.set_yticklabels([str(layers[i]) for i in ax.get_yticks().astype(int)])
        for s in ax.spines.values():
            s.set_visible(False)
        if annotate:
            for i in range(data.shape[0]):
                for j in range(data.shape[1]):
                    v = data[i, j]
                    if not np.isfinite(v):
                        continue
                    r, g, b, _ = cmap(norm(v))
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.55
                    txt = f"{v:.1f}" if ax is axes[2] else (f"{v:g}" if v == int(v) else f"{v:.1f}")
                    ax.text(j, i, txt, ha="center", va="center", fontsize=6.5 if len(heads) <= 12 else 5.5,
                            color="white" if dark else "#222222")
        if ax is axes[1]:
            cb = fig.colorbar(im, ax=axes[:2], shrink=0.95, pad=0.02)
            cb.set_label(r"$k_{90}$ (components)")
        elif ax is axes[2]:
            cb = fig.colorbar(im, ax=axes[2], shrink=0.95, pad=0.02)
            cb.set_label("gap (ratio)")
            ticks = [t for t in (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 0.4, 0.5, 2 / 3, 0.8, 1, 1.25, 1.5,
                                 2, 2.5, 3, 4, 6, 8, 16, 32, 64) if 1 / span <= t <= span]
            while len(ticks) > 7:  # keep 1 in the middle, thin out symmetrically
                ticks = ticks[::2] if 1 in ticks[::2] else ticks[1::2]
            cb.set_ticks(ticks)
            cb.set_ticklabels([f"{t:.2g}" for t in ticks])
            cb.minorticks_off()
    fig.suptitle(f"{md.title} — {md.shape_line}", fontsize=10.5, fontweight="bold", x=0.01, ha="left")
    return fig, cap


def fig_histograms(models: Sequence[ModelData], conv: dict):
    rows, cols = _grid(len(models))
    cap = Caption("Distribution of k90: Ẽ over every (window, layer, query head), W_Q^T W_K over every (layer, query "
                  "head), each as a share of its own count; dashed lines: medians", conv, ["field", "weights", "k_tau"])
    fig = new_figure(4.4 * cols, 3.2 * rows, cap)
    axes = _panels(fig, len(models))
    for ax, md in zip(axes, models):
        h = md.heads
        wf = h["k90_field"].astype(float).to_numpy()
        ww = h.drop_duplicates(["layer", "head"])["k90_weights"].astype(float).to_numpy()
        hi = int(max(wf.max(), ww.max()))
        bins = np.arange(0.5, hi + 1.5, 1.0) if hi <= 64 else np.linspace(0.5, hi + 0.5, 65)
        for data, color, label in ((wf, FIELD_COLOR, f"{K90_FIELD_TEX} ({len(wf)} head-windows)"),
                                   (ww, WEIGHTS_COLOR, f"{K90_WEIGHTS_TEX} ({len(ww)} heads)")):
            weights = np.full(len(data), 1.0 / len(data))
            ax.hist(data, bins=bins, weights=weights, color=color, alpha=0.35, edgecolor="none")
            ax.hist(data, bins=bins, weights=weights, histtype="step", color=color, lw=1.4, label=label)
            ax.axvline(np.median(data), color=color, lw=1.1, ls="--")
        ax.set_xlabel(r"$k_{90}$ (singular components)")
        ax.set_ylabel("share of heads")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.3)
        ax.set_xlim(0.5, max(hi, 2) + 0.5)
        if hi <= 16:
            ax.set_xticks(range(1, hi + 1))
        _model_title(ax, md)
        ax.legend(loc="upper right")
    return fig, cap


def fig_by_layer(models: Sequence[ModelData], conv: dict):
    rows, cols = _grid(len(models))
    cap = Caption("k90 by layer. Ẽ: median (dot) over every (window, query head) of the layer, thick bar the "
                  "interquartile range, thin bar min–max. W_Q^T W_K (offset to the right): the same over the layer's "
                  "query heads", conv, ["field", "weights", "k_tau"])
    fig = new_figure(4.4 * cols, 3.2 * rows, cap)
    axes = _panels(fig, len(models))
    for ax, md in zip(axes, models):
        h = md.heads
        layers = np.array(sorted(h["layer"].unique()))
        wide = len(layers) > 12
        for frame, col, color, mk, dx, label in (
                (h, "k90_field", FIELD_COLOR, "o", -0.12, K90_FIELD_TEX),
                (h.drop_duplicates(["layer", "head"]), "k90_weights", WEIGHTS_COLOR, "s", 0.12, K90_WEIGHTS_TEX)):
            g = frame.groupby("layer")[col]
            med, q1, q3 = (g.median().reindex(layers), g.quantile(0.25).reindex(layers),
                           g.quantile(0.75).reindex(layers))
            lo, hi = g.min().reindex(layers), g.max().reindex(layers)
            x = layers + (0 if wide else dx)
            ax.vlines(x, lo, hi, color=color, lw=1.0, alpha=0.55)
            ax.vlines(x, q1, q3, color=color, lw=4.5 if not wide else 2.5, alpha=0.45)
            ax.plot(x, med, color=color, lw=1.4, ls="-" if col == "k90_field" else "--", marker=mk,
                    ms=4.5 if not wide else 3, mfc="white", mew=1.4, label=f"{label} median, IQR, min–max")
        ax.set_xlabel("layer")
        ax.set_ylabel(r"$k_{90}$ (singular components)")
        top = max(float(h["k90_field"].max()), float(h["k90_weights"].max()), 2)
        ax.set_ylim(0, top * 1.3 + 0.5)
        ax.set_xticks(layers if len(layers) <= 16 else layers[:: max(1, len(layers) // 8)])
        ax.set_xlim(layers[0] - 0.5, layers[-1] + 0.5)
        _model_title(ax, md)
        ax.legend(loc="upper left", ncol=1)
    return fig, cap


# ------------------------------------------------------------------------------------------------
# Compress folders (attnspec compress): key-cache saving against quality
# ------------------------------------------------------------------------------------------------

COMPRESS_COLUMNS = ("method", "policy", "budget", "key_dims", "key_cache_saved", "ppl_orig", "ppl", "ppl_change",
                    "kl_mean", "kl_median", "kl_p95", "kl_p99", "kl_max", "top1_agreement", "tv_mean")
#: a colour per method (the field's in the blue of E~, the weights' in the red of W_Q^T W_K) ...
METHOD_COLORS = {"pca": "#2f8a4e", "field": FIELD_COLOR, "weights": WEIGHTS_COLOR}
OTHER_COLORS = ("#7b52ab", "#d98c1f", "#555555")
#: ... and a line style and marker per rank policy (filled markers: uniform ranks)
POLICY_STYLES = {"uniform": ("-", "o"), "field": ("--", "s")}
OTHER_STYLE = (":", "^")
#: how compress.json's nested conventions are named in a caption
CONVENTION_GROUPS = {"methods": "method", "policies": "policy"}


def compress_folders(paths: Iterable[PathLike]) -> list[RunFolder]:
    """The compress folders of several paths: each path itself when it holds compress.json, else every
    such folder below it (in path order; hidden folders left out), each once (by real path)."""
    seen, out = set(), []
    for p in paths:
        d = Path(p)
        if RunFolder(d).is_compress:
            found = [d]
        elif d.is_dir():
            found = sorted({f.parent for f in d.rglob(COMPRESS_SUMMARY)
                            if not any(x.startswith(".") for x in f.parent.parts[len(d.parts):])})
        else:
            found = []
        for f in found:
            key = os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                out.append(RunFolder(f))
    return out


def analyze_paths(paths: Iterable[PathLike]) -> list:
    """Of paths given beside compress folders, those to read analyze runs from: a compress folder, or a
    folder with no analyze run but compress folders below it, is left out; any other path stays (so a
    path holding neither is still the analyze reader's error)."""
    keep = []
    for p in paths:
        folder = RunFolder(p)
        if folder.is_compress:
            continue
        try:
            folder.runs()
        except InputError:
            if compress_folders([p]):
                continue
            raise
        keep.append(p)
    return keep


def _input_names(part: dict) -> str:
    names = []
    for x in part.get("inputs") or []:
        src = (x.get("text") or x.get("token_ids")) if isinstance(x, dict) else x
        names.append(Path(str(src)).stem if src else "input")
    return ", ".join(names) or "?"


@dataclass
class CompressData:
    """One compress folder, loaded for the report: compress.json and compress_curves.csv."""

    folder: RunFolder
    summary: dict
    curves: object  # pandas DataFrame: a row per method, policy and budget
    name: str = ""
    slug: str = ""

    @property
    def model(self) -> dict:
        return self.summary.get("model") or {}

    @property
    def title(self) -> str:
        return self.name.replace("$", r"\$")

    @property
    def shape_line(self) -> str:
        m = self.model
        return (f"{m.get('family', '?')}, {m.get('layers', '?')} layers, H={m.get('heads', '?')}, "
                f"G={m.get('kv_heads', '?')}, " + r"$d_h$" + f"={m.get('head_dim', '?')}, ctx {self.summary.get('ctx', '?')}")

    def inputs_line(self, part: str) -> str:
        d = self.summary.get(part) or {}
        return f"{part} on {_input_names(d)} ({d.get('windows', '?')} windows)"

    def configurations(self) -> list[tuple[str, str]]:
        """(method, policy) pairs with rows, in compress.json's order (then the CSV's)."""
        c = self.curves
        methods = list(dict.fromkeys([*(self.summary.get("methods") or []), *c["method"]]))
        policies = list(dict.fromkeys([*(self.summary.get("policies") or []), *c["policy"]]))
        have = set(zip(c["method"], c["policy"]))
        return [(m, p) for m in methods for p in policies if (m, p) in have]

    def rows(self, method: str, policy: str):
        c = self.curves
        return c[(c["method"] == method) & (c["policy"] == policy)].sort_values(["key_cache_saved", "budget"])

    @property
    def conventions(self) -> dict:
        """compress.json's conventions with the nested ones (per method, per policy) flattened to
        ``"method pca"``, ``"policy field"``, ..."""
        flat = {}
        for k, v in (self.summary.get("conventions") or {}).items():
            if isinstance(v, dict):
                flat.update({f"{CONVENTION_GROUPS.get(k, k)} {sub}": text for sub, text in v.items()})
            else:
                flat[k] = v
        return flat


def load_compress(folder: RunFolder) -> CompressData:
    """compress.json and compress_curves.csv of one folder; :class:`InputError` naming the file when one
    is missing, unreadable, without a needed column or without rows."""
    summary = folder.compress_summary()
    curves = folder.compress_curves()
    missing = [c for c in COMPRESS_COLUMNS if c not in curves.columns]
    wrong = f"missing column(s) {', '.join(missing)}" if missing else "no rows" if curves.empty else ""
    if wrong:
        raise InputError(f"{folder.path / COMPRESS_CURVES}: {wrong}")
    curves["method"], curves["policy"] = curves["method"].astype(str), curves["policy"].astype(str)
    return CompressData(folder=folder, summary=summary, curves=curves,
                        name=_path_name((summary.get("model") or {}).get("path", "")))


def load_compress_folders(paths: Iterable[PathLike]) -> list[CompressData]:
    """:func:`compress_folders` then :func:`load_compress` for each, with a figure name (``compress-<model>``,
    numbered when two folders share a model name) that is unique."""
    out = [load_compress(f) for f in compress_folders(paths)]
    used: dict = {}
    for cd in out:
        base = f"compress-{_slug(cd.name)}"
        used[base] = used.get(base, 0) + 1
        cd.slug = base if used[base] == 1 else f"{base}-{used[base]}"
    return out


def _config_style(cd: CompressData, method: str, policy: str) -> dict:
    methods = list(dict.fromkeys(m for m, _ in cd.configurations()))
    others = [m for m in methods if m not in METHOD_COLORS]
    color = METHOD_COLORS.get(method) or OTHER_COLORS[others.index(method) % len(OTHER_COLORS)]
    ls, marker = POLICY_STYLES.get(policy, OTHER_STYLE)
    return dict(color=color, ls=ls, marker=marker, ms=5, lw=1.6, mew=1.3,
                mfc=color if policy == "uniform" else "white")


def fig_compress(cd: CompressData):
    """The figure of one compress folder: mean KL per token (log scale) and the perplexity change against
    the share of the key cache saved; a line per (method, policy), a marker per budget. Each line's SVG
    id is ``compress-<method>-<policy>-<column>``."""
    from matplotlib.ticker import PercentFormatter

    configs = cd.configurations()
    budgets = sorted({float(b) for b in cd.curves["budget"]})
    ppl_orig = cd.summary.get("ppl_orig", cd.curves["ppl_orig"].iloc[0])
    what = ("Quality against the share of the key cache saved, key_cache_saved = 1 - key_dims / (layers * KV heads * "
            "d_h) (values unchanged): a line per method that fits the query/key maps (colour) and per policy that "
            "shares the ranks among KV heads (line style; hollow markers: not uniform), a marker per budget "
            f"({', '.join(f'{b:g}' for b in budgets)} of the key dimensions asked to be kept). Left: mean over "
            "evaluation tokens of KL(P_orig || P_comp), nats, log scale. Right: perplexity change ppl / ppl_orig - 1 "
            f"(ppl_orig = {float(ppl_orig):.4g})")
    keys = ([f"method {m}" for m in dict.fromkeys(m for m, _ in configs)]
            + [f"policy {p}" for p in dict.fromkeys(p for _, p in configs)] + ["kl", "perplexity", "disjoint"])
    cap = Caption(what, cd.conventions, keys, runs=f"{cd.inputs_line('calibration')}; {cd.inputs_line('evaluation')}")
    fig = new_figure(10.0, 3.9, cap)
    ax_kl, ax_ppl = fig.subplots(1, 2)
    for method, policy in configs:
        rows = cd.rows(method, policy)
        style = _config_style(cd, method, policy)
        for ax, col in ((ax_kl, "kl_mean"), (ax_ppl, "ppl_change")):
            (line,) = ax.plot(rows["key_cache_saved"].astype(float), rows[col].astype(float),
                              label=f"{method}, {policy} ranks", **style)
            line.set_gid(f"compress-{_slug(method)}-{_slug(policy)}-{col}")
    kl = cd.curves["kl_mean"].astype(float)
    if (kl > 0).any():  # a KL of 0 (nothing dropped) has no place on a log axis
        ax_kl.set_yscale("log", nonpositive="mask")
    ax_kl.set_title("mean KL per token", loc="left")
    ax_kl.set_ylabel(r"KL$(P_{\mathrm{orig}}\,\|\,P_{\mathrm{comp}})$ (nats)")
    ax_ppl.axhline(0, color="#444444", lw=0.9, ls="--", zorder=1)
    ax_ppl.annotate(f"original model (ppl {float(ppl_orig):.4g})", xy=(1, 0), xycoords=("axes fraction", "data"),
                    xytext=(-4, 3), textcoords="offset points", fontsize=7.5, color="#444444", va="bottom", ha="right")
    ax_ppl.set_title("perplexity change", loc="left")
    ax_ppl.set_ylabel(r"ppl / ppl$_{\mathrm{orig}}$ $-$ 1")
    ax_ppl.yaxis.set_major_formatter(PercentFormatter(1.0))
    for ax in (ax_kl, ax_ppl):
        ax.set_xlabel("key cache saved")
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax_ppl.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="method, rank policy", title_fontsize=8.5,
                  alignment="left")
    fig.suptitle(f"{cd.title} — {cd.shape_line}", fontsize=10.5, fontweight="bold", x=0.01, ha="left")
    return fig, cap


# ------------------------------------------------------------------------------------------------
# HTML
# ------------------------------------------------------------------------------------------------

CSS = """
:root { --field: #1f5fa8; --weights: #c8443a; --ink: #1d1d1f; --muted: #5f6368; --rule: #dadce0; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: var(--ink);
       font: 15px/1.5 -apple-system, "Segoe UI", "DejaVu Sans", "Liberation Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 28px 36px 60px; background: #fff; min-height: 100vh; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--rule); }
.meta, .note, figcaption, .notes { color: var(--muted); font-size: 13px; }
.lede { font-size: 15px; max-width: 980px; }
.field { color: var(--field); font-weight: 600; } .weights { color: var(--weights); font-weight: 600; }
.figs { display: flex; flex-wrap: wrap; column-gap: 28px; align-items: flex-start; }
.figs > section { flex: 0 1 600px; min-width: 0; }
.figs > section.wide { flex: 1 1 100%; }
.figs h2 { font-size: 17px; }
figure { margin: 10px 0 22px; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid #eceef1; }
figcaption { margin-top: 4px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { padding: 4px 9px; border-bottom: 1px solid #eceef1; text-align: right; white-space: nowrap; }
th { background: #f1f3f4; border-bottom: 2px solid var(--rule); font-weight: 600; white-space: normal;
     vertical-align: bottom; }
td.l, th.l { text-align: left; }
tr.model td { font-weight: 700; background: #fafbfc; border-bottom: 2px solid var(--rule); }
.scroll { overflow-x: auto; }
.warn { background: #fff7e0; border-left: 4px solid #f0b400; padding: 6px 12px; font-size: 13px; }
dl { font-size: 13px; } dt { font-weight: 600; margin-top: 6px; } dd { margin-left: 18px; color: #333; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
"""


def _png_svg(fig) -> tuple[bytes, bytes]:
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    fig.set_layout_engine("none")  # keep the positions the PNG's layout found: same figure, half the time
    fig.savefig(svg, format="svg", facecolor="white", metadata={"Date": None})
    return png.getvalue(), svg.getvalue()


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-").lower() or "model"


HTML_COLUMNS = ["model", "family", "params", "layers", "H", "G", "d<sub>h</sub>", "text", "ctx", "windows",
                "k90(Ẽ)<br>min / med / max", "k90(W<sub>Q</sub><sup>T</sup>W<sub>K</sub>)<br>min / med / max",
                "gap k90<br>min / med / max", "gap erank<br>min / med / max"]


def _table_html(df) -> str:
    e = html.escape
    left = {0, 1, 7}
    out = ['<div class="scroll"><table id="summary-table"><thead><tr>']
    for i, c in enumerate(HTML_COLUMNS):
        out.append(f'<th class="{"l" if i in left else ""}">{c}</th>')
    out.append("</tr></thead><tbody>")
    for row in df.to_dict("records"):
        out.append(f'<tr class="{"model" if row["scope"] == "model" else "run"}">')
        for i, c in enumerate(markdown_cells(row)):
            out.append(f'<td class="{"l" if i in left else ""}">{e(c)}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _simple_table_html(attrs: str, head: Sequence[tuple[str, bool]], rows: Iterable[Sequence[tuple[str, bool]]]) -> str:
    """A table in a scrolling box: ``<table attrs>``, then cells as (HTML, left-aligned?)."""
    def cell(tag: str, text: str, left: bool) -> str:
        return f'<{tag} class="l">{text}</{tag}>' if left else f"<{tag}>{text}</{tag}>"

    out = [f'<div class="scroll"><table {attrs}><thead><tr>', *(cell("th", t, left) for t, left in head),
           "</tr></thead><tbody>"]
    out += ["<tr>" + "".join(cell("td", t, left) for t, left in row) + "</tr>" for row in rows]
    out.append("</tbody></table></div>")
    return "".join(out)


def _runs_html(runs: Sequence[Run]) -> str:
    e = html.escape
    head = [("model", True), ("text", True), ("ctx", False), ("windows", False), ("layers", False),
            ("spectra.jsonl", True), ("folder", True)]
    rows = [[(e(r.model_name), True), (e(r.text_name), True), (str(r.ctx), False),
             (str(r.heads["window"].nunique()), False), (str(r.heads["layer"].nunique()), False),
             ("yes" if r.has_spectra else "no", True), (f"<code>{e(str(r.dir))}</code>", True)] for r in runs]
    return _simple_table_html('id="runs-table"', head, rows)


def _conventions_html(conv: dict) -> str:
    """A definition list; a nested dict (compress.json's methods and policies) as a list inside."""
    e = html.escape
    return "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{_conventions_html(v) if isinstance(v, dict) else e(str(v))}</dd>"
                            for k, v in conv.items()) + "</dl>"


#: compress_curves.csv column -> (heading, format of a value)
COMPRESS_HTML_COLUMNS = {
    "method": ("method", "{}"), "policy": ("policy", "{}"), "budget": ("budget", "{:g}"),
    "key_dims": ("key dims", "{:.0f}"), "key_cache_saved": ("key cache<br>saved", "{:.1%}"),
    "ppl": ("ppl", "{:.4g}"), "ppl_change": ("ppl<br>change", "{:+.2%}"),
    "kl_mean": ("KL<br>mean", "{:.3g}"), "kl_median": ("KL<br>median", "{:.3g}"), "kl_p95": ("KL<br>p95", "{:.3g}"),
    "kl_p99": ("KL<br>p99", "{:.3g}"), "kl_max": ("KL<br>max", "{:.3g}"),
    "top1_agreement": ("top-1<br>agreement", "{:.1%}"), "tv_mean": ("attention<br>TV mean", "{:.3g}"),
}


def _compress_table_html(cd: CompressData) -> str:
    """The rows of one folder's compress_curves.csv, by method, policy and budget."""
    e = html.escape
    head = [(title, i < 2) for i, (title, _) in enumerate(COMPRESS_HTML_COLUMNS.values())]
    rows = []
    for method, policy in cd.configurations():
        for row in cd.rows(method, policy).sort_values("budget").to_dict("records"):
            rows.append([(e(fmt.format(row[c]) if i < 2 or not _is_nan(row[c]) else "–"), i < 2)
                         for i, (c, (_, fmt)) in enumerate(COMPRESS_HTML_COLUMNS.items())])
    return _simple_table_html(f'class="compress-table" id="table-{e(cd.slug)}"', head, rows)


def _is_nan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _compress_folders_html(compress: Sequence[CompressData]) -> str:
    e = html.escape
    head = [("model", True), ("family", True), ("ctx", False), ("calibration", True), ("evaluation", True),
            ("ppl<sub>orig</sub>", False), ("folder", True)]
    rows = [[(e(cd.name), True), (e(str(cd.model.get("family", ""))), True), (e(str(cd.summary.get("ctx", ""))), False),
             (e(cd.inputs_line("calibration")), True), (e(cd.inputs_line("evaluation")), True),
             (f'{float(cd.summary.get("ppl_orig", cd.curves["ppl_orig"].iloc[0])):.4g}', False),
             (f"<code>{e(str(cd.folder.path))}</code>", True)] for cd in compress]
    return _simple_table_html('id="compress-folders"', head, rows)


def _compress_section(compress: Sequence[CompressData], figdir: Path, number: int) -> str:
    """The section "Key-cache saving against quality": per folder its figure (as Figure ``number``, lettered
    when there are several) and its table, then the folders and their conventions."""
    e = html.escape
    parts = []
    for i, cd in enumerate(compress):
        letter = "abcdefghijklmnopqrstuvwxyz"[i] if len(compress) > 1 else ""
        heading = f"Figure {number}{letter}. Key-cache saving against quality: {cd.name}"
        fig, cap = fig_compress(cd)
        parts.append(_figure_section(figdir, cd.slug, heading, fig, cap))
        parts.append(f'<section class="wide" id="rows-{e(cd.slug)}"><p class="note">The rows of '
                     f'<code>{e(str(cd.folder.path / COMPRESS_CURVES))}</code>:</p>{_compress_table_html(cd)}</section>')
    return f"""<section id="compress"><h2>Key-cache saving against quality</h2>
<p class="lede">How much of the key cache can go? Each KV head's keys are kept in k &lt; d<sub>h</sub> dimensions by
query/key maps fitted on calibration text (methods: keys' PCA, the <span class="field">field</span>-optimal
factorisation of Ẽ, or the data-free one of <span class="weights">W<sub>Q</sub><sup>T</sup>W<sub>K</sub></span>;
ranks uniform or shared by field energy), and the compressed model is judged on disjoint evaluation text by its own
next-token distribution: KL per token against the original model, and the change of perplexity.</p>
<div class="figs">{''.join(parts)}</div>
{_compress_folders_html(compress)}
<p class="note">Conventions as recorded in compress.json of the first folder.</p>{_conventions_html(compress[0].summary.get("conventions") or {})}
</section>
"""


def _figure_section(figdir: Path, name: str, heading: str, fig, cap: Caption, note: str = "") -> str:
    """Writes the figure as figures/<name>.png and .svg; returns its HTML section (the PNG inline)."""
    e = html.escape
    png, svg = _png_svg(fig)
    (figdir / f"{name}.png").write_bytes(png)
    (figdir / f"{name}.svg").write_bytes(svg)
    h2 = f"<h2>{e(heading)}</h2>"
    width = int(round(fig.get_figwidth() * DPI))
    wide = " wide" if width > 900 else ""
    # The caption is part of the image (footnote); here only where the files are.
    return (f'<section class="fig{wide}" id="fig-{e(name)}">{h2}{note}<figure>'
            f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{e(heading)}: {e(cap.text)}" '
            f'width="{width}" height="{int(round(fig.get_figheight() * DPI))}">'
            f'<figcaption>Also <code>figures/{e(name)}.png</code> and <code>figures/{e(name)}.svg</code>.'
            f'</figcaption></figure></section>')


def default_out(paths: Sequence[PathLike]) -> Path:
    """``<RUN_DIR>/report`` for one folder, ``<common parent>/report`` for several."""
    ps = [os.path.abspath(p) for p in paths]
    return Path(ps[0] if len(ps) == 1 else os.path.commonpath(ps)) / "report"


def write_report(run_dirs: Union[PathLike, Iterable[PathLike]], out_dir: Optional[PathLike] = None, *,
                 title: Optional[str] = None, runs: Optional[Sequence[Run]] = None) -> Path:
    """Writes the HTML report (and every figure as PNG and SVG, and the table) for run folders; returns
    the path of ``report.html``. ``run_dirs``: analyze run folders, compress folders, or folders with
    such folders below them. Raises :class:`attnspec.InputError` when a folder holds neither a finished
    run nor a compress folder."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import rc_context

    from . import __version__

    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    run_dirs = list(run_dirs)
    compress = load_compress_folders(run_dirs)
    if runs is None:
        runs = load_runs(analyze_paths(run_dirs) if compress else run_dirs)
    out = Path(out_dir) if out_dir is not None else default_out(run_dirs)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    e = html.escape
    models: list = []
    analyze_html = appendix_html = compress_html = ""
    with rc_context(RC):
        if runs:
            models = model_data(runs)
            analyze_html, appendix_html = _analyze_sections(runs, models, out, figdir)
        if compress:
            compress_html = _compress_section(compress, figdir, number=5 if runs else 1)

    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    meta = [e(__version__), when]
    if runs:
        meta.append(f"{len(runs)} run(s) of {len(models)} model(s): " + ", ".join(e(m.name) for m in models))
    if compress:
        meta.append(f"{len(compress)} compress folder(s): " + ", ".join(e(cd.name) for cd in compress))
    names = list(dict.fromkeys([m.name for m in models] + [cd.name for cd in compress]))
    title = title or f"attnspec report: {', '.join(names)}"
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{CSS}</style></head>
<body><main>
<h1>{e(title)}</h1>
<p class="meta">attnspec {' · '.join(meta)}</p>
{analyze_html}{compress_html}{appendix_html}</main></body></html>
"""
    path = out / "report.html"
    path.write_text(doc, encoding="utf-8")
    return path


def _analyze_sections(runs: Sequence[Run], models: Sequence[ModelData], out: Path, figdir: Path) -> tuple[str, str]:
    """The analyze runs' part of the report: the table (also written as table.md/.csv/.json) and Figures
    1-4; and the appendix, the runs and their conventions."""
    write_table(None, out, runs=runs)
    df = build_table(None, runs=runs)
    conv = runs[0].conventions
    e = html.escape
    specs = [("cumulative-variance", "Figure 1. Cumulative variance of the singular values",
              lambda: fig_cumulative_variance(models, conv))]
    for md in models:
        specs.append((f"heatmaps-{_slug(md.name)}", f"Figure 2{'abcdefghijklmnopqrstuvwxyz'[len(specs) - 1] if len(models) > 1 else ''}. "
                      f"k90 and gap per layer and head: {md.name}", lambda md=md: fig_heatmaps(md, conv)))
    specs.append(("k90-histograms", "Figure 3. Distribution of k90", lambda: fig_histograms(models, conv)))
    specs.append(("k90-by-layer", "Figure 4. k90 of Ẽ by layer", lambda: fig_by_layer(models, conv)))
    sections = []
    for name, heading, make in specs:
        fig, cap = make()
        note = ""
        if name == "cumulative-variance":
            missing = [r for md in models for r in md.runs_without_spectra]
            if missing:
                note = ('<p class="warn">No spectra.jsonl (run made without <code>--save-spectra</code>) in: '
                        + ", ".join(e(f"{r.model_name} / {r.text_name} / ctx {r.ctx}") for r in missing)
                        + ". Their curves are reconstructed from the k<sub>τ</sub> columns of heads.csv "
                          "(τ = 0.5, 0.8, 0.9, 0.95, 0.99) as points with interquartile bars.</p>")
        sections.append(_figure_section(figdir, name, heading, fig, cap, note))
    main = f"""<p class="lede">How many dimensions does each attention head use? For every head, the singular-value spectrum of
the row-centred logit field <span class="field">Ẽ</span> (what the data makes of the head) against that of the
learned interaction <span class="weights">W<sub>Q</sub><sup>T</sup>W<sub>K</sub></span> (what its weights allow):
k90 is the number of singular components that hold 90% of the variance.</p>
<section id="table"><h2>Summary table</h2>
{_table_html(df)}
<ul class="notes">{''.join(f'<li>{e(n)}</li>' for n in NOTES)}</ul>
<p class="note">Also written as <code>table.md</code>, <code>table.csv</code>, <code>table.json</code> beside this file.</p>
</section>
<div class="figs">{''.join(sections)}</div>
"""
    appendix = f"""<section id="runs"><h2>Runs</h2>{_runs_html(runs)}</section>
<section id="conventions"><h2>Conventions</h2><p class="note">As recorded in summary.json of the first run
(all runs of one attnspec version share them).</p>{_conventions_html(conv)}</section>
"""
    return main, appendix


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------




def _parser() -> Parser:
    p = Parser(prog=PROG, description="Write one self-contained HTML report (figures embedded; every figure "
                "also as PNG and SVG; the table as Markdown, CSV, JSON) for attnspec run and compress folders.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="a run folder (heads.csv + summary.json), a compress folder (compress.json), or a folder "
                        "with such folders below it")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: RUN_DIR/report, or <common parent>/report for several)")
    p.add_argument("--title", default=None, help="title of the report")
    p.add_argument("--quiet", action="store_true", help="no final message")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``attnspec report`` / ``python -m attnspec.report``; returns the exit status."""
    def body(args) -> int:
        path = write_report(args.run_dirs, args.out, title=args.title)
        if not args.quiet:
            print(f"attnspec: wrote {path}", file=sys.stderr)
        return 0

    return run_command(PROG, _parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
