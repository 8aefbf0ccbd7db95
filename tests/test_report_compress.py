"""`attnspec report` on `attnspec compress` folders, alone and beside analyze runs.

The compress folders are written here, small but with every file and column `attnspec compress`
writes (3 methods x 2 policies x 3 budgets); the analyze run is a real one of the demo model. The
report must add a section "Key-cache saving against quality" (a figure per folder, a line per method
and policy, and the rows), and leave everything else exactly as it is without compress folders.
"""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

import attnspec
from attnspec import report
from attnspec.report import fig_compress, load_compress_folders, write_report

DEMO = Path(attnspec.__file__).resolve().parent / "demo_model"
METHODS = ("pca", "field", "weights")
POLICIES = ("uniform", "field")
BUDGETS = (0.25, 0.5, 0.75)
CURVE_COLUMNS = ("method,policy,budget,key_dims,key_cache_saved,ppl_orig,ppl,ppl_change,kl_mean,kl_median,kl_p95,"
                 "kl_p99,kl_max,top1_agreement,tv_mean")
HEAD_COLUMNS = "method,policy,budget,layer,kv_head,d_h,k,field_share,tv"
ANALYZE_FIGURES = {"cumulative-variance", "heatmaps-demo-model", "k90-histograms", "k90-by-layer"}
ANALYZE_SECTIONS = ["table", "fig-cumulative-variance", "fig-heatmaps-demo-model", "fig-k90-histograms",
                    "fig-k90-by-layer", "runs", "conventions"]


def write_compress_folder(out: Path, model: str = "/models/tiny-llama", family: str = "llama", ctx: int = 32,
                          layers: int = 2, kv_heads: int = 2, head_dim: int = 8, ppl_orig: float = 20.0) -> Path:
    """A finished compress folder: quality falls as fewer key dimensions are kept, the field method and
    policy least (as the files of a real run would show, but made up)."""
    out.mkdir(parents=True)
    total = layers * kv_heads * head_dim
    curves, heads, results = [CURVE_COLUMNS], [HEAD_COLUMNS], []
    for mi, method in enumerate(METHODS):
        for pi, policy in enumerate(POLICIES):
            for budget in BUDGETS:
                k = max(1, round(budget * head_dim))
                key_dims = k * layers * kv_heads
                loss = (1 - budget) ** 2 * (1 + mi) * (1 + 0.5 * (1 - pi))
                kl = 0.05 * loss
                ppl = ppl_orig * (1 + 0.4 * loss)
                row = dict(method=method, policy=policy, budget=budget, key_dims=key_dims,
                           key_cache_saved=1 - key_dims / total, ppl_orig=ppl_orig, ppl=ppl,
                           ppl_change=ppl / ppl_orig - 1, kl_mean=kl, kl_median=0.6 * kl, kl_p95=3 * kl, kl_p99=6 * kl,
                           kl_max=12 * kl, top1_agreement=1 / (1 + loss), tv_mean=0.3 * loss)
                curves.append(",".join(f"{v:.9g}" if isinstance(v, float) else str(v) for v in row.values()))
                results.append(row)
                for layer in range(layers):
                    for g in range(kv_heads):
                        heads.append(f"{method},{policy},{budget:g},{layer},{g},{head_dim},{k},{1 - 0.5 * loss:.6g},"
                                     f"{0.3 * loss:.6g}")
    (out / "compress_curves.csv").write_text("\n".join(curves) + "\n")
    (out / "compress_heads.csv").write_text("\n".join(heads) + "\n")
    summary = {
        "attnspec_version": attnspec.__version__, "command": "compress",
        "model": {"path": model, "family": family, "layers": layers, "heads": 2 * kv_heads, "kv_heads": kv_heads,
                  "head_dim": head_dim, "vocab_size": 512},
        "ctx": ctx,
        "calibration": {"inputs": [{"text": "/texts/calibrate.txt", "stream_tokens": 400, "dropped_tokens": 16}],
                        "windows": 12},
        "evaluation": {"inputs": [{"token_ids": "/texts/held_out.json", "stream_tokens": 200, "dropped_tokens": 8}],
                       "windows": 6},
        "methods": list(METHODS), "policies": list(POLICIES), "budgets": list(BUDGETS), "ppl_orig": ppl_orig,
        "results": results,
        "conventions": {
            "methods": {"pca": "L = R = the top-k eigenvectors of sum k k^T over calibration keys",
                        "field": "the rank-k M = L R^T minimising the error of the row-centred field E~",
                        "weights": "the same factorisation of W_Q^T W_K; data-free"},
            "policies": {"uniform": "every KV head keeps round(budget * d_h) key dimensions",
                         "field": "key dimensions shared among KV heads by field energy"},
            "key_cache_saved": "1 - key_dims / (layers * KV heads * d_h)",
            "kl": "per token, KL(P_orig || P_comp) in nats",
            "perplexity": "exp of the mean negative log-likelihood of the next tokens",
            "disjoint": "no evaluation window shares a run of 32 consecutive tokens with the calibration texts",
        },
    }
    (out / "compress.json").write_text(json.dumps(summary, indent=2) + "\n")
    header = json.dumps({"__metadata__": {"format": "attnspec query/key maps"}}).encode()
    (out / "projections.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    (out / "evaluation_windows.json").write_text(json.dumps([list(range(ctx))] * 6) + "\n")
    return out


@pytest.fixture(scope="module")
def analyze_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analyze") / "demo"
    attnspec.analyze(DEMO, DEMO / "demo_text.txt", out=out, ctx=32, max_windows=2, threads=1, save_spectra=True,
                     quiet=True)
    return out


def section_ids(text: str) -> list:
    return re.findall(r'<section[^>]* id="([^"]+)"', text)


def figure_files(out: Path) -> set:
    return {p.name for p in (out / "figures").iterdir()}


def without_time(text: str) -> str:
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "WHEN", text)


