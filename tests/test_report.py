"""`attnspec reproduce`, the paper table and `attnspec report`, end to end through the CLI.

Runs: the real stories260K model on its example ids and on random ids, and a tiny random GPT-2
(128 positions, so its ctx-256 runs are skipped), at ctx 128 and 256. The table is checked against
min / median / max computed with pandas straight from each heads.csv; the HTML report is opened in
headless Chromium, which must load every image.

docs/report-screenshot.png is made by scripts/report-screenshot.sh the same way.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import attnspec
from conftest import shared_path

REPO = Path(__file__).resolve().parents[1]
STORY_IDS = REPO / "examples" / "stories260K_story.json"
METRICS = ("k90_field", "k90_weights", "gap_k90", "gap_erank")
FIGURES = ("cumulative-variance", "k90-histograms", "k90-by-layer")


def cli(*args, **kw):
    return subprocess.run(["attnspec", *map(str, args)], capture_output=True, text=True, **kw)


def expect_input_error(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("attnspec: error: "), lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, checkpoints):
    """One `attnspec reproduce` over 2 models x 2 inputs x 2 contexts (gpt2 at 256 skipped)."""
    stories = shared_path("models", "stories260K-hf")
    gpt2_src = checkpoints("gpt2")  # 3 layers, 4 heads, d_h 16, 128 positions, vocab 512
    root = tmp_path_factory.mktemp("reproduce")
    gpt2 = root / "tiny-gpt2"
    shutil.copytree(gpt2_src, gpt2)
    rng = np.random.default_rng(7)
    random_ids = root / "random_ids.json"
    random_ids.write_text(json.dumps([int(t) for t in rng.integers(0, 512, size=1024)]))
    out = root / "out"
    proc = cli("reproduce", "--model", stories, gpt2, "--token-ids", STORY_IDS, random_ids, "--ctx", 128, 256,
               "--out", out, "--max-windows", 3, "--threads", 2)
    assert proc.returncode == 0, proc.stderr
    return {"out": out, "stderr": proc.stderr, "stories": stories, "gpt2": gpt2}


def run_dirs(out: Path) -> dict:
    return {tuple(p.relative_to(out).parts[:3]): p for p in sorted(h.parent for h in out.rglob("heads.csv"))
            if "report" not in p.parts}


def test_reproduce_layout_and_progress(reproduced):
    out, err = reproduced["out"], reproduced["stderr"]
    dirs = run_dirs(out)
    assert set(dirs) == {("stories260K-hf", "stories260K_story", "ctx128"), ("stories260K-hf", "stories260K_story", "ctx256"),
                         ("stories260K-hf", "random_ids", "ctx128"), ("stories260K-hf", "random_ids", "ctx256"),
                         ("tiny-gpt2", "stories260K_story", "ctx128"), ("tiny-gpt2", "random_ids", "ctx128")}
    for d in dirs.values():
        assert {"heads.csv", "summary.json", "spectra.jsonl"} <= {p.name for p in d.iterdir()}
    assert {p.name for p in out.iterdir()} >= {"table.md", "table.csv", "table.json"}
    # Progress over (model, text, ctx), the per-window lines of each run, and the skipped pairs.
    assert "run 1/6: stories260K-hf | stories260K_story | ctx 128" in err
    assert "run 6/6: tiny-gpt2 | random_ids | ctx 128" in err
    assert "window 3/3" in err
    assert "skipping tiny-gpt2 at ctx 256" in err


def test_reproduce_runs_are_analyze_byte_for_byte(reproduced, tmp_path):
    """Each run folder of reproduce (a local sweep run by run) holds exactly what `attnspec analyze`
    writes for the same model, input and options; summary.json differs only in its timings."""
    out = reproduced["out"]
    for model, ids, run in ((reproduced["stories"], STORY_IDS, out / "stories260K-hf" / "stories260K_story" / "ctx256"),
                            (reproduced["gpt2"], out.parent / "random_ids.json", out / "tiny-gpt2" / "random_ids" / "ctx128")):
        ref = tmp_path / run.parent.parent.name
        proc = cli("analyze", "--model", model, "--token-ids", ids, "--ctx", run.name[3:], "--max-windows", 3,
                   "--threads", 2, "--save-spectra", "--quiet", "--out", ref)
        assert proc.returncode == 0, proc.stderr
        assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in ref.iterdir())
        for name in ("heads.csv", "spectra.jsonl", "head_summary.csv"):
            assert (run / name).read_bytes() == (ref / name).read_bytes(), run / name
        mine, theirs = json.loads((run / "summary.json").read_text()), json.loads((ref / "summary.json").read_text())
        mine.pop("timing_seconds"), theirs.pop("timing_seconds")
        assert mine == theirs


def pandas_stats(frame: pd.DataFrame, col: str) -> tuple:
    v = frame[col].astype(float).dropna()
    return v.min(), v.median(), v.max()


def test_table_matches_heads_csv(reproduced):
    out = reproduced["out"]
    table = pd.read_csv(out / "table.csv")
    as_json = {(r["model"], r["scope"], r["text"], str(r["ctx"])): r for r in json.loads((out / "table.json").read_text())["rows"]}
    heads = {key: pd.read_csv(d / "heads.csv") for key, d in run_dirs(out).items()}
    models = {
        "stories260K-hf": dict(family="llama", layers=5, heads=8, kv_heads=4, head_dim=8, parameters=292800),
        "tiny-gpt2": dict(family="gpt2", layers=3, heads=4, kv_heads=4, head_dim=16),
    }
    assert len(table) == len(heads) + len(models)
    for (model, text, ctx), frame in heads.items():  # a row per (model, text, ctx)
        row = table[(table.model == model) & (table.scope == "run") & (table.text == text)
                    & (table.ctx.astype(str) == ctx[3:])]
        assert len(row) == 1, (model, text, ctx)
        row = row.iloc[0]
        assert row.windows == frame.window.nunique() == 3 and row.rows == len(frame)
        j = as_json[(model, "run", text, ctx[3:])]
        for col in METRICS:
            want = pandas_stats(frame, col)
            got = (row[f"{col}_min"], row[f"{col}_median"], row[f"{col}_max"])
            assert got == pytest.approx(want, rel=1e-9), (model, text, ctx, col)
            assert (j[col]["min"], j[col]["median"], j[col]["max"]) == pytest.approx(want, rel=1e-9)
        for k, v in models[model].items():
            assert row[k] == v, (model, k)
    for model, shape in models.items():  # a row per model over all its texts and contexts
        pooled = pd.concat([f for (m, _, _), f in heads.items() if m == model], ignore_index=True)
        row = table[(table.model == model) & (table.scope == "model")]
        assert len(row) == 1
        row = row.iloc[0]
        assert row.text == "all" and row.rows == len(pooled)
        for col in METRICS:
            got = (row[f"{col}_min"], row[f"{col}_median"], row[f"{col}_max"])
            assert got == pytest.approx(pandas_stats(pooled, col), rel=1e-9), (model, col)
        for k, v in shape.items():
            assert row[k] == v, (model, k)
    # The Markdown shows the same numbers: the stories model's pooled k90(E~) triple.
    md = (out / "table.md").read_text()
    s = table[(table.model == "stories260K-hf") & (table.scope == "model")].iloc[0]
    triple = " / ".join(f"{v:g}" for v in (s.k90_field_min, s.k90_field_median, s.k90_field_max))
    assert f"**{triple}**" in md


def test_python_table_api(reproduced):
    out = reproduced["out"]
    df = attnspec.table(out)
    assert isinstance(df, pd.DataFrame)
    csv = pd.read_csv(out / "table.csv")
    assert list(df.columns) == list(csv.columns) and len(df) == len(csv)
    for c in df.columns:
        if pd.api.types.is_numeric_dtype(df[c]) and pd.api.types.is_numeric_dtype(csv[c]):
            np.testing.assert_allclose(df[c].astype(float), csv[c].astype(float), rtol=1e-9, err_msg=c)
        else:
            assert df[c].astype(str).tolist() == csv[c].astype(str).tolist(), c
    from attnspec.table import write_table

    paths = write_table([out], out / "again")
    assert (out / "again" / "table.md").read_text() == (out / "table.md").read_text()
    assert set(paths) == {"md", "csv", "json"}


CHECK_IMAGES = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; }).length;
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-broken', String(broken));
  document.body.setAttribute('data-table-rows', String(document.querySelectorAll('#summary-table tbody tr').length));
});
</script></body>"""


