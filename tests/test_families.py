"""attnspec against Hugging Face transformers, family by family.

Oracle: transformers (PyTorch, eager attention) with hooks that capture each layer's normalised
attention input X and post-RoPE queries/keys (hf_oracle.py). For every tiny random checkpoint
(float32 and bfloat16) attnspec must reproduce Q, K and X to 1e-4 relative, and its spectra of
E~ and W_Q^T W_K must match a float64 dense SVD of the matrices built from the oracle's tensors.
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

import attnspec
import hf_oracle
from cli_checks import expect_input_error

N_TOKENS = 40
CASES = [(family, variant) for (family, variant) in hf_oracle.VARIANTS]


def token_ids(n: int = N_TOKENS, vocab: int = 512, seed: int = 7) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed).integers(0, vocab, size=n)]


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Max absolute difference over the max absolute value of the reference."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("family,variant", CASES)
def test_queries_keys_and_inputs_match_transformers(checkpoints, family, variant, dtype):
    path = checkpoints(family, variant, dtype)
    ids = token_ids()
    ref = hf_oracle.capture(path, ids)  # bf16 weights widened to float32 exactly, as attnspec does
    model = attnspec.Model.load(str(path))
    ours = model.capture(ids)
    cfg = model.config
    assert (cfg["layers"], cfg["heads"], cfg["kv_heads"], cfg["head_dim"]) == (
        ref["config"]["n_layers"], ref["config"]["H"], ref["config"]["G"], ref["config"]["d_h"])
    np.testing.assert_allclose(cfg["softmax_scale"], ref["scale"], rtol=1e-12)
    for layer, got in enumerate(ours):
        for name in ("X", "Q", "K"):
            diff = rel_diff(got[name].astype(np.float64), ref[name][layer])
            assert diff < 1e-4, f"{family}/{variant}/{dtype} layer {layer} {name}: relative difference {diff:.2e}"


# attnspec's attention meets blocks of 64 query rows with blocks of 256 keys, the softmax carried
# across key blocks; the 40-token windows above fit in one of each. These take ten query blocks and
# three key blocks, with sliding windows that reach back across both kinds of boundary (and, at 50,
# leave whole key blocks invisible to a row).
LONG_CASES = [
    ("gpt2", "base", {"n_positions": 1024}),  # one query head per key head, learned positions
    ("llama", "gqa4", {}),  # four query heads stacked per key head
    ("mistral", "base", {"sliding_window": 300}),  # a window wider than a key block
    ("gemma2", "base", {"sliding_window": 50}),  # soft-capped logits, sliding and global layers
    ("bert", "base", {"max_position_embeddings": 1024}),  # an encoder: every key visible
]
LONG_TOKENS = 600


@pytest.mark.parametrize("family,variant,overrides", LONG_CASES, ids=[f"{f}-{v}" for f, v, _ in LONG_CASES])
def test_several_query_blocks_match_transformers(checkpoints, family, variant, overrides):
    path = checkpoints(family, variant, "float32", **overrides)
    ids = token_ids(LONG_TOKENS)
    ref = hf_oracle.capture(path, ids)
    for layer, got in enumerate(attnspec.Model.load(str(path)).capture(ids)):
        for name in ("X", "Q", "K"):
            diff = rel_diff(got[name].astype(np.float64), ref[name][layer])
            assert diff < 1e-4, f"{family}/{variant} n {LONG_TOKENS} layer {layer} {name}: relative difference {diff:.2e}"


@pytest.mark.parametrize("family,variant", CASES)
def test_spectra_match_dense_float64_svd(checkpoints, family, variant):
    path = checkpoints(family, variant, "float32")
    ids = token_ids()
    ref = hf_oracle.capture(path, ids)
    blocks = hf_oracle.weight_blocks(path)
    model = attnspec.Model.load(str(path))
    field = model.field_spectra(ids)  # [L, H, min(n, d_h)]
    weights = model.weight_spectra()  # [L, H, d_h]
    c = ref["config"]
    k90_mismatch = []
    for layer in range(c["n_layers"]):
        for h in range(c["H"]):
            g = hf_oracle.kv_head_of(h, c["H"], c["G"])
            dense_e = hf_oracle.field_singular_values(ref["Q"][layer, h], ref["K"][layer, g], ref["scale"][layer])
            dense_m = hf_oracle.weights_singular_values(blocks["Wq"][layer, h], blocks["Wk"][layer, g])
            r = min(len(dense_e), field.shape[2])
            err_e = np.max(np.abs(field[layer, h, :r] - dense_e[:r])) / dense_e[0]
            err_m = np.max(np.abs(weights[layer, h] - dense_m[: c["d_h"]])) / dense_m[0]
            # The weights are bit-identical inputs: agreement is to float64 rounding.
            assert err_m < 1e-10, f"layer {layer} head {h}: W_Q^T W_K differs by {err_m:.2e} sigma_1"
            # The field is built from attnspec's own float32 forward, which differs from PyTorch's
            # by float32 rounding (measured up to ~4e-7 sigma_1 over these checkpoints).
            assert err_e < 1e-6, f"layer {layer} head {h}: E~ differs by {err_e:.2e} sigma_1"
            if hf_oracle.k_tau(field[layer, h], 0.9) != hf_oracle.k_tau(dense_e, 0.9):
                k90_mismatch.append((layer, h))
            assert hf_oracle.k_tau(weights[layer, h], 0.9) == hf_oracle.k_tau(dense_m, 0.9)
    assert not k90_mismatch, f"k90 of E~ differs from the oracle at (layer, head) {k90_mismatch}"


def test_exact_reduction_on_oracle_tensors(checkpoints):
    """The array API on the oracle's own float64 tensors: 1e-6 * sigma_1 is met with room to spare."""
    path = checkpoints("llama", "gqa4")
    ref = hf_oracle.capture(path, token_ids())
    blocks = hf_oracle.weight_blocks(path)
    c = ref["config"]
    for layer in range(c["n_layers"]):
        for h in range(c["H"]):
            g = hf_oracle.kv_head_of(h, c["H"], c["G"])
            dense = hf_oracle.field_singular_values(ref["Q"][layer, h], ref["K"][layer, g], ref["scale"][layer])
            fast = attnspec.energy_field_spectrum(ref["Q"][layer, h], ref["K"][layer, g], scale=ref["scale"][layer])
            assert np.max(np.abs(fast - dense[: len(fast)])) < 1e-6 * dense[0] * 1e-3
            dense_m = hf_oracle.weights_singular_values(blocks["Wq"][layer, h], blocks["Wk"][layer, g])
            fast_m = attnspec.interaction_spectrum(blocks["Wq"][layer, h], blocks["Wk"][layer, g])
            assert np.max(np.abs(fast_m - dense_m[: len(fast_m)])) < 1e-9 * dense_m[0]


