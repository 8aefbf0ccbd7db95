"""Self-tests of the transformers oracle (tests/hf_oracle.py).

They prove, independently of attnspec, that what the oracle captures is what the model uses:
the attention output is recomputed in float64 from the captured Q, K, V, scale and an
explicitly stated mask and compared with the module's real output; X is recomputed from the
residual stream; Q/K are recomputed from X, the per-head weight blocks and a numpy RoPE.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import hf_oracle as O

N_TOKENS = 36  # > every sliding window used (8, 12), < every max_position_embeddings
ALL_VARIANTS = sorted(O.VARIANTS)
BF16_VARIANTS = [("gpt2", "base"), ("llama", "head_dim32"), ("qwen2", "base"), ("mistral", "base")]


def _token_ids(n=N_TOKENS, seed=0):
    return [int(t) for t in np.random.default_rng(seed).integers(0, 500, n)]


# --------------------------------------------------------------------------------------------
# Fixtures: every checkpoint is built and captured once per session.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ckpt_root(tmp_path_factory):
    return tmp_path_factory.mktemp("hf_oracle")


@pytest.fixture(scope="session")
def checkpoint(ckpt_root):
    cache = {}

    def get(family, variant, dtype="float32"):
        key = (family, variant, dtype)
        if key not in cache:
            cache[key] = O.make_tiny_checkpoint(
                family, ckpt_root / f"{family}-{variant}-{dtype}", variant=variant, dtype=dtype
            )
        return cache[key]

    return get


@pytest.fixture(scope="session")
def captured(checkpoint):
    """(capture dict, weight_blocks dict, loaded fp32 model) per (family, variant, file dtype)."""
    cache = {}

    def get(family, variant, dtype="float32"):
        key = (family, variant, dtype)
        if key not in cache:
            model = O.load_model(checkpoint(family, variant, dtype))
            cache[key] = (O.capture_model(model, _token_ids()), O.weight_blocks_of(model), model)
        return cache[key]

    return get


# --------------------------------------------------------------------------------------------
# Independent float64 re-implementations
# --------------------------------------------------------------------------------------------


def stated_mask(n, window, causal=True):
    """The mask convention stated for the installed transformers (5.x, masking_utils):
    causal_mask_function: kv_idx <= q_idx; sliding_window_overlay: kv_idx > q_idx - window.
    So key j is visible to query i  iff  j <= i  and  i - j < window  (window counts the query
    itself: each query sees at most `window` keys). An encoder (causal=False) sees every key."""
    i, j = np.indices((n, n))
    if not causal:
        return np.ones((n, n), dtype=bool)
    vis = j <= i
    if window is not None:
        vis &= (i - j) < window
    return vis


def attention_output(cap, wts, layer, window):
    """Attention block output recomputed in float64: masked softmax(s Q K^T) V per head, heads
    concatenated in head order, then the output projection."""
    cfg = cap["config"]
    H, G, n = cfg["H"], cfg["G"], cfg["n"]
    vis = stated_mask(n, window, cfg["causal"])
    heads = []
    for h in range(H):
        g = O.kv_head_of(h, H, G)
        S = cap["scale"][layer] * cap["Q"][layer, h] @ cap["K"][layer, g].T
        if cap["softcap"][layer] is not None:  # Gemma2: cap * tanh(logits / cap) before the mask
            S = cap["softcap"][layer] * np.tanh(S / cap["softcap"][layer])
        S = np.where(vis, S, -np.inf)
        P = np.exp(S - S.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        heads.append(P @ cap["V"][layer, g])
    out = np.concatenate(heads, axis=1) @ wts["Wo"][layer].T
    if wts["bo"] is not None:
        out = out + wts["bo"][layer]
    return out


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def numpy_inv_freq(rope, d_h):
    """RoPE inverse frequencies from the config, written from the Llama-3 reference recipe
    (not from transformers' code): wavelengths < orig/high_freq_factor kept, > orig/low_freq_factor
    divided by `factor`, smooth interpolation in between."""
    dim = int(d_h * rope.get("partial_rotary_factor", 1.0))  # partial rotary: the first dims only
    inv = 1.0 / rope["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    if rope.get("rope_type", "default") == "default":
        return inv
    if rope["rope_type"] == "linear":  # positions divided by `factor`
        return inv / rope["factor"]
    assert rope["rope_type"] == "llama3"
    factor, lo, hi = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
    old = rope["original_max_position_embeddings"]
    wavelen = 2 * np.pi / inv
    smooth = (old / wavelen - lo) / (hi - lo)
    out = (1 - smooth) * inv / factor + smooth * inv
    out = np.where(wavelen < old / hi, inv, out)
    out = np.where(wavelen > old / lo, inv / factor, out)
    return out


def numpy_rope(x, inv_freq):
    """Rotate [n, d_h] rows by position (HF 'rotate_half' layout over the first r = 2 len(inv_freq)
    dims: i and i + r/2 pair up; dims past r, partial rotary's pass-through, are left alone)."""
    n, d_h = x.shape
    r = 2 * len(inv_freq)
    ang = np.arange(n, dtype=np.float64)[:, None] * inv_freq[None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    a, b = x[:, : r // 2], x[:, r // 2 : r]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin, x[:, r:]], axis=1)


def rms_norm(x, w, eps, plus_one=False):
    """RMSNorm over the last axis, times w (Gemma: 1 + w)."""
    y = x / np.sqrt((x**2).mean(axis=-1, keepdims=True) + eps)
    return y * ((1.0 + w) if plus_one else w)


def layer_rope(cfg, layer_type):
    """The RoPE parameters of a layer (Gemma3: per layer type) with partial_rotary_factor."""
    rope = cfg["rope_parameters"]
    if "full_attention" in rope:
        rope = rope[layer_type or "full_attention"]
    return rope


def project(X, W, b):
    """Rows of X W^T + b (b may be None)."""
    y = X @ W.T
    return y if b is None else y + b


# --------------------------------------------------------------------------------------------
# The capture is what the model uses
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family,variant", ALL_VARIANTS)
def test_attention_output_recomputed(captured, family, variant):
    """Q, K, V, scale and the stated mask reproduce every layer's attention output (fp32 model)."""
    cap, wts, _ = captured(family, variant)
    for layer in range(cap["config"]["n_layers"]):
        ref = attention_output(cap, wts, layer, cap["sliding_window"][layer])
        assert rel_err(ref, cap["attn_out"][layer]) < 1e-4, (family, variant, layer)


@pytest.mark.parametrize("family,variant", ALL_VARIANTS)
def test_model_mask_matches_stated_convention(captured, family, variant):
    """The additive mask transformers built equals stated_mask (pins the window convention)."""
    cap, _, _ = captured(family, variant)
    n = cap["config"]["n"]
    for layer in range(cap["config"]["n_layers"]):
        np.testing.assert_array_equal(cap["visible"][layer],
                                      stated_mask(n, cap["sliding_window"][layer], cap["config"]["causal"]))


@pytest.mark.parametrize("family,variant", ALL_VARIANTS)
def test_X_is_norm_of_layer_input(captured, family, variant):
    """X[l] equals the pre-attention norm applied (in float64) to the hidden state entering layer l
    (post-LN OPT: X[l] is that hidden state itself; post-LN encoders: the LayerNorm'd embeddings
    for layer 0, then each block's output)."""
    cap, _, model = captured(family, variant)
    if family in O.ENCODERS:
        _check_encoder_inputs(cap, model)
        return
    for layer, block in enumerate(O._layers(model)):
        _, norm = O._attn_and_norm(block, family)
        h = cap["resid"][layer]
        if not O.pre_norm(model):
            ref = h
        elif family in ("gpt2", "gpt_neox", "opt"):  # LayerNorm
            mu = h.mean(axis=1, keepdims=True)
            var = ((h - mu) ** 2).mean(axis=1, keepdims=True)
            ref = (h - mu) / np.sqrt(var + norm.eps) * norm.weight.detach().double().numpy() + norm.bias.detach().double().numpy()
        else:  # RMSNorm; Gemma's multiplies by (1 + w)
            eps = norm.eps if family in O.GEMMA_FAMILIES else norm.variance_epsilon
            ref = rms_norm(h, norm.weight.detach().double().numpy(), eps, plus_one=family in O.GEMMA_FAMILIES)
        assert rel_err(ref, cap["X"][layer]) < 1e-5, (family, variant, layer)
    # Layer 0's input is the embedding (plus learned positions): nothing hides before it.
    ids = torch.tensor([_token_ids()])
    emb = model.get_input_embeddings()(ids)[0].detach().double().numpy()
    n = len(ids[0])
    if family == "gpt2":
        emb = emb + model.transformer.wpe.weight[:n].detach().double().numpy()
    if family in O.GEMMA_FAMILIES:  # the embedding module already multiplied by sqrt(d)
        raw = model.get_input_embeddings().weight[ids[0]].detach().double().numpy()
        np.testing.assert_allclose(emb, raw * math.sqrt(cap["config"]["d"]), rtol=1e-6)
    if family == "opt":  # project_in (when narrower), then positions from row 2 on
        decoder = model.model.decoder
        if decoder.project_in is not None:
            emb = emb @ decoder.project_in.weight.detach().double().numpy().T
        emb = emb + decoder.embed_positions.weight[2 : n + 2].detach().double().numpy()
    assert rel_err(emb, cap["resid"][0]) < 1e-6


def layer_norm(h, norm):
    mu = h.mean(axis=1, keepdims=True)
    var = ((h - mu) ** 2).mean(axis=1, keepdims=True)
    return (h - mu) / np.sqrt(var + norm.eps) * norm.weight.detach().double().numpy() + norm.bias.detach().double().numpy()


def _check_encoder_inputs(cap, model):
    """BERT: layer 0 reads LayerNorm(word + position + token type 0); layer l + 1 reads
    LayerNorm(a + MLP(a)) with a = LayerNorm(h + attention(h)), recomputed in float64."""
    emb = model.embeddings
    ids = torch.tensor([_token_ids()])
    n = ids.shape[1]
    summed = (emb.word_embeddings(ids)[0].detach().double().numpy()
              + emb.position_embeddings.weight[:n].detach().double().numpy()
              + emb.token_type_embeddings.weight[0].detach().double().numpy())
    assert rel_err(layer_norm(summed, emb.LayerNorm), cap["X"][0]) < 1e-5
    np.testing.assert_array_equal(cap["X"], cap["resid"])
    for layer, block in enumerate(O._layers(model)[:-1]):
        a = layer_norm(cap["resid"][layer] + cap["attn_out"][layer], block.attention.output.LayerNorm)
        inter = block.intermediate.dense
        u = a @ inter.weight.detach().double().numpy().T + inter.bias.detach().double().numpy()
        act = model.config.hidden_act
        if act == "gelu":
            g = 0.5 * u * (1 + np.vectorize(math.erf)(u / math.sqrt(2)))
        else:
            g = 0.5 * u * (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u**3)))
        out = block.output.dense
        m = g @ out.weight.detach().double().numpy().T + out.bias.detach().double().numpy()
        assert rel_err(layer_norm(a + m, block.output.LayerNorm), cap["X"][layer + 1]) < 1e-5, layer


@pytest.mark.parametrize("family,variant", ALL_VARIANTS)
def test_QKV_from_weight_blocks(captured, family, variant):
    """Q/K/V are X W^T + b per head block (then, where the family has them, per-head RMSNorm and
    numpy RoPE): this ties weight_blocks (GPT-2's transposed Conv1D, Phi-3's and GPT-NeoX's fused
    layouts) to the captured activations."""
    cap, wts, model = captured(family, variant)
    cfg = cap["config"]
    H, G = cfg["H"], cfg["G"]
    plus_one = family in O.GEMMA_FAMILIES
    bias = lambda name, l, i: None if wts[name] is None else wts[name][l, i]
    for l, block in enumerate(O._layers(model)):
        X = cap["X"][l]
        if family in O.LEARNED_POSITION_FAMILIES:
            rope = lambda x: x
        else:
            inv = numpy_inv_freq(layer_rope(cfg, cap["layer_types"][l]), cfg["d_h"])
            rope = lambda x, inv=inv: numpy_rope(x, inv)
        if family in O.QK_NORM_FAMILIES:
            attn = block.self_attn
            qn, kn = attn.q_norm, attn.k_norm
            eps = qn.eps if plus_one else qn.variance_epsilon
            q_norm = lambda x: rms_norm(x, qn.weight.detach().double().numpy(), eps, plus_one)
            k_norm = lambda x: rms_norm(x, kn.weight.detach().double().numpy(), eps, plus_one)
        else:
            q_norm = k_norm = lambda x: x
        for h in range(H):
            ref = rope(q_norm(project(X, wts["Wq"][l, h], bias("bq", l, h))))
            assert rel_err(ref, cap["Q"][l, h]) < 1e-4, (family, variant, l, h)
        for g in range(G):
            ref = rope(k_norm(project(X, wts["Wk"][l, g], bias("bk", l, g))))
            assert rel_err(ref, cap["K"][l, g]) < 1e-4, (family, variant, l, g)
            ref = project(X, wts["Wv"][l, g], bias("bv", l, g))  # values are not rotated
            assert rel_err(ref, cap["V"][l, g]) < 1e-4, (family, variant, l, g)


@pytest.mark.parametrize("family,variant", ALL_VARIANTS)
def test_scale_and_shapes(captured, family, variant):
    """Softmax scale is 1/sqrt(d_h), divided by (l+1) for gpt2 scale_attn_by_inverse_layer_idx;
    shapes follow the config (d_h from an explicit head_dim where given)."""
    cap, wts, _ = captured(family, variant)
    cfg = cap["config"]
    spec = O.VARIANTS[(family, variant)]
    L, H, G, d_h, d, n = (cfg[k] for k in ("n_layers", "H", "G", "d_h", "d", "n"))
    if "head_dim" in spec:
        assert d_h == spec["head_dim"] != d // H
    else:
        assert d_h == d // H
    inv_layer = spec.get("scale_attn_by_inverse_layer_idx", False)
    base = 1 / math.sqrt(spec.get("query_pre_attn_scalar", d_h))  # Gemma: query_pre_attn_scalar^-0.5
    expected = [base / ((l + 1) if inv_layer else 1) for l in range(L)]
    np.testing.assert_allclose(cap["scale"], expected, rtol=1e-12)
    assert cap["X"].shape == (L, n, d)
    assert cap["Q"].shape == (L, H, n, d_h)
    assert cap["K"].shape == cap["V"].shape == (L, G, n, d_h)
    assert wts["Wq"].shape == (L, H, d_h, d) and wts["Wk"].shape == (L, G, d_h, d)
    assert all(a.dtype == np.float64 for a in (cap["X"], cap["Q"], cap["K"], wts["Wq"], wts["Wk"]))


def test_variant_coverage():
    """VARIANTS spans what attnspec's tests need."""
    shapes = {}
    for (family, variant), spec in O.VARIANTS.items():
        config = O.text_config(O._config_for(family, variant, {}))
        H = config.num_attention_heads
        G = getattr(config, "num_key_value_heads", None) or H
        d_h = getattr(config, "head_dim", None) or config.hidden_size // H
        shapes[(family, variant)] = (H // G, d_h, bool(config.tie_word_embeddings), config.num_hidden_layers)
    assert set(O.FAMILIES) == {f for f, _ in O.VARIANTS}
    assert {r for r, *_ in shapes.values()} >= {1, 2, 4}
    assert min(s[1] for s in shapes.values()) == 16 and max(s[1] for s in shapes.values()) == 64
    assert {s[2] for s in shapes.values()} == {True, False}
    assert max(s[3] for s in shapes.values()) >= 3


def test_biases_are_nonzero(captured):
    """qwen2 q/k/v and gpt2 c_attn biases exist and are non-trivial; llama/mistral have none."""
    for family, variant in [("qwen2", "base"), ("qwen2", "head_dim64"), ("gpt2", "base")]:
        _, wts, _ = captured(family, variant)
        for name in ("bq", "bk", "bv"):
            assert np.std(wts[name]) > 0.1, (family, variant, name)
    for family, variant in [("llama", "base"), ("mistral", "base")]:
        _, wts, _ = captured(family, variant)
        assert wts["bq"] is None and wts["bk"] is None


def test_tied_checkpoints_omit_lm_head(checkpoint):
    """Tied checkpoints store no lm_head.weight; untied ones do (what a loader must handle)."""
    from safetensors import safe_open

    for family, variant in ALL_VARIANTS:
        path = checkpoint(family, variant)
        head = "embed_out.weight" if family == "gpt_neox" else "lm_head.weight"
        with safe_open(str(path / "model.safetensors"), "pt") as f:
            has_head = head in set(f.keys())
        tied = json.loads((path / "config.json").read_text()).get("tie_word_embeddings", True)
        assert has_head == (not tied), (family, variant)


def test_kv_head_of_matches_repeat_kv():
    """kv_head_of reproduces transformers' repeat_kv head mapping."""
    from transformers.models.llama.modeling_llama import repeat_kv

    for H, G in [(4, 4), (4, 2), (8, 2), (8, 1)]:
        kv = torch.arange(G, dtype=torch.float32).reshape(1, G, 1, 1)
        repeated = repeat_kv(kv, H // G).reshape(H).tolist()
        assert repeated == [O.kv_head_of(h, H, G) for h in range(H)]


# --------------------------------------------------------------------------------------------
# Sliding window and rope scaling really take effect
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["base", "head_dim32"])
def test_sliding_window_bites(captured, variant):
    """With window < n the real output matches the windowed recomputation, not the full causal one."""
    cap, wts, _ = captured("mistral", variant)
    window = cap["sliding_window"][0]
    assert window is not None and window < cap["config"]["n"]
    for layer in range(cap["config"]["n_layers"]):
        real = cap["attn_out"][layer]
        assert rel_err(attention_output(cap, wts, layer, window), real) < 1e-4
        assert rel_err(attention_output(cap, wts, layer, None), real) > 1e-2
        # Rows i < window see the same keys either way: identical there.
        full = attention_output(cap, wts, layer, None)
        assert rel_err(full[:window], real[:window]) < 1e-4


def test_sliding_window_override_disables_window(checkpoint, captured):
    """capture(..., sliding_window=None) runs the same weights with a plain causal mask."""
    cap, wts, _ = captured("mistral", "base")
    plain = O.capture(checkpoint("mistral", "base"), _token_ids(), sliding_window=None)
    n = plain["config"]["n"]
    assert plain["sliding_window"] == [None] * plain["config"]["n_layers"]
    np.testing.assert_array_equal(plain["visible"][0], stated_mask(n, None))
    np.testing.assert_array_equal(plain["Q"][0], cap["Q"][0])  # layer 0 inputs are unchanged
    for layer in range(plain["config"]["n_layers"]):
        assert rel_err(attention_output(plain, wts, layer, None), plain["attn_out"][layer]) < 1e-4


def test_llama3_rope_scaling_bites(checkpoint, captured):
    """llama3 scaling keeps some RoPE bands, smooths some and divides the rest by `factor`, and
    changes the queries relative to the same weights with plain RoPE."""
    cap, _, model = captured("llama", "llama3_rope")
    rope = cap["config"]["rope_parameters"]
    d_h = cap["config"]["d_h"]
    assert rope["rope_type"] == "llama3"
    ratio = numpy_inv_freq(rope, d_h) / numpy_inv_freq({"rope_theta": rope["rope_theta"]}, d_h)
    kept, scaled = np.isclose(ratio, 1.0), np.isclose(ratio, 1 / rope["factor"])
    smoothed = ~(kept | scaled)
    assert kept.sum() >= 1 and scaled.sum() >= 1 and smoothed.sum() >= 1, ratio
    # The model's own inverse frequencies agree with the independent recipe.
    np.testing.assert_allclose(
        model.model.rotary_emb.inv_freq.double().numpy(), numpy_inv_freq(rope, d_h), rtol=1e-6
    )

    plain_rope = {"rope_type": "default", "rope_theta": rope["rope_theta"]}
    plain = O.capture(checkpoint("llama", "llama3_rope"), _token_ids(), rope_parameters=plain_rope)
    assert plain["config"]["rope_parameters"]["rope_type"] == "default"
    # Layer 0 sees identical X; RoPE only rotates, so per-position norms agree and position 0
    # (angle 0) is identical, but later queries differ.
    np.testing.assert_allclose(plain["X"][0], cap["X"][0], rtol=0, atol=0)
    Q0, P0 = cap["Q"][0], plain["Q"][0]
    np.testing.assert_allclose(np.linalg.norm(Q0, axis=-1), np.linalg.norm(P0, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(Q0[:, 0], P0[:, 0], rtol=1e-6)
    assert rel_err(Q0[:, 1:], P0[:, 1:]) > 0.1


# --------------------------------------------------------------------------------------------
# bfloat16 checkpoints
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family,variant", BF16_VARIANTS)
def test_bfloat16_checkpoint(checkpoint, captured, family, variant):
    """bf16 files hold BF16 tensors equal to the fp32 weights rounded; they capture in fp32
    (exactly consistent) and in bf16 (close to the fp32 capture)."""
    from safetensors import safe_open

    path = checkpoint(family, variant, "bfloat16")
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        assert all(f.get_slice(k).get_dtype() == "BF16" for k in f.keys())

    cap, wts, _ = captured(family, variant, "bfloat16")
    _, wts32, _ = captured(family, variant)
    rounded = torch.from_numpy(wts32["Wq"]).to(torch.bfloat16).double().numpy()
    np.testing.assert_array_equal(wts["Wq"], rounded)
    for layer in range(cap["config"]["n_layers"]):
        ref = attention_output(cap, wts, layer, cap["sliding_window"][layer])
        assert rel_err(ref, cap["attn_out"][layer]) < 1e-4

    cap16 = O.capture(path, _token_ids(), dtype=torch.bfloat16)
    for key in ("X", "Q", "K"):
        assert cap16[key].dtype == np.float64 and cap16[key].shape == cap[key].shape
        assert np.all(np.isfinite(cap16[key]))
        # bf16 has 8 mantissa bits; layer 0 is a couple of roundings away from fp32.
        assert rel_err(cap16[key][0], cap[key][0]) < 5e-2, key


# --------------------------------------------------------------------------------------------
# Reference spectra and summaries
# --------------------------------------------------------------------------------------------


def test_summaries_on_known_spectra():
    flat = np.ones(4)
    assert O.k_tau(flat, 0.5) == 2 and O.k_tau(flat, 0.9) == 4 and O.k_tau(flat, 1.0) == 4
    assert O.erank(flat) == pytest.approx(4) and O.participation_ratio(flat) == pytest.approx(4)
    assert O.stable_rank(flat) == pytest.approx(4)
    s = np.array([2.0, 1.0])  # c = [0.8, 1.0]
    assert O.k_tau(s, 0.8) == 1 and O.k_tau(s, 0.81) == 2
    p = np.array([2 / 3, 1 / 3])
    assert O.erank(s) == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert O.participation_ratio(s) == pytest.approx(25 / 17)
    assert O.stable_rank(s) == pytest.approx(5 / 4)
    assert O.erank([3.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert O.k_tau(np.zeros(3), 0.9) == 0 and O.erank(np.zeros(3)) == 0.0
    gap = O.spectral_gap(flat, s, 0.9)
    assert gap["k_tau"] == 2 and gap["erank"] == pytest.approx(4 / O.erank(s))


def test_field_spectrum_matches_qr_fast_path(captured):
    """Dense E~ spectrum = s * svals(R1 R2^T) from thin QRs of Q and the position-centred K
    (METRICS.md's exact fast path), agreeing to 1e-10 * sigma_1; rows of E~ sum to zero."""
    cap, _, _ = captured("qwen2", "base")
    with O.single_threaded_blas():
        _check_field_fast_path(cap)


def _check_field_fast_path(cap):
    cfg = cap["config"]
    for l in range(cfg["n_layers"]):
        for h in range(cfg["H"]):
            Qh = cap["Q"][l, h]
            Kg = cap["K"][l, O.kv_head_of(h, cfg["H"], cfg["G"])]
            s = cap["scale"][l]
            dense = O.field_singular_values(Qh, Kg, s)
            assert dense.shape == (cfg["d_h"],) and np.all(np.diff(dense) <= 1e-12)
            _, R1 = np.linalg.qr(Qh)
            _, R2 = np.linalg.qr(Kg - Kg.mean(axis=0))
            fast = s * np.linalg.svd(R1 @ R2.T, compute_uv=False)
            np.testing.assert_allclose(dense, fast, atol=1e-10 * fast[0])
            assert np.abs(O.energy_field(Qh, Kg, s).sum(axis=1)).max() < 1e-9 * dense[0]


def test_weights_spectrum_matches_qr_fast_path(captured):
    """Dense spectrum of M = W_Q^T W_K (d x d, rank <= d_h) equals the d_h x d_h QR-reduced one."""
    _, wts, _ = captured("llama", "gqa4")
    with O.single_threaded_blas():  # multi-threaded OpenBLAS crawls on a busy 2-core box
        _check_weights_fast_path(wts)


def _check_weights_fast_path(wts):
    cfg = wts["config"]
    for l in range(cfg["n_layers"]):
        for h in range(cfg["H"]):
            Wq, Wk = wts["Wq"][l, h], wts["Wk"][l, O.kv_head_of(h, cfg["H"], cfg["G"])]
            dense = O.weights_singular_values(Wq, Wk)
            full = np.linalg.svd(Wq.T @ Wk, compute_uv=False)
            assert dense.shape == (cfg["d_h"],) and full[cfg["d_h"]:].max() < 1e-10 * full[0]
            _, R1 = np.linalg.qr(Wq.T)
            _, R2 = np.linalg.qr(Wk.T)
            fast = np.linalg.svd(R1 @ R2.T, compute_uv=False)
            np.testing.assert_allclose(dense, fast, atol=1e-10 * fast[0])


def test_causal_field_definition():
    """E~c: lower triangle, each row centred over its visible keys, upper triangle zero."""
    rng = np.random.default_rng(1)
    Qh, Kg = rng.normal(size=(10, 4)), rng.normal(size=(10, 4))
    E = 0.5 * Qh @ Kg.T
    Ec = np.zeros_like(E)
    for i in range(10):
        Ec[i, : i + 1] = E[i, : i + 1] - E[i, : i + 1].mean()
    np.testing.assert_allclose(
        O.causal_field_singular_values(Qh, Kg, 0.5), np.linalg.svd(Ec, compute_uv=False), atol=1e-12
    )


def test_checkpoints_are_deterministic_and_variants_differ(tmp_path, captured):
    """Same (family, variant, seed) -> identical weights; variants with equal shapes still differ."""
    a = O.weight_blocks(O.make_tiny_checkpoint("llama", tmp_path / "a", variant="gqa4"))
    _, b, _ = captured("llama", "gqa4")
    np.testing.assert_array_equal(a["Wq"], b["Wq"])
    _, m, _ = captured("mistral", "base")  # same d/H/G/d_h as llama/gqa4
    assert not np.allclose(m["Wq"][0], b["Wq"][0])
    assert Path(tmp_path / "a" / "model.safetensors").exists()