def test_figure_has_a_line_per_method_and_policy(tmp_path):
    folder = write_compress_folder(tmp_path / "c")
    (cd,) = load_compress_folders([folder])
    fig, cap = fig_compress(cd)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    want = {f"{m}, {p} ranks" for m in METHODS for p in POLICIES}
    for ax, col in zip(axes, ("kl_mean", "ppl_change")):
        lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
        assert sorted(ln.get_label() for ln in lines) == sorted(want), col
        for ln in lines:  # a marker per budget, at the folder's own numbers
            method, policy = ln.get_label().removesuffix(" ranks").split(", ")
            rows = cd.rows(method, policy)
            assert ln.get_marker() not in (None, "None", "") and len(ln.get_xdata()) == len(BUDGETS)
            assert list(ln.get_xdata()) == pytest.approx(list(rows["key_cache_saved"]))
            assert list(ln.get_ydata()) == pytest.approx(list(rows[col]))
    assert axes[0].get_yscale() == "log" and axes[1].get_yscale() == "linear"
    assert {t.get_text() for t in axes[1].get_legend().get_texts()} == want
    assert "tiny-llama" in fig._suptitle.get_text() and "llama, 2 layers" in fig._suptitle.get_text()
    assert "calibration on calibrate (12 windows)" in cap.text and "evaluation on held_out (6 windows)" in cap.text


def test_report_of_a_compress_folder_alone(tmp_path):
    folder = write_compress_folder(tmp_path / "c")
    path = write_report([folder], tmp_path / "report")
    text = path.read_text(encoding="utf-8")
    assert section_ids(text) == ["compress", "fig-compress-tiny-llama", "rows-compress-tiny-llama"]
    assert "<h2>Key-cache saving against quality</h2>" in text
    assert "Figure 1. Key-cache saving against quality: tiny-llama" in text
    assert text.count('src="data:image/png;base64,') == 1
    assert "<title>attnspec report: tiny-llama</title>" in text and "1 compress folder(s): tiny-llama" in text
    # No analyze part: no summary table, no table files.
    assert 'id="summary-table"' not in text and 'id="runs"' not in text
    assert not (tmp_path / "report" / "table.md").exists()
    assert figure_files(tmp_path / "report") == {"compress-tiny-llama.png", "compress-tiny-llama.svg"}
    for ext in ("png", "svg"):
        assert (tmp_path / "report" / "figures" / f"compress-tiny-llama.{ext}").stat().st_size > 5000
    # The SVG holds a line per (method, policy) in each panel, named by its gid.
    svg = (tmp_path / "report" / "figures" / "compress-tiny-llama.svg").read_text()
    ids = set(re.findall(r'id="(compress-[a-z]+-[a-z]+-(?:kl_mean|ppl_change))"', svg))
    assert ids == {f"compress-{m}-{p}-{c}" for m in METHODS for p in POLICIES for c in ("kl_mean", "ppl_change")}
    # The table: a row per line of compress_curves.csv, with its numbers.
    table = re.search(r'<table class="compress-table" id="table-compress-tiny-llama">.*?</table>', text).group(0)
    assert table.count("<tr>") == 1 + len(METHODS) * len(POLICIES) * len(BUDGETS)
    # field method, field policy, budget 0.75: 6 of 8 dimensions kept in each of 4 KV heads; loss 0.0625 * 2
    row = re.search(r"<tr><td class=\"l\">field</td><td class=\"l\">field</td><td>0.75</td>.*?</tr>", table)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(0))
    assert cells == ["field", "field", "0.75", "24", "25.0%", "21", "+5.00%", "0.00625", "0.00375", "0.0187", "0.0375",
                     "0.075", "88.9%", "0.0375"]
    # The folder and its conventions, nested ones as nested lists.
    assert 'id="compress-folders"' in text and "calibration on calibrate (12 windows)" in text
    assert "<dt>methods</dt><dd><dl><dt>pca</dt>" in text


