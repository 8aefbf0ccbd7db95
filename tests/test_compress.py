"""attnspec compress: maps fitted on calibration text, judged on held-out text by the model's own
next-token distribution. Checked against transformers: the compressed model rebuilt there from
projections.safetensors (attnspec.projections) gives the KL and perplexity attnspec reports."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

import attnspec
import attnspec.projections
import hf_oracle
from conftest import books, shared_path

def tokenizer():
    return shared_path("models", "stories260K", "tok512.bin")  # 512 ids: the tiny checkpoints' vocabulary


def _run(model, out, *extra, calibrate=None, evaluate=None):
    calibrate = calibrate or books()[0]
    evaluate = evaluate or books()[1]
    return subprocess.run(["attnspec", "compress", "--model", str(model), "--calibrate", str(calibrate), "--evaluate",
                           str(evaluate), "--tokenizer", str(tokenizer()), "--ctx", "48", "--calibration-windows", "6",
                           "--evaluation-windows", "3", "--threads", "2", "--quiet", "--out", str(out), *extra],
                          capture_output=True, text=True)


def _kl_and_ppl(orig: np.ndarray, comp: np.ndarray, ids: list[list[int]]):
    """Per-token KL(P_orig || P_comp) and both perplexities, in float64, from [w, n, V] logits."""
    lo = torch.log_softmax(torch.from_numpy(orig).double(), -1)
    lc = torch.log_softmax(torch.from_numpy(comp).double(), -1)
    kl = (lo.exp() * (lo - lc)).sum(-1).flatten().numpy()
    t = torch.tensor(ids)[:, 1:]
    nll = lambda lp: -lp[:, :-1].gather(-1, t.unsqueeze(-1)).mean().item()
    return kl, float(np.exp(nll(lo))), float(np.exp(nll(lc)))


@pytest.mark.parametrize("family,variant", [("llama", "gqa4"), ("qwen2", "base"), ("gemma2", "base"), ("gpt2", "base")])
def test_transformers_with_the_exported_maps_reproduces_attnspec(checkpoints, tmp_path, family, variant):
    model = checkpoints(family, variant)
    proc = _run(model, tmp_path / "c", "--method", "field", "--policy", "field", "--budget", "0.5")
    assert proc.returncode == 0, proc.stderr
    row = attnspec.CompressResult.load(tmp_path / "c").curves.iloc[0]
    ids = json.loads((tmp_path / "c" / "evaluation_windows.json").read_text())
    hf = hf_oracle.load_model(model)
    with torch.no_grad():
        orig = hf(torch.tensor(ids)).logits.numpy()
        attnspec.projections.apply_projections(hf, tmp_path / "c" / "projections.safetensors")
        comp = hf(torch.tensor(ids)).logits.numpy()
    kl, ppl_orig, ppl = _kl_and_ppl(orig, comp, ids)
    assert kl.mean() > 1e-4, "a rank-halving map left the model unchanged: nothing was tested"
    assert row["kl_mean"] == pytest.approx(kl.mean(), rel=2e-3, abs=1e-6)
    assert row["kl_p99"] == pytest.approx(np.sort(kl)[int(np.ceil(0.99 * kl.size)) - 1], rel=5e-3, abs=1e-6)
    assert row["ppl_orig"] == pytest.approx(ppl_orig, rel=1e-4)
    assert row["ppl"] == pytest.approx(ppl, rel=1e-4)


def test_full_rank_maps_leave_the_model_unchanged(checkpoints, tmp_path):
    proc = _run(checkpoints("llama", "base"), tmp_path / "c", "--budget", "1")
    assert proc.returncode == 0, proc.stderr
    curves = attnspec.CompressResult.load(tmp_path / "c").curves
    assert sorted(curves["method"].unique()) == ["field", "pca", "weights"]
    assert (curves["key_cache_saved"] == 0).all() and (curves["top1_agreement"] == 1).all()
    assert (curves["kl_max"] < 1e-6).all(), curves[["method", "policy", "kl_max"]]
    assert np.allclose(curves["ppl"], curves["ppl_orig"], rtol=1e-5)


def test_budgets_policies_and_files(checkpoints, tmp_path):
    model = checkpoints("qwen2", "base")
    r = attnspec.compress(model, calibrate=[books()[0]], evaluate=[books()[2]], tokenizer=tokenizer(), ctx=48,
                          calibration_windows=4, evaluation_windows=2, budgets=[0.25, 0.75], methods=["pca", "field"],
                          out=tmp_path / "c")
    cfg = json.loads((model / "config.json").read_text())
    L, G = cfg["num_hidden_layers"], cfg["num_key_value_heads"]
    dh = cfg["hidden_size"] // cfg["num_attention_heads"]
    assert len(r.curves) == 2 * 2 * 2 and len(r.heads) == 8 * L * G
    for (policy, budget), rows in r.heads.groupby(["policy", "budget"]):
        per_method = rows.groupby("method")["k"].sum()
        assert per_method.nunique() == 1  # the ranks depend on the policy and budget only
        if policy == "uniform":
            assert (rows["k"] == max(1, round(budget * dh))).all()
        else:
            assert per_method.iloc[0] == round(budget * L * G * dh)
            assert rows["k"].nunique() > 1, "field ranks that all came out equal"
    r75 = r.curves[r.curves.budget == 0.75]
    r25 = r.curves[r.curves.budget == 0.25]
    assert (r75["kl_mean"].to_numpy() < r25["kl_mean"].to_numpy()).all()  # more dimensions, closer model
    summary = r.summary
    assert summary["calibration"]["windows"] == 4 and summary["evaluation"]["windows"] == 2
    assert "disjoint" in summary["conventions"] and "field" in summary["conventions"]["methods"]
    maps, meta = attnspec.projections.load_projections(r.projections)
    assert meta["method"] == "field" and len(maps) == L * G


def test_bad_input_is_one_line_and_status_2(checkpoints, tmp_path):
    model = checkpoints("llama", "base")
    short = tmp_path / "short.txt"
    short.write_text("Too short for a window.")
    cases = {
        "--budget must be in (0, 1]": _run(model, tmp_path / "a", "--budget", "1.5"),
        "--budget must be in (0, 1], got 0": _run(model, tmp_path / "b", "--budget", "0"),
        "must be disjoint": _run(model, tmp_path / "c", evaluate=books()[0]),
        "short.txt": _run(model, tmp_path / "d", calibrate=short),
        "no causal LM head": _run(checkpoints("bert", "base"), tmp_path / "e"),
    }
    for expected, proc in cases.items():
        assert proc.returncode == 2, (expected, proc.stderr)
        assert proc.stderr.count("\n") == 1 and expected in proc.stderr, (expected, proc.stderr)
    assert not any((tmp_path / x).exists() for x in "abcde")
    usage = _run(model, tmp_path / "f", "--calibration-windows", "0")  # the table's minimum, checked by CLI11
    assert usage.returncode == 2 and "--calibration-windows" in usage.stderr
    proc = subprocess.run(["attnspec", "compress", "--model", str(model), "--out", str(tmp_path / "g")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--calibrate" in proc.stderr
