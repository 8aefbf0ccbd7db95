"""scripts/quant_noise_floor.py on the real trained stories260K: the decoded checkpoints it writes
hold what gguf-py decodes (W_Q^T W_K spectra against a dense numpy SVD of gguf-py's own
dequantized head blocks), F32 changes nothing, the converter's rules (F16 fallback, F32 tensors,
GPT-2's transposed Conv1D) are followed, and the measured change grows as the bits shrink."""
from __future__ import annotations

import importlib.util
import json

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import TESTS, shared_path
from test_format_llama2c import read_spectra

spec = importlib.util.spec_from_file_location("quant_noise_floor", TESTS.parent / "scripts" / "quant_noise_floor.py")
qnf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qnf)

CTX = 256
TYPES = ["F32", "F16", "BF16", "Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0", "MXFP4"]


def weights_singular_values(wq_h: np.ndarray, wk_g: np.ndarray) -> np.ndarray:
    """The first d_h singular values of the d x d matrix W_Q^(h)T W_K^(g), dense, in float64."""
    m = np.asarray(wq_h, np.float64).T @ np.asarray(wk_g, np.float64)
    return np.linalg.svd(m, compute_uv=False)[: wq_h.shape[0]]


def roundtrip(w: np.ndarray, type_name: str) -> np.ndarray:
    t = gguf.GGMLQuantizationType[type_name]
    return gguf.quants.dequantize(gguf.quants.quantize(w.astype(np.float32), t), t).reshape(w.shape)


@pytest.fixture(scope="module")
def stories():
    model = shared_path("models", "stories260K-hf")
    inputs = [("ids", TESTS.parent / "examples" / "stories260K_story.json")]
    return model, inputs


@pytest.fixture(scope="module")
def measured(stories, tmp_path_factory):
    """{type: result row} and the float baseline of stories260K, decoded checkpoints kept."""
    model, inputs = stories
    work = tmp_path_factory.mktemp("noise")
    base, rows = qnf.measure("stories260K", model, inputs, TYPES, work, ctx=CTX, max_windows=0, threads=1,
                             keep_checkpoints=True, log=lambda *_: None)
    return work, base, {r["type"]: r for r in rows}


def test_gguf_py_quantizes_exactly_these_types():
    can, refused = qnf.quantizable_types()
    assert set(TYPES) <= set(can) and set(can) == set(qnf.TYPES)
    assert {"Q4_K", "Q6_K", "IQ4_NL", "Q8_1"} <= set(refused)
    assert qnf.bits_per_weight("Q4_0") == 4.5 and qnf.bits_per_weight("Q8_0") == 8.5


def test_f32_changes_nothing(stories, measured):
    work, base, rows = measured
    model, _ = stories
    original = load_file(str(model / "model.safetensors"))
    decoded = load_file(str(work / "F32" / "checkpoint" / "model.safetensors"))
    assert decoded.keys() == original.keys()
    for name, t in original.items():
        assert np.array_equal(decoded[name], t), name
    r = rows["F32"]
    assert r["rows"] == base["rows"] == 4 * 5 * 8  # 1024 ids in windows of 256, 5 layers, 8 heads
    for key in ("d_k90_field_mean", "d_k90_field_max", "k90_field_changed", "d_erank_field_rel",
                "d_k90_weights_mean", "d_k90_weights_max", "k90_weights_changed", "d_erank_weights_rel"):
        assert r[key] == 0, key
    assert (work / "F32" / "input0" / "heads.csv").read_bytes() == (work / "float" / "input0" / "heads.csv").read_bytes()


@pytest.mark.parametrize("type_name", ["Q4_0", "Q5_1", "MXFP4", "BF16"])
def test_weights_spectra_are_those_of_gguf_py_decoded_blocks(stories, measured, type_name):
    """attnspec's W_Q^T W_K spectra of the decoded folder against numpy's SVD of the head blocks of
    q_proj/k_proj as gguf-py itself quantizes and dequantizes them (rows of 64 = whole blocks)."""
    work, _, _ = measured
    model, _ = stories
    cfg = json.loads((model / "config.json").read_text())
    H, G, d_h = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    original = load_file(str(model / "model.safetensors"))
    spectra = read_spectra(work / type_name / "input0")
    moved = 0.0
    for layer in range(cfg["num_hidden_layers"]):
        wq = roundtrip(original[f"model.layers.{layer}.self_attn.q_proj.weight"], type_name)
        wk = roundtrip(original[f"model.layers.{layer}.self_attn.k_proj.weight"], type_name)
        wq0 = original[f"model.layers.{layer}.self_attn.q_proj.weight"]
        wk0 = original[f"model.layers.{layer}.self_attn.k_proj.weight"]
        for h in range(H):
            g = h // (H // G)
            expected = weights_singular_values(wq[h * d_h:(h + 1) * d_h], wk[g * d_h:(g + 1) * d_h])
            got = np.array(spectra[(0, layer, h)]["weights"])
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * expected[0])
            float_svals = weights_singular_values(wq0[h * d_h:(h + 1) * d_h], wk0[g * d_h:(g + 1) * d_h])
            moved = max(moved, float(np.max(np.abs(expected - float_svals)) / float_svals[0]))
    assert moved > 1e-4  # the quantization did change the weights the spectra are taken of