# Root in CI: no sandbox; a private profile; virtual time lets every image decode before the dump.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=10000")


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.fail("headless Chromium is needed (Debian package chromium; scripts/install-deps.sh installs it)")
    return exe


def chromium_check(html: Path, tmp: Path) -> dict:
    """Loads a copy of the report with a probe script; returns its counts of images and table rows."""
    probe = tmp / ("probe-" + html.name)
    probe.write_text(html.read_text(encoding="utf-8").replace("</body>", CHECK_IMAGES), encoding="utf-8")
    proc = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}",
                           "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r"<body([^>]*)>", proc.stdout)
    assert m, proc.stdout[:2000]
    return {k: int(v) for k, v in re.findall(r'data-([a-z-]+)="(\d+)"', m.group(1))}


def screenshot(html: Path, png: Path) -> None:
    proc = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={png.parent / 'chromium-profile'}",
                           "--hide-scrollbars", f"--screenshot={png}", "--window-size=1400,4000", html.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and png.exists(), proc.stderr[-2000:]


def test_report_cli_writes_html_png_svg_and_loads_in_chromium(reproduced, tmp_path):
    # One run without spectra.jsonl: its curves come from heads.csv, and the report says so.
    out = tmp_path / "runs"
    shutil.copytree(reproduced["out"], out)
    (out / "tiny-gpt2" / "random_ids" / "ctx128" / "spectra.jsonl").unlink()
    report = tmp_path / "report"
    proc = cli("report", out, "--out", report)
    assert proc.returncode == 0, proc.stderr
    html = report / "report.html"
    assert html.exists()
    names = list(FIGURES) + ["heatmaps-stories260k-hf", "heatmaps-tiny-gpt2"]
    for name in names:
        for ext in ("png", "svg"):
            f = report / "figures" / f"{name}.{ext}"
            assert f.exists() and f.stat().st_size > 5000, f
    for ext in ("md", "csv", "json"):
        assert (report / f"table.{ext}").exists()
    text = html.read_text(encoding="utf-8")
    # Self-contained: images inline, no external resources.
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", text), "external resource in the report"
    assert "http://" not in text and "https://" not in text
    assert text.count('src="data:image/png;base64,') == len(names)
    assert 'id="summary-table"' in text and "stories260K-hf" in text and "tiny-gpt2" in text
    assert "no causal mask" in text  # the run's conventions are in the report
    assert "No spectra.jsonl" in text and "tiny-gpt2 / random_ids / ctx 128" in text

    counts = chromium_check(html, tmp_path)
    assert counts["images"] == len(names) and counts["broken"] == 0, counts
    assert counts["table-rows"] == len(run_dirs(out)) + 2, counts


