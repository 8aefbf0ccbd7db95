"""The torch engine (attnspec.torch, attnspec analyze --engine torch) against two oracles.

* Families the native engine supports: on the same tiny checkpoint and token ids, the torch
  engine's heads.csv and spectra equal the native engine's (itself checked against transformers in
  test_families.py) within the tolerances used there.
* Architectures the native engine does not support (random tiny models from transformers configs):
  every head's spectra equal a float64 dense SVD of E~ built from queries and keys recorded by
  patching the architecture's eager_attention_forward (not through attnspec's capture), and of
  W_Q^T W_K built from the module's weights as the test lays them out.

Also: the model's logits are unchanged while captured; bad input is one InputError (exit 2 and one
line from the command line).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import transformers

import attnspec
import attnspec.torch as ast
import hf_oracle
from conftest import shared_path

CTX = 40
N_WINDOWS = 2


def token_ids(count: int = CTX * N_WINDOWS, vocab: int = 512, seed: int = 11) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed).integers(3, vocab, size=count)]


def cli() -> str:
    """The attnspec command installed with the attnspec package under test (pip puts both under one
    prefix: bin/ beside the package's folder for --target installs), else the one on PATH."""
    beside = Path(attnspec.__file__).resolve().parents[1] / "bin" / "attnspec"
    exe = str(beside) if beside.is_file() else shutil.which("attnspec")
    if exe is None:
        pytest.fail("the attnspec command is not on PATH (pip install ., or put the build's bin/ on PATH)")
    return exe


def load_hf(path, **kwargs):
    config = transformers.AutoConfig.from_pretrained(path)
    auto = transformers.AutoModel if config.model_type in hf_oracle.ENCODERS else transformers.AutoModelForCausalLM
    return auto.from_pretrained(path, dtype=torch.float32, **kwargs).eval()


# ---- (a) every decoder family of the native engine: torch engine == native engine ------------------

NATIVE_CASES = [
    ("gpt2", "base"), ("gpt2", "inv_layer_scale"), ("llama", "gqa4"), ("llama", "llama3_rope"), ("qwen2", "base"),
    ("mistral", "base"), ("qwen3", "bias_window"), ("phi3", "base"), ("gpt_neox", "base"), ("opt", "base"),
    ("opt", "post_ln_project"), ("gemma2", "base"), ("gemma3_text", "base"), ("gemma3", "multimodal"),
]


def test_native_cases_cover_every_decoder_family():
    decoders = {f for f in hf_oracle.FAMILIES if f not in hf_oracle.ENCODERS}
    assert decoders == {f for f, _ in NATIVE_CASES}
    assert set(attnspec._core.supported_families()) - {"bert"} <= decoders


def _int_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("k") or c in ("window", "layer", "head", "kv_head", "n", "rank_causal",
                                                                 "causal_values", "causal_k_exact")]


