"""`attnspec demo`: the bundled model and text, analyze + table + report, through the CLI and from Python.

The demo model (python/attnspec/demo_model, made by scripts/train_demo_model.py) must ship inside the
installed package, stay within 20 MB, carry a tokenizer that Hugging Face `tokenizers` loads and that
attnspec reproduces id for id, and be an actually trained model (its training log says so).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import attnspec
from attnspec import demo

MAX_BYTES = 20 * 1024 * 1024


def cli(*args, **kw):
    return subprocess.run(["attnspec", *map(str, args)], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def cli_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "attnspec-demo"
    proc = cli("demo", "--out", out, "--threads", 2)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_bundle_is_installed_and_small():
    assert demo.MODEL.parent == Path(attnspec.__file__).resolve().parent  # inside the installed package
    names = {p.name for p in demo.MODEL.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md",
            "loss.png", "demo_text.txt", "training_log.json"} <= names, names
    size = sum(p.stat().st_size for p in demo.MODEL.rglob("*") if p.is_file())
    assert size <= MAX_BYTES, size
    config = json.loads((demo.MODEL / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_embd"] // config["n_head"] == 64 and config["n_layer"] >= 4
    assert config["vocab_size"] <= 8192
    log = json.loads((demo.MODEL / "training_log.json").read_text())
    assert log["final"]["val_loss"] < 0.6 * log["curve"][0]["val_loss"]  # trained, far below chance


def test_tokenizer_loads_and_matches_attnspec(tmp_path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(demo.MODEL / "tokenizer.json"))
    assert tok.get_vocab_size() == json.loads((demo.MODEL / "config.json").read_text())["vocab_size"]
    text = demo.TEXT.read_text(encoding="utf-8")
    want = tok.encode(text).ids
    proc = cli("tokenize", "--model", demo.MODEL, "--text", demo.TEXT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == want
    assert tok.decode(want) == text
    assert len(want) >= 8 * 256  # several windows at the demo's ctx


def test_cli_demo_writes_run_table_and_report(cli_demo):
    out, proc = cli_demo
    run_dir = out / "run"
    for f in ("heads.csv", "summary.json", "spectra.jsonl", "head_summary.csv"):
        assert (run_dir / f).is_file(), f
    for f in ("table.md", "table.csv", "table.json", "report/report.html"):
        assert (out / f).is_file(), f
    assert len(list((out / "report" / "figures").glob("*.png"))) >= 4
    # analyze --text ran on the bundled text with the bundled tokenizer, in full windows of 256.
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ctx"] == 256
    assert summary["input"]["text"].endswith("demo_text.txt")
    assert summary["input"]["tokenizer"].startswith("byte-level BPE")
    from tokenizers import Tokenizer

    n_tokens = len(Tokenizer.from_file(str(demo.MODEL / "tokenizer.json")).encode(demo.TEXT.read_text()).ids)
    assert summary["input"]["stream_tokens"] == n_tokens
    heads = pd.read_csv(run_dir / "heads.csv")
    config = json.loads((demo.MODEL / "config.json").read_text())
    assert summary["windows"] == n_tokens // 256 == heads["window"].nunique()
    assert len(heads) == summary["windows"] * config["n_layer"] * config["n_head"]
    assert (heads["k90_weights"] <= 64).all() and (heads["k90_field"] >= 1).all()
    # The printed summary: the ranges of k90 (as in summary.json) and where the report is.
    agg = summary["aggregates"]
    lines = proc.stdout.splitlines()
    k90_field = next(l for l in lines if "k90(E~)" in l)
    assert f"min {agg['k90_field']['min']:g}, median {agg['k90_field']['median']:g}, max {agg['k90_field']['max']:g}" \
        in k90_field
    assert any("k90(W_Q^T W_K)" in l for l in lines)
    assert any(l.startswith("report:") and l.endswith("report.html") for l in lines)
    # The table is that run's.
    table = pd.read_csv(out / "table.csv")
    row = table[table.scope == "run"].iloc[0]
    assert row.model == "demo_model" and row.k90_field_median == agg["k90_field"]["median"]
    assert "demo_model" in (out / "report" / "report.html").read_text()


def test_python_api_demo(tmp_path):
    result = demo.run(tmp_path / "d", ctx=128, threads=1, max_windows=2)
    assert result.report == tmp_path / "d" / "report" / "report.html" and result.report.is_file()
    assert result.table.is_file()
    assert isinstance(result.run, attnspec.AnalysisResult)
    assert result.run.summary["ctx"] == 128 and result.run.heads["window"].nunique() == 2
    assert (0, 0, 0) in result.run.spectra and len(result.run.spectra[(0, 0, 0)]["weights"]) == 64
    assert any("k90(E~)" in l for l in result.summary_lines())
    # The bundled model also works as any checkpoint does.
    again = attnspec.analyze(demo.MODEL, text=demo.TEXT, ctx=128, max_windows=2, threads=1)
    assert again.heads[["k90_field", "k90_weights"]].equals(result.run.heads[["k90_field", "k90_weights"]])


def test_demo_bad_input(tmp_path):
    proc = cli("demo", "--out", tmp_path / "x", "--ctx", 512)  # beyond the model's 256 positions
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnspec: error: ") and "512" in lines[0], proc.stderr
    assert not (tmp_path / "x").exists()  # nothing written
    proc = cli("demo", "--bogus")
    assert proc.returncode == 2 and proc.stderr.startswith("attnspec: error: attnspec demo:"), proc.stderr
    assert cli("demo", "--help").returncode == 0