def test_converter_fallback_and_float32_rules(stories, measured):
    work, _, rows = measured
    model, _ = stories
    original = load_file(str(model / "model.safetensors"))
    decoded = load_file(str(work / "Q4_0" / "checkpoint" / "model.safetensors"))
    down = "model.layers.0.mlp.down_proj.weight"  # [64, 172]: 172 is not whole blocks of 32 -> F16
    assert original[down].shape == (64, 172)
    assert np.array_equal(decoded[down], original[down].astype(np.float16).astype(np.float32))
    norm = "model.layers.0.input_layernorm.weight"
    assert np.array_equal(decoded[norm], original[norm])
    up = "model.layers.0.mlp.up_proj.weight"  # [172, 64]: rows of 64 quantize
    assert np.array_equal(decoded[up], roundtrip(original[up], "Q4_0"))
    # 5 layers of 3 x 64 x 172 MLP weights: the down projections (a third) fall back to F16
    n2d = sum(t.size for t in original.values() if t.ndim == 2)
    n_down = 5 * 64 * 172
    assert rows["Q4_0"]["not_in_type"] == pytest.approx(n_down / n2d)
    assert rows["Q4_0"]["bpw_2d"] == pytest.approx((n_down * 16 + (n2d - n_down) * 4.5) / n2d)
    assert (work / "Q4_0" / "checkpoint" / "config.json").read_bytes() == (model / "config.json").read_bytes()


def test_gpt2_conv1d_quantized_along_its_input(tmp_path):
    """GPT-2 stores Conv1D weights [in, out]; the converter quantizes the transposed [out, in] rows.
    Position embeddings stay F32; with the ternary types the token embeddings are F16."""
    rng = np.random.default_rng(3)
    src = tmp_path / "gpt2"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    tensors = {
        "transformer.h.0.attn.c_attn.weight": rng.standard_normal((256, 96)).astype(np.float32),
        "transformer.wpe.weight": rng.standard_normal((16, 256)).astype(np.float32),
        "transformer.wte.weight": rng.standard_normal((32, 256)).astype(np.float32),
    }
    save_file(tensors, str(src / "model.safetensors"))
    w = tensors["transformer.h.0.attn.c_attn.weight"]
    qnf.quantize_checkpoint(src, tmp_path / "q4", "Q4_0")
    got = load_file(str(tmp_path / "q4" / "model.safetensors"))
    assert np.array_equal(got["transformer.h.0.attn.c_attn.weight"], roundtrip(w.T, "Q4_0").T)
    assert not np.array_equal(got["transformer.h.0.attn.c_attn.weight"], roundtrip(w, "Q4_0"))
    assert np.array_equal(got["transformer.wpe.weight"], tensors["transformer.wpe.weight"])
    assert np.array_equal(got["transformer.wte.weight"], roundtrip(tensors["transformer.wte.weight"], "Q4_0"))
    info = qnf.quantize_checkpoint(src, tmp_path / "tq", "TQ2_0")
    got = load_file(str(tmp_path / "tq" / "model.safetensors"))
    assert np.array_equal(got["transformer.wte.weight"], tensors["transformer.wte.weight"].astype(np.float16).astype(np.float32))
    assert np.array_equal(got["transformer.h.0.attn.c_attn.weight"], roundtrip(w.T, "TQ2_0").T)
    assert info["not_in_type"] == pytest.approx((16 * 256 + 32 * 256) / (256 * 96 + 16 * 256 + 32 * 256))


def test_change_grows_as_bits_shrink(measured):
    """Measured on stories260K (mean |Δerank|/erank): F16 0, BF16 1e-4, Q8_0 3e-4, Q5_* 2-3e-3,
    Q4_* 5-9e-3; k90 moves by at most 1 and never at 8 bits or more. The chain asserted is the
    coarse one (16 < 8 < 5 < 4 bits), each step a factor of 1.6 or more apart."""
    _, _, rows = measured
    for side in ("field", "weights"):
        rel = {t: rows[t][f"d_erank_{side}_rel"] for t in TYPES}
        assert rel["F32"] == 0
        assert max(rel["F16"], rel["BF16"]) < rel["Q8_0"]
        assert rel["Q8_0"] < min(rel["Q5_1"], rel["Q5_0"])
        assert max(rel["Q5_1"], rel["Q5_0"]) < min(rel["Q4_1"], rel["Q4_0"])
        for t in ("F16", "BF16", "Q8_0"):
            assert rows[t][f"d_k90_{side}_max"] == 0, (t, side)
        for t in TYPES:
            assert rows[t][f"d_k90_{side}_max"] <= 1, (t, side)
            assert rows[t][f"d_median_k90_{side}"] == 0, (t, side)
