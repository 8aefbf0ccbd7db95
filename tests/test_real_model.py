"""A real trained model end to end: ../shared/models/stories260K-hf (TinyStories Llama, 5 layers,
8 heads, 4 KV heads, d_h 8). Oracle: transformers on the same folder, and float64 dense SVDs of
the matrices built from its tensors."""
from __future__ import annotations

import csv
import json
import subprocess

import numpy as np
import pytest

import attnspec
import hf_oracle
from conftest import shared_path

# The README's first input: "Once upon a time, there was a little girl named Lily." (BOS first).
PROMPT_IDS = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426]


@pytest.fixture(scope="module")
def stories():
    return shared_path("models", "stories260K-hf")


def long_stream(n: int = 512) -> list[int]:
    # The prompt repeated after varied filler: real token ids of the model, beyond one short sentence.
    rng = np.random.default_rng(3)
    out = []
    while len(out) < n:
        out += PROMPT_IDS[1:] + [int(t) for t in rng.integers(3, 512, size=9)]
    return [1] + out[: n - 1]


def test_matches_transformers_and_dense_svd(stories):
    ids = long_stream(256)
    ref = hf_oracle.capture(stories, ids)
    blocks = hf_oracle.weight_blocks(stories)
    model = attnspec.Model.load(str(stories))
    ours = model.capture(ids)
    for layer, got in enumerate(ours):
        for name in ("X", "Q", "K"):
            diff = np.max(np.abs(got[name] - ref[name][layer])) / np.max(np.abs(ref[name][layer]))
            assert diff < 1e-4, f"layer {layer} {name}: {diff:.2e}"
    field, weights = model.field_spectra(ids), model.weight_spectra()
    c = ref["config"]
    for layer in range(c["n_layers"]):
        for h in range(c["H"]):
            g = hf_oracle.kv_head_of(h, c["H"], c["G"])
            dense_e = hf_oracle.field_singular_values(ref["Q"][layer, h], ref["K"][layer, g], ref["scale"][layer])
            dense_m = hf_oracle.weights_singular_values(blocks["Wq"][layer, h], blocks["Wk"][layer, g])
            assert np.max(np.abs(field[layer, h] - dense_e)) < 1e-6 * dense_e[0]
            assert np.max(np.abs(weights[layer, h] - dense_m)) < 1e-10 * dense_m[0]
            assert hf_oracle.k_tau(field[layer, h], 0.9) == hf_oracle.k_tau(dense_e, 0.9)


def test_cli_end_to_end(stories, tmp_path):
    ids = long_stream(512)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(" ".join(map(str, ids)))
    out = tmp_path / "run"
    proc = subprocess.run(
        ["attnspec", "analyze", "--model", str(stories), "--token-ids", str(ids_file), "--ctx", "128",
         "--out", str(out), "--save-spectra", "--threads", "2"],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "window 4/4" in proc.stderr  # a progress line per window
    rows = list(csv.DictReader((out / "heads.csv").open()))
    assert len(rows) == 4 * 5 * 8
    assert list(rows[0])[:9] == ["window", "layer", "head", "kv_head", "n", "k90_field", "k90_weights",
                                 "erank_field", "erank_weights"]
    spectra = [json.loads(line) for line in (out / "spectra.jsonl").open()]
    assert len(spectra) == len(rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["family"] == "llama" and summary["windows"] == 4 and summary["ctx"] == 128
    assert "field" in summary["conventions"] and "k_tau" in summary["conventions"]

    # Window 2 (ids[256:384]) against the oracle, through the files.
    ref = hf_oracle.capture(stories, ids[256:384])
    for row, spec in zip(rows, spectra):
        assert (int(row["window"]), int(row["layer"]), int(row["head"])) == (spec["window"], spec["layer"], spec["head"])
        assert int(row["kv_head"]) == spec["kv_head"] == spec["head"] // 2
        assert int(row["k90_field"]) == hf_oracle.k_tau(spec["field"], 0.9)
        assert int(row["k90_weights"]) == hf_oracle.k_tau(spec["weights"], 0.9)
        assert float(row["erank_field"]) == pytest.approx(hf_oracle.erank(spec["field"]), rel=1e-9)
        if spec["window"] == 2:
            layer, h, g = spec["layer"], spec["head"], spec["kv_head"]
            dense = hf_oracle.field_singular_values(ref["Q"][layer, h], ref["K"][layer, g], ref["scale"][layer])
            assert np.max(np.abs(np.array(spec["field"]) - dense)) < 1e-6 * dense[0]
    k90 = sorted(int(r["k90_field"]) for r in rows)
    agg = summary["aggregates"]["k90_field"]
    assert (agg["min"], agg["max"]) == (k90[0], k90[-1])
    assert agg["median"] == pytest.approx(np.median(k90))


def test_python_api_matches_cli(stories, tmp_path):
    ids = long_stream(256)
    result = attnspec.analyze(stories, token_ids=ids, ctx=128, out=tmp_path / "api")
    assert len(result.heads) == 2 * 5 * 8
    assert set(result.spectra) == {(w, l, h) for w in range(2) for l in range(5) for h in range(8)}
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps(ids))
    subprocess.run(["attnspec", "analyze", "--model", str(stories), "--token-ids", str(ids_file), "--ctx", "128",
                    "--out", str(tmp_path / "cli"), "--quiet"], check=True)
    assert (tmp_path / "cli" / "heads.csv").read_text() == (tmp_path / "api" / "heads.csv").read_text()