def test_report_finds_compress_folders_below_a_folder(tmp_path):
    write_compress_folder(tmp_path / "runs" / "a" / "ctx32")
    write_compress_folder(tmp_path / "runs" / "b" / "ctx64", ctx=64)
    write_compress_folder(tmp_path / "runs" / "other", model="/models/tiny-gpt2", family="gpt2")
    write_compress_folder(tmp_path / "runs" / ".hidden" / "c")
    assert report.main([str(tmp_path / "runs"), "--quiet"]) == 0
    out = tmp_path / "runs" / "report"
    text = (out / "report.html").read_text(encoding="utf-8")
    assert figure_files(out) == {f"{n}.{x}" for n in ("compress-tiny-llama", "compress-tiny-llama-2", "compress-tiny-gpt2")
                                 for x in ("png", "svg")}
    for heading in ("Figure 1a. Key-cache saving against quality: tiny-llama",
                    "Figure 1b. Key-cache saving against quality: tiny-llama",
                    "Figure 1c. Key-cache saving against quality: tiny-gpt2"):
        assert heading in text
    assert "3 compress folder(s)" in text and "<title>attnspec report: tiny-llama, tiny-gpt2</title>" in text


def test_report_of_analyze_runs_and_compress_folders(analyze_run, tmp_path):
    folder = write_compress_folder(tmp_path / "c")
    mixed = write_report([analyze_run, folder], tmp_path / "mixed")
    alone = write_report([analyze_run], tmp_path / "alone")
    text, plain = mixed.read_text(encoding="utf-8"), alone.read_text(encoding="utf-8")
    assert section_ids(plain) == ANALYZE_SECTIONS
    assert section_ids(text) == ANALYZE_SECTIONS[:5] + ["compress", "fig-compress-tiny-llama",
                                                        "rows-compress-tiny-llama"] + ANALYZE_SECTIONS[5:]
    assert "Figure 5. Key-cache saving against quality: tiny-llama" in text
    assert "<title>attnspec report: demo_model, tiny-llama</title>" in text
    assert figure_files(tmp_path / "mixed") == figure_files(tmp_path / "alone") | {"compress-tiny-llama.png",
                                                                                    "compress-tiny-llama.svg"}
    # The compress folder adds its section and nothing else: the rest is the analyze report byte for byte.
    cut = re.sub(r'<section id="compress">.*?\n</section>\n', "", text, flags=re.S)
    cut = cut.replace(" · 1 compress folder(s): tiny-llama", "").replace("demo_model, tiny-llama", "demo_model")
    assert without_time(cut) == without_time(plain)
    for name in ANALYZE_FIGURES:
        for ext in ("png", "svg"):
            f = f"figures/{name}.{ext}"
            assert (tmp_path / "mixed" / f).read_bytes() == (tmp_path / "alone" / f).read_bytes(), f
    for ext in ("md", "csv", "json"):
        assert (tmp_path / "mixed" / f"table.{ext}").read_bytes() == (tmp_path / "alone" / f"table.{ext}").read_bytes()


def test_a_folder_holding_both_kinds(analyze_run, tmp_path):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(analyze_run, root / "demo" / "ctx32")
    write_compress_folder(root / "compress")
    text = write_report([root]).read_text(encoding="utf-8")
    assert 'id="summary-table"' in text and 'id="compress"' in text
    assert "1 run(s) of 1 model(s): demo_model · 1 compress folder(s): tiny-llama" in text


def test_report_without_compress_folders_is_unchanged(analyze_run, tmp_path):
    path = write_report([analyze_run], tmp_path / "r")
    text = path.read_text(encoding="utf-8")
    assert section_ids(text) == ANALYZE_SECTIONS
    assert figure_files(tmp_path / "r") == {f"{n}.{x}" for n in ANALYZE_FIGURES for x in ("png", "svg")}
    assert "compress" not in text.lower() and "Key-cache" not in text
    assert "1 run(s) of 1 model(s): demo_model</p>\n<p class=\"lede\">How many dimensions" in text


def test_bad_compress_input(analyze_run, tmp_path):
    folder = write_compress_folder(tmp_path / "c")
    curves = folder / "compress_curves.csv"
    curves.write_text("\n".join(line.rsplit(",", 1)[0] for line in curves.read_text().splitlines()) + "\n")
    with pytest.raises(attnspec.InputError, match=r"compress_curves\.csv: missing column\(s\) tv_mean"):
        write_report([folder], tmp_path / "r")
    curves.write_text(CURVE_COLUMNS + "\n")
    with pytest.raises(attnspec.InputError, match=r"compress_curves\.csv: no rows"):
        write_report([folder], tmp_path / "r")
    curves.unlink()
    with pytest.raises(attnspec.InputError, match=r"compress_curves\.csv: no such file"):
        write_report([folder], tmp_path / "r")
    # Beside a compress folder, a folder holding neither kind is still the analyze reader's error.
    good = write_compress_folder(tmp_path / "good")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(attnspec.InputError, match="no heads.csv"):
        write_report([good, empty], tmp_path / "r")
    with pytest.raises(attnspec.InputError, match="no such run folder"):
        write_report([good, tmp_path / "missing"], tmp_path / "r")