@pytest.mark.parametrize("family,variant", NATIVE_CASES, ids=[f"{f}-{v}" for f, v in NATIVE_CASES])
def test_torch_engine_equals_native_engine(checkpoints, tmp_path, family, variant):
    path = checkpoints(family, variant)
    ids = token_ids()
    native = attnspec.analyze(path, token_ids=ids, ctx=CTX, field="both", out=tmp_path / "native")
    model = load_hf(path)
    ours = ast.analyze(model, ids, ctx=CTX, field="both", out=tmp_path / "torch")
    assert list(ours.heads.columns) == list(native.heads.columns)
    assert len(ours.heads) == len(native.heads) == N_WINDOWS * native.summary["model"]["layers"] * native.summary["model"]["heads"]
    assert ours.summary["engine"] == "torch" and "engine" in ours.summary["conventions"]
    exact = [c for c in _int_columns(native.heads) if not c.endswith(("_causal", "_capped", "_causal_lower"))]
    pd.testing.assert_frame_equal(ours.heads[exact], native.heads[exact], check_dtype=False)
    # The causal and capped fields are dense SVDs of n x n matrices built from float32 Q and K, which
    # two float32 forward passes give to ~1e-7: their k_tau may move by one at a tie; everything
    # else is compared as numbers.
    for c in native.heads.columns:
        if c in exact:
            continue
        if native.heads[c].dtype == object or str(native.heads[c].dtype).startswith("str"):
            assert list(ours.heads[c]) == list(native.heads[c]), c  # causal_method
            continue
        a, b = ours.heads[c].to_numpy(float), native.heads[c].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), c
        ok = ~np.isnan(b)
        if c.startswith("k"):
            assert np.max(np.abs(a[ok] - b[ok]), initial=0) <= 1, c
        else:
            np.testing.assert_allclose(a[ok], b[ok], rtol=2e-4, atol=1e-9, err_msg=c)
    for key, ref in native.spectra.items():
        got = ours.spectra[key]
        f, fr = np.asarray(got["field"]), np.asarray(ref["field"])
        assert np.max(np.abs(f - fr)) < 1e-6 * fr[0], (key, np.max(np.abs(f - fr)) / fr[0])
        w, wr = np.asarray(got["weights"]), np.asarray(ref["weights"])
        assert np.max(np.abs(w - wr)) < 1e-10 * wr[0], (key, "weights")
        c, cr = np.asarray(got["causal"]), np.asarray(ref["causal"])
        assert np.max(np.abs(c - cr)) < 1e-5 * cr[0], (key, "causal")
        if "field_capped" in ref:
            fc, fcr = np.asarray(got["field_capped"]), np.asarray(ref["field_capped"])
            assert np.max(np.abs(fc - fcr)) < 1e-5 * fcr[0], (key, "field_capped")


def test_bfloat16_checkpoint_equals_native_engine(checkpoints, tmp_path):
    """A bfloat16 checkpoint: both engines widen its weights to float32 exactly."""
    path = checkpoints("qwen2", "base", "bfloat16")
    ids = token_ids()
    native = attnspec.analyze(path, token_ids=ids, ctx=CTX, out=tmp_path / "native")
    ours = ast.analyze(load_hf(path), ids, ctx=CTX, out=tmp_path / "torch")
    exact = [c for c in native.heads.columns if c.startswith("k")]
    pd.testing.assert_frame_equal(ours.heads[exact], native.heads[exact], check_dtype=False)
    for key, ref in native.spectra.items():
        assert np.max(np.abs(ours.spectra[key]["field"] - ref["field"])) < 1e-6 * ref["field"][0], key


