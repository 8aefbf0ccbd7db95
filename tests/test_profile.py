"""`attnspec analyze --profile` and the FLOP counts behind it: each stage's arithmetic against a count
made here from the checkpoint's own tensors and transformers' config (which layers slide, by how much)."""
import json
import re
import subprocess
import threading

import numpy as np
import pytest
from safetensors.numpy import load_file

from attnspec import _core
from conftest import shared_path


def expected_flops(path, n: int) -> dict:
    """FLOPs of a forward to the last layer (the last only projecting Q and K), counted from the
    stored weights (2 per weight per token) and from a mask built here from the config."""
    cfg = json.loads((path / "config.json").read_text())
    tensors = load_file(str(path / "model.safetensors"))
    L = cfg["num_hidden_layers"]
    H, dh = cfg["num_attention_heads"], cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    # Mistral's config has no layer_types: its sliding_window holds on every layer.
    slides = cfg.get("sliding_window") and cfg.get("use_sliding_window", True)
    types = cfg.get("layer_types") or ["sliding_attention" if slides else "full_attention"] * L
    out = dict(qkv=0.0, attention=0.0, out_proj=0.0, mlp=0.0)
    for l in range(L):
        w = lambda name: tensors[f"model.layers.{l}.{name}.weight"].size
        last = l == L - 1
        out["qkv"] += 2 * n * (w("self_attn.q_proj") + w("self_attn.k_proj") + (0 if last else w("self_attn.v_proj")))
        if last:
            break
        i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        visible = j <= i
        if types[l] == "sliding_attention":
            visible &= i - j < cfg["sliding_window"]
        out["attention"] += 2 * 2 * H * dh * visible.sum()
        out["out_proj"] += 2 * n * w("self_attn.o_proj")
        out["mlp"] += 2 * n * (w("mlp.gate_proj") + w("mlp.up_proj") + w("mlp.down_proj"))
    return out


@pytest.mark.parametrize("family,variant", [("qwen3", "bias_window"), ("mistral", "base"), ("llama", "gqa4")])
def test_forward_flops_count_the_weights_and_the_visible_pairs(checkpoints, family, variant):
    path = checkpoints(family, variant)
    model = _core.Model.load(str(path))
    for n in (1, 7, 40):
        got = model.forward_flops(n)
        want = expected_flops(path, n)
        for stage, value in want.items():
            assert got[stage] == pytest.approx(value, rel=1e-12), (stage, n)
        assert got["head"] == 0 and got["total"] == pytest.approx(sum(want.values()), rel=1e-12)


def test_forward_profile_times_one_forward(checkpoints):
    model = _core.Model.load(str(checkpoints("llama", "base")))
    p = model.forward_profile(list(range(3, 40)))
    parts = sum(v for k, v in p["seconds"].items() if k != "total")
    assert all(v >= 0 for v in p["seconds"].values())
    assert 0 < parts <= p["seconds"]["total"]
    assert p["flops"]["total"] == model.forward_flops(37)["total"]


def test_profile_prints_each_stage(tmp_path):
    model = shared_path("models", "stories260K-hf")
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps(list(range(1, 129))))
    p = subprocess.run(["attnspec", "analyze", "--model", str(model), "--token-ids", str(ids), "--ctx", "64",
                        "--threads", "1", "--quiet", "--profile", "--out", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    head = re.match(r"attnspec: profile of 2 windows on 1 thread; this machine's sgemm: ([\d.]+) GFLOP/s", lines[0])
    assert head and float(head.group(1)) > 0, lines[0]
    rows = {}
    for line in lines[2:]:
        name, rest = line[:36].strip(), line[36:].split()
        rows[name] = [float(x.rstrip("%")) for x in rest]
    stages = ["load (open, check, map)", "embeddings and dequantization", "Q, K, V products", "RoPE", "norms",
              "attention (scores, softmax, P V)", "output projection", "MLP", "forward, all stages",
              "W_Q^T W_K spectra", "field spectra and metrics", "output files and the rest", "total"]
    assert list(rows) == stages
    forward = ["embeddings and dequantization", "Q, K, V products", "RoPE", "norms",
               "attention (scores, softmax, P V)", "output projection", "MLP"]
    assert sum(rows[s][0] for s in forward) == pytest.approx(rows["forward, all stages"][0], abs=0.002)
    assert rows["total"][1] == 100.0
    # The GFLOP column of the whole forward: two windows of 64 tokens, counted as forward_flops does.
    flops = _core.Model.load(str(model)).forward_flops(64)["total"] * 2
    assert rows["forward, all stages"][2] == pytest.approx(flops / 1e9, abs=0.006)
    assert (tmp_path / "out" / "heads.csv").exists()


def test_widened_weights_are_kept_across_forwards(checkpoints):
    """A bfloat16 checkpoint far below a quarter of the memory: the first forward widens its
    weights to float32, every later one (the next window) reuses those copies, bit for bit, also
    when two threads start on a fresh model at once."""
    path = checkpoints("llama", "base", "bfloat16")
    ids = list(range(3, 40))
    model = _core.Model.load(str(path))
    first = model.forward_profile(ids)
    assert first["widened_bytes"] > 0
    assert model.forward_profile(ids)["widened_bytes"] == 0
    # The projections of every layer are among what was widened (bfloat16 -> 4 bytes per weight).
    cfg = json.loads((path / "config.json").read_text())
    d, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    assert first["widened_bytes"] >= 4 * L * d * d  # at least Q's weights of every layer

    want = [layer["Q"] for layer in _core.Model.load(str(path)).capture(ids)]
    fresh = _core.Model.load(str(path))
    got = [None, None]

    def run(i):
        got[i] = [layer["Q"] for layer in fresh.capture(ids)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g in got:
        assert len(g) == len(want) and all(np.array_equal(a, b) for a, b in zip(g, want))