def test_sliding_window_changes_later_layers(checkpoints):
    """Mistral's window (8 < 40 tokens) must reach attnspec's forward: without it layer 1 differs."""
    path = checkpoints("mistral", "base")
    ids = token_ids()
    ours = attnspec.Model.load(str(path)).capture(ids)
    no_window = hf_oracle.capture(path, ids, sliding_window=None)
    assert rel_diff(ours[1]["Q"].astype(np.float64), no_window["Q"][1]) > 1e-3


def test_soft_capped_field_spectra_match_transformers(checkpoints):
    """Gemma2 soft-caps its logits (cap * tanh(s q.k / cap)): attnspec reports the pre-cap E~ (the
    fixed *_field spectra, checked above) and the capped field in both conventions, each matching a
    dense float64 SVD of the capped logits built from transformers' own Q, K, scale and cap."""
    path = checkpoints("gemma2", "base")
    ids = token_ids()
    ref = hf_oracle.capture(path, ids)
    model = attnspec.Model.load(str(path))
    assert model.config["attn_softcap"] == 2.0
    unmasked = model.capped_field_spectra(ids)  # [L, H, n]
    causal = model.capped_field_spectra(ids, causal=True)
    field = model.field_spectra(ids)
    c = ref["config"]
    assert unmasked.shape == causal.shape == (c["n_layers"], c["H"], len(ids))
    worst = 0.0
    for layer in range(c["n_layers"]):
        cap, s, window = ref["softcap"][layer], ref["scale"][layer], ref["sliding_window"][layer]
        assert cap == 2.0
        for h in range(c["H"]):
            Qh, Kg = ref["Q"][layer, h], ref["K"][layer, hf_oracle.kv_head_of(h, c["H"], c["G"])]
            dense = hf_oracle.capped_field_singular_values(Qh, Kg, s, cap)
            dense_c = hf_oracle.causal_capped_field_singular_values(Qh, Kg, s, cap, window)
            err = np.max(np.abs(unmasked[layer, h] - dense)) / dense[0]
            err_c = np.max(np.abs(causal[layer, h] - dense_c)) / dense_c[0]
            worst = max(worst, err, err_c)
            assert err < 1e-6 and err_c < 1e-6, f"layer {layer} head {h}: capped field differs by {err:.2e} / {err_c:.2e}"
            assert hf_oracle.k_tau(unmasked[layer, h], 0.9) == hf_oracle.k_tau(dense, 0.9)
            # The cap bites: the capped spectrum is not the pre-cap one, and has more than d_h values.
            pre = hf_oracle.field_singular_values(Qh, Kg, s)
            assert abs(dense[0] - pre[0]) > 1e-2 * pre[0]
            assert dense[c["d_h"]] > 1e-6 * dense[0]
            assert np.max(np.abs(field[layer, h] - pre[: field.shape[2]])) < 1e-6 * pre[0]
    print(f"gemma2 capped field: max |sigma - oracle| / sigma_1 = {worst:.2e}")