def test_texts_with_a_hugging_face_tokenizer(checkpoints, tmp_path):
    """Texts: each window starts with what the tokenizer adds (BOS here), as --text does."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(3, 512)} | {"<unk>": 0, "<s>": 1}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", unk_token="<unk>")
    ids = token_ids()
    model = load_hf(checkpoints("llama", "base"))
    texts = [" ".join(f"w{i}" for i in ids), " ".join(f"w{i}" for i in ids[::-1])]
    got = ast.analyze(model, texts, tokenizer=hf_tok, ctx=CTX, max_windows=3, out=tmp_path / "texts")
    body = CTX - 1
    windows = [[1] + ids[k * body:(k + 1) * body] for k in range(len(ids) // body)]
    windows += [[1] + ids[::-1][:body]]
    want = ast.analyze(model, np.array(windows[:3]), ctx=CTX, out=tmp_path / "ids")
    assert got.summary["windows"] == 3 and got.summary["input"]["prefix_special"] == [1]
    pd.testing.assert_frame_equal(got.heads, want.heads)
    with pytest.raises(attnspec.InputError, match="texts need tokenizer="):
        ast.analyze(model, texts, ctx=CTX)


# ---- (b) architectures the native engine does not support: against hooked Q/K and dense SVDs -------

_SMALL = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
              vocab_size=512, max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0)

OTHER = {
    "olmo2": lambda: transformers.Olmo2Config(**_SMALL),
    "falcon": lambda: transformers.FalconConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=2,
                                                vocab_size=512, max_position_embeddings=128, multi_query=True,
                                                new_decoder_architecture=False, alibi=False, bias=True),
    "falcon_new": lambda: transformers.FalconConfig(hidden_size=64, num_attention_heads=4, num_kv_heads=2,
                                                    num_hidden_layers=2, vocab_size=512, max_position_embeddings=128,
                                                    new_decoder_architecture=True, alibi=False),
    "stablelm": lambda: transformers.StableLmConfig(**_SMALL, partial_rotary_factor=0.25, qk_layernorm=True,
                                                    use_qkv_bias=True),
    "cohere": lambda: transformers.CohereConfig(**_SMALL, use_qk_norm=False),
    "granite": lambda: transformers.GraniteConfig(**_SMALL, attention_multiplier=0.3),
    "mixtral": lambda: transformers.MixtralConfig(**_SMALL, num_local_experts=2, num_experts_per_tok=1, sliding_window=8),
    "qwen2_moe": lambda: transformers.Qwen2MoeConfig(**_SMALL, num_experts=2, num_experts_per_tok=1,
                                                     moe_intermediate_size=32, shared_expert_intermediate_size=32),
    "smollm3": lambda: transformers.SmolLM3Config(**_SMALL),
}


def random_model(config, seed: int = 0, attn_implementation: str = "eager"):
    """A tiny model with weights at scales that make attention non-trivial (as hf_oracle's)."""
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name or ".ln_" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen) if name.endswith("weight")
                        else 0.1 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2:
                gain = 1.6 if any(t in name for t in ("q_proj", "k_proj", "query_key_value", "qkv")) else 1.0
                p.copy_(torch.randn(p.shape, generator=gen) * gain / p.shape[-1] ** 0.5)
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
        for name, p in model.named_parameters():
            if "embed" in name or "word_embeddings" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
    return model


def attention_modules(model) -> list:
    return [m for m in model.modules() if hasattr(m, "layer_idx") and type(m).__name__.endswith("Attention")]


@contextlib.contextmanager
def hooked_eager(model, records: dict):
    """Records (Q, K, scale) in float64 by replacing the architecture's eager_attention_forward (the
    function transformers' eager attention calls; hf_oracle's recorder), independently of attnspec's
    capture."""
    raw: dict = {}
    with hf_oracle._patched_eager_attention(model, raw):
        yield
    for layer, r in raw.items():
        q, k = r["query"][0], r["key"][0]
        scale = r["scaling"] if r["scaling"] is not None else q.shape[-1] ** -0.5
        records[layer] = (q.double().numpy().copy(), k.double().numpy().copy(), float(scale))


def dense_field(Q, K, s):
    E = s * Q @ K.T
    return np.linalg.svd(E - E.mean(axis=1, keepdims=True), compute_uv=False)