def test_result_report_api_and_screenshot(reproduced, tmp_path):
    """AnalysisResult.report() on the stories run: HTML, figures, a screenshot that shows them."""
    run = reproduced["out"] / "stories260K-hf" / "stories260K_story" / "ctx256"
    html = attnspec.AnalysisResult.load(run).report(tmp_path / "stories-report")
    assert html == tmp_path / "stories-report" / "report.html" and html.exists()
    assert html.read_text(encoding="utf-8").count('src="data:image/png;base64,') == 4
    png = tmp_path / "shot.png"
    screenshot(html, png)
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (1400, 4000)
        # Not a blank page: the figures put many distinct colours on it.
        assert len(im.convert("RGB").resize((350, 1000)).getcolors(1 << 20) or []) > 200


def test_bad_input(reproduced, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_input_error(cli("report", empty), "empty", "no heads.csv")
    expect_input_error(cli("report", tmp_path / "missing"), "missing", "no such run folder")
    only_heads = tmp_path / "only-heads"
    only_heads.mkdir()
    shutil.copy(reproduced["out"] / "tiny-gpt2" / "random_ids" / "ctx128" / "heads.csv", only_heads)
    expect_input_error(cli("report", only_heads), "summary.json")
    expect_input_error(cli("reproduce", "--model", tmp_path / "nope", "--token-ids", STORY_IDS, "--ctx", 64,
                           "--out", tmp_path / "o"), "nope", "no such model folder")
    expect_input_error(cli("reproduce", "--model", reproduced["gpt2"], "--token-ids", tmp_path / "none.json",
                           "--ctx", 64, "--out", tmp_path / "o"), "none.json")
    expect_input_error(cli("reproduce", "--model", reproduced["gpt2"], "--token-ids", STORY_IDS, "--out", tmp_path / "o"),
                       "--ctx")
    expect_input_error(cli("reproduce", "--model", reproduced["gpt2"], "--token-ids", STORY_IDS, "--ctx", 4096,
                           "--out", tmp_path / "o"), "no (model, text, ctx) left")
    assert not (tmp_path / "o").exists()