def test_capped_columns_in_analyze_output(checkpoints, tmp_path):
    """`attnspec analyze` on a soft-capped model adds the *_field_capped columns (and *_causal_capped
    with --field both) and says so in summary.json; an uncapped model's heads.csv has neither."""
    import csv
    import json

    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(" ".join(map(str, token_ids())))
    for family, capped in [("gemma2", True), ("llama", False)]:
        out = tmp_path / family
        path = checkpoints(family, "base")
        proc = subprocess.run(["attnspec", "analyze", "--model", str(path), "--token-ids", str(ids_file), "--ctx", "40",
                               "--out", str(out), "--field", "both", "--save-spectra"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        with open(out / "heads.csv") as f:
            rows = list(csv.DictReader(f))
        header = rows[0].keys()
        assert ("k90_field_capped" in header) == capped and ("k90_causal_capped" in header) == capped
        summary = json.loads((out / "summary.json").read_text())
        assert ("field_capped" in summary["conventions"]) == capped
        if capped:
            assert summary["model"]["attn_softcap"] == 2.0
            first = json.loads((out / "spectra.jsonl").read_text().splitlines()[0])
            assert len(first["field_capped"]) == 40 and len(first["causal_capped"]) == 40
            assert all(int(r["k90_field_capped"]) >= 1 for r in rows)


# Config fields and tensors of the newer families that attnspec validates before any compute: one
# clear line, exit status 2. (family, variant, config changes or tensor edit, words in the message)
BAD_FAMILY_INPUTS = [
    ("phi3", "base", {"rope_parameters": {"rope_type": "longrope", "rope_theta": 10000.0,
                                          "short_factor": [1.0] * 4, "long_factor": [1.0] * 4}}, ["longrope", "phi3"]),
    ("gemma2", "base", {"layer_types": ["sliding_attention", "chunked_attention", "full_attention", "full_attention"]},
     ["layer_types[1]", "chunked_attention"]),
    ("gemma2", "base", {"use_bidirectional_attention": True}, ["use_bidirectional_attention"]),
    ("gemma2", "base", {"attn_logit_softcapping": -1.0}, ["attn_logit_softcapping"]),
    ("gpt_neox", "base", {"hidden_act": "swish"}, ["hidden_act", "swish"]),
    ("opt", "base", {"activation_function": "tanh"}, ["activation_function", "tanh"]),
    ("gpt_neox", "base", "query_key_value", ["query_key_value", "shape"]),
    ("phi3", "base", "gate_up_proj", ["gate_up_proj", "shape"]),
    ("qwen3", "base", "q_norm", ["q_norm", "missing"]),
    ("opt", "post_ln_project", "project_in", ["project_in", "missing"]),
]


@pytest.mark.parametrize("family,variant,change,words", BAD_FAMILY_INPUTS)
def test_bad_family_inputs_are_one_clear_error(checkpoints, tmp_path, family, variant, change, words):
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    model = tmp_path / "model"
    shutil.copytree(checkpoints(family, variant), model)
    if isinstance(change, dict):
        cfg = json.loads((model / "config.json").read_text())
        cfg.update(change)
        (model / "config.json").write_text(json.dumps(cfg))
    else:  # layer 0's tensor named `change`: truncate a fused weight's rows, or drop the tensor
        tensors = load_file(str(model / "model.safetensors"))
        name = next(k for k in tensors if change in k and (".0." in k or "layers" not in k) and k.endswith("weight"))
        if change in ("q_norm", "project_in"):
            del tensors[name]
        else:
            tensors[name] = tensors[name][:-1].contiguous()
        save_file(tensors, str(model / "model.safetensors"), metadata={"format": "pt"})
    ids = tmp_path / "ids.txt"
    ids.write_text(" ".join(map(str, token_ids(16))))
    out = tmp_path / "out"
    proc = subprocess.run(["attnspec", "analyze", "--model", str(model), "--token-ids", str(ids), "--ctx", "16",
                           "--out", str(out)], capture_output=True, text=True)
    expect_input_error(proc, out, *words)


def test_gemma3_multimodal_sparse_text_config(checkpoints, tmp_path):
    """Published gemma3 configs name only what differs from Gemma3TextConfig's defaults (no heads,
    vocabulary or RoPE fields): attnspec fills in the same defaults, and the legacy rope_theta /
    rope_local_base_freq path gives the same queries and keys as the full config."""
    import json
    import shutil

    src = checkpoints("gemma3", "multimodal")
    model = tmp_path / "model"
    shutil.copytree(src, model)
    cfg = json.loads((model / "config.json").read_text())
    text = cfg["text_config"]
    assert text["num_key_value_heads"] == 1 and text["head_dim"] == 16  # not the defaults: kept
    dropped = {"rope_parameters", "rms_norm_eps", "max_position_embeddings", "rope_theta", "rope_local_base_freq"}
    cfg["text_config"] = {k: v for k, v in text.items() if k not in dropped}
    (model / "config.json").write_text(json.dumps(cfg))
    ids = token_ids()
    ref = hf_oracle.capture(src, ids)
    ours = attnspec.Model.load(str(model))
    assert ours.config["max_positions"] == 131072  # Gemma3TextConfig's default
    assert "theta=1e+06" in ours.config["positions"] and "theta=10000" in ours.config["positions"]
    for layer, got in enumerate(ours.capture(ids)):
        for name in ("Q", "K"):
            diff = rel_diff(got[name].astype(np.float64), ref[name][layer])
            assert diff < 1e-4, f"layer {layer} {name}: relative difference {diff:.2e}"


def test_models_lists_every_family_with_an_oracle_test():
    """`attnspec models` names exactly the families the oracle tests above cover, ten or more."""
    out = subprocess.run(["attnspec", "models"], capture_output=True, text=True, check=True).stdout
    listed = []
    for line in out.splitlines():
        if not line.strip():
            break  # the formats follow the families after a blank line
        listed.append(line.split()[0])
    assert sorted(listed) == sorted(hf_oracle.FAMILIES)
    assert len(listed) >= 10
    assert "gguf" in out and "llama2.c" in out and "safetensors" in out