def reference_weights(module, H, G, dh) -> tuple[np.ndarray, np.ndarray]:
    """[H, d_h, d] and [G, d_h, d] head blocks (y = W x), read as each architecture stores them."""
    if hasattr(module, "q_proj"):
        wq, wk = module.q_proj.weight, module.k_proj.weight
    elif getattr(module, "new_decoder_architecture", False):  # Falcon: [G, H/G + 2, d_h] rows
        w = module.query_key_value.weight.view(G, H // G + 2, dh, -1)
        wq, wk = w[:, : H // G].reshape(H * dh, -1), w[:, H // G].reshape(G * dh, -1)
    else:  # Falcon multi-query: H query rows, then one key, then one value
        w = module.query_key_value.weight
        wq, wk = w[: H * dh], w[H * dh: (H + 1) * dh]
    d = wq.shape[1]
    return wq.detach().double().numpy().reshape(H, dh, d), wk.detach().double().numpy().reshape(G, dh, d)


@pytest.mark.parametrize("arch", sorted(OTHER))
def test_other_architectures_against_hooked_dense_svd(tmp_path, arch):
    config = OTHER[arch]()
    assert config.model_type not in attnspec._core.supported_families()
    model = random_model(config)
    ids = token_ids(CTX)
    records: dict = {}
    with torch.no_grad(), hooked_eager(model, records):
        model(input_ids=torch.tensor([ids]), use_cache=False)
    result = ast.analyze(model, ids, ctx=CTX, out=tmp_path / arch)
    L = config.num_hidden_layers
    assert sorted(records) == list(range(L)) and len(result.heads) == L * records[0][0].shape[0]
    modules = {m.layer_idx: m for m in attention_modules(model)}
    checked = 0
    for layer in range(L):
        Q, K, s = records[layer]
        H, G, dh = Q.shape[0], K.shape[0], Q.shape[2]
        Wq, Wk = reference_weights(modules[layer], H, G, dh)
        assert result.summary["model"]["softmax_scale"][layer] == pytest.approx(s, rel=1e-12)
        for h in range(H):
            g = h // (H // G)
            got = result.spectra[(0, layer, h)]
            ref = dense_field(Q[h], K[g], s)[: min(CTX, dh)]
            assert np.max(np.abs(np.asarray(got["field"]) - ref)) < 1e-6 * ref[0], (arch, layer, h)
            ref_m = np.linalg.svd(Wq[h].T @ Wk[g], compute_uv=False)[:dh]
            assert np.max(np.abs(np.asarray(got["weights"]) - ref_m)) < 1e-9 * ref_m[0], (arch, layer, h, "weights")
            heads = result.heads
            row = heads[(heads["layer"] == layer) & (heads["head"] == h)].iloc[0]
            assert row["k90_field"] == hf_oracle.k_tau(ref, 0.9) and row["k90_weights"] == hf_oracle.k_tau(ref_m, 0.9)
            assert row["kv_head"] == g
            checked += 1
    assert checked == L * H and ref[0] > 0.1  # a field that is not trivially small


def test_latent_attention_measures_the_field_and_refuses_the_weights(tmp_path):
    """DeepSeek-V3's multi-head latent attention: E~ is defined (keys per head, after the shared RoPE
    part), W_Q^T W_K is not one product; its columns are nan with the reason in summary.json."""
    config = transformers.DeepseekV3Config(
        hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=16,
        v_head_dim=16, n_routed_experts=2, num_experts_per_tok=1, first_k_dense_replace=1, n_group=1, topk_group=1,
        vocab_size=512, max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = random_model(config)
    ids = token_ids(CTX)
    records: dict = {}
    with torch.no_grad(), hooked_eager(model, records):
        model(input_ids=torch.tensor([ids]), use_cache=False)
    result = ast.analyze(model, ids, ctx=CTX, out=tmp_path / "mla")
    assert result.heads["k90_weights"].isna().all() and result.heads["erank_weights"].isna().all()
    assert result.heads["gap_k90"].isna().all()
    assert "latent" in result.summary["conventions"]["weights_undefined"]
    assert result.heads["k90_field"].between(1, 24).all()
    for layer in range(2):
        Q, K, s = records[layer]
        for h in range(Q.shape[0]):
            ref = dense_field(Q[h], K[h * K.shape[0] // Q.shape[0]], s)[: Q.shape[2]]
            got = np.asarray(result.spectra[(0, layer, h)]["field"])
            assert np.max(np.abs(got - ref)) < 1e-6 * ref[0]
            assert len(result.spectra[(0, layer, h)]["weights"]) == 0


# ---- (c) the model computes what it computes without capture ---------------------------------------

@pytest.mark.parametrize("case", ["llama-sdpa", "gemma2-eager", "mistral-sdpa", "falcon-eager", "gpt2reorder-eager"])
def test_logits_unchanged_with_capture(checkpoints, tmp_path, case):
    name, impl = case.split("-")
    if name == "falcon":
        model = random_model(OTHER["falcon"](), attn_implementation=impl)
    elif name == "gpt2reorder":  # GPT-2's eager attention has its own path for this flag
        model = load_hf(checkpoints("gpt2", "base", reorder_and_upcast_attn=True), attn_implementation=impl)
    else:
        model = load_hf(checkpoints(name, "base"), attn_implementation=impl)
    ids = torch.tensor([token_ids(CTX)])
    with torch.no_grad():
        before = model(input_ids=ids, use_cache=False).logits
    seen = []
    with torch.no_grad(), ast.capture(model, lambda layer, *rest: seen.append(layer)):
        assert model.config._attn_implementation == "attnspec_capture_" + impl
        during = model(input_ids=ids, use_cache=False).logits
    assert seen == list(range(model.config.get_text_config().num_hidden_layers))
    assert torch.equal(before, during)
    ast.analyze(model, ids[0], ctx=CTX, field="both", out=tmp_path / "run")
    assert model.config._attn_implementation == impl
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, use_cache=False).logits, before)


# ---- (3) the command line and attnspec.analyze(engine="torch") --------------------------------------

def test_command_line_engine_torch(checkpoints, tmp_path):
    path = checkpoints("qwen2", "base")
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps(token_ids()))
    out = tmp_path / "cli"
    proc = subprocess.run([cli(), "analyze", "--engine", "torch", "--device", "cpu", "--model", str(path), "--token-ids",
                           str(ids_file), "--ctx", str(CTX), "--out", str(out), "--save-spectra", "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in ("heads.csv", "head_summary.csv", "spectra.jsonl", "summary.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engine"] == "torch" and summary["torch"]["device"] == "cpu" and summary["torch"]["dtype"] == "float32"
    assert summary["input"]["token_ids"] == str(ids_file) and summary["windows"] == N_WINDOWS
    # In process, on the model loaded the same way: the same bytes.
    py = attnspec.analyze(path, token_ids=ids_file, ctx=CTX, engine="torch", device="cpu", out=tmp_path / "py")
    assert (out / "heads.csv").read_text() == (py.out_dir / "heads.csv").read_text()
    native = attnspec.analyze(path, token_ids=ids_file, ctx=CTX, out=tmp_path / "native")
    assert list(py.heads["k90_field"]) == list(native.heads["k90_field"])
    report = subprocess.run([cli(), "report", str(out), "--out", str(tmp_path / "report")], capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "report.html").is_file()
    models = subprocess.run([cli(), "models"], capture_output=True, text=True, check=True).stdout
    assert "--engine torch" in models
    # --dtype: the model runs in it, and summary.json says so.
    bf = subprocess.run([cli(), "analyze", "--engine", "torch", "--dtype", "bfloat16", "--model", str(path),
                         "--token-ids", str(ids_file), "--ctx", str(CTX), "--out", str(tmp_path / "bf16"), "--quiet"],
                        capture_output=True, text=True)
    assert bf.returncode == 0, bf.stderr
    s = json.loads((tmp_path / "bf16" / "summary.json").read_text())
    assert s["torch"]["dtype"] == "bfloat16" and "bfloat16" in s["conventions"]["engine"]
    # --device cuda: used where PyTorch has CUDA, one line where it does not.
    dev = subprocess.run([cli(), "analyze", "--engine", "torch", "--device", "cuda", "--model", str(path),
                          "--token-ids", str(ids_file), "--ctx", str(CTX), "--out", str(tmp_path / "cuda"), "--quiet"],
                         capture_output=True, text=True)
    if torch.cuda.is_available():
        assert dev.returncode == 0 and json.loads((tmp_path / "cuda" / "summary.json").read_text())["torch"]["device"].startswith("cuda")
    else:
        assert dev.returncode == 2 and dev.stderr == "attnspec: error: --device cuda: this PyTorch sees no CUDA device\n"
        assert not (tmp_path / "cuda").exists()


def test_command_line_text_uses_attnspecs_windows(checkpoints, tmp_path):
    """--text: attnspec's own tokenizer and windows (its BOS starts every window), as the native engine."""
    path = checkpoints("llama", "gqa4")  # vocabulary 512, as the stories260K tokenizer's
    tok = shared_path("models", "stories260K", "tok512.bin")
    text = shared_path("corpus", "pg84.txt")
    common = ["--tokenizer", str(tok), "--text", str(text), "--ctx", str(CTX), "--max-windows", "2", "--quiet"]
    native = attnspec.analyze(path, text=text, tokenizer=tok, ctx=CTX, max_windows=2, out=tmp_path / "native")
    proc = subprocess.run([cli(), "analyze", "--engine", "torch", "--model", str(path), "--out", str(tmp_path / "torch")]
                          + common, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ours = attnspec.AnalysisResult.load(tmp_path / "torch")
    assert ours.summary["input"] == native.summary["input"] and ours.summary["input"]["prefix_special"] == [1]
    assert list(ours.heads["k90_field"]) == list(native.heads["k90_field"])


# ---- (d) bad input: one clear message --------------------------------------------------------------

def test_attention_outside_the_interface_is_refused(checkpoints):
    model = load_hf(checkpoints("llama", "base"))

    def own_forward(self, hidden_states, position_embeddings=None, attention_mask=None, **kwargs):
        b, n, _ = hidden_states.shape
        shape = (b, n, -1, self.head_dim)
        q = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        k = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        v = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(o.transpose(1, 2).reshape(b, n, -1)), None

    for layer in model.model.layers:
        layer.self_attn.forward = types.MethodType(own_forward, layer.self_attn)
    with pytest.raises(attnspec.InputError, match=r"no attention layer of LlamaForCausalLM called transformers' "
                                                  r"AttentionInterface \(its attention modules: LlamaAttention\)"):
        ast.analyze(model, token_ids(CTX), ctx=CTX)


def test_encoder_is_refused(checkpoints, tmp_path):
    path = checkpoints("bert", "base")
    with pytest.raises(attnspec.InputError, match="attends bidirectionally .*BertSelfAttention.is_causal is False"):
        ast.analyze(load_hf(path), token_ids(CTX), ctx=CTX, out=tmp_path / "py")
    assert not (tmp_path / "py").exists()
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps(token_ids()))
    proc = subprocess.run([cli(), "analyze", "--engine", "torch", "--model", str(path), "--token-ids", str(ids_file),
                           "--ctx", str(CTX), "--out", str(tmp_path / "cli")], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "attends bidirectionally" in proc.stderr and not (tmp_path / "cli").exists()


def test_context_beyond_positions_is_one_message(checkpoints, tmp_path):
    path = checkpoints("gpt2", "base")  # 128 learned positions
    ids = token_ids(400)
    with pytest.raises(attnspec.InputError) as caught:
        ast.analyze(load_hf(path), ids, ctx=200, out=tmp_path / "py")
    assert "--ctx 200 exceeds max_position_embeddings 128" in str(caught.value)
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps(ids))
    proc = subprocess.run([cli(), "analyze", "--engine", "torch", "--model", str(path), "--token-ids", str(ids_file),
                           "--ctx", "200", "--out", str(tmp_path / "cli")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip() == "attnspec: error: " + str(caught.value)
    assert not (tmp_path / "cli").exists() and not (tmp_path / "py").exists()
    with pytest.raises(attnspec.InputError, match="token id 600 .* outside the model's vocabulary of 512"):
        ast.analyze(load_hf(path), [5] * 10 + [600] + [5] * 29, ctx=CTX)
    with pytest.raises(attnspec.InputError, match="does not compute --data-side"):
        attnspec.analyze(path, token_ids=ids_file, ctx=CTX, engine="torch", data_side=True)
