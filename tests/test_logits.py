"""attnspec's next-token logits against Hugging Face transformers.

`Model.logits(ids)` runs every layer and then the output side (final norm, OPT's project_out, the
LM head or the token embedding it is tied to, Gemma2's final soft-cap). Oracle: transformers'
*ForCausalLM in eager attention and float32 on the same ids, for every decoder variant of the
oracle (tests/hf_oracle.py; float32, and bfloat16 for two families), for GGUF files written as
llama.cpp's converter writes them (against transformers on the values they decode to, and on
transformers' own GGUF loader), and for the real stories260K, as safetensors and as its llama2.c
original. Tolerance as for Q and K in test_families.py: max |ours - transformers| over the largest
|transformers| logit below 1e-4. A model without a head (an encoder, a base model saved without
one) is one clear InputError, and still loads for analyze as before.
"""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import hf_oracle
from attnspec import _core
from conftest import TESTS, shared_path
from gguf_writer import write_gguf
from test_families import rel_diff, token_ids

DECODERS = [(family, variant) for (family, variant) in hf_oracle.VARIANTS if family not in hf_oracle.ENCODERS]
TOLERANCE = 1e-4  # relative to the largest logit, as the Q/K tests


def hf_logits(model) -> np.ndarray:
    """[n, vocab] float64 logits of a loaded transformers model on `ids` (batch 1, no cache)."""
    def run(ids):
        with torch.no_grad():
            out = model(input_ids=torch.tensor([list(ids)], dtype=torch.long), use_cache=False)
        return out.logits[0].to(torch.float64).numpy()
    return run


def transformers_logits(path, ids, **config_overrides) -> np.ndarray:
    """transformers' *ForCausalLM logits of checkpoint folder `path`, eager attention, float32."""
    return hf_logits(hf_oracle.load_model(path, dtype=torch.float32, **config_overrides))(ids)


def compare(ours: np.ndarray, theirs: np.ndarray, what: str) -> float:
    assert ours.dtype == np.float32 and ours.shape == theirs.shape, (what, ours.dtype, ours.shape, theirs.shape)
    diff = rel_diff(ours.astype(np.float64), theirs)
    print(f"logits {what}: max |diff| {np.max(np.abs(ours - theirs)):.3g}, relative {diff:.3g}, "
          f"largest |logit| {np.max(np.abs(theirs)):.3g}")
    assert diff < TOLERANCE, f"{what}: logits differ from transformers by {diff:.2e} of the largest"
    return diff


@pytest.mark.parametrize("family,variant", DECODERS)
def test_logits_match_transformers(checkpoints, family, variant):
    path = checkpoints(family, variant)
    ids = token_ids()
    ours = _core.Model.load(str(path)).logits(ids)
    assert ours.shape == (len(ids), 512)
    compare(ours, transformers_logits(path, ids), f"{family}/{variant} float32")


@pytest.mark.parametrize("family,variant", [("gemma2", "base"), ("gpt_neox", "base")])
def test_bfloat16_logits_match_transformers(checkpoints, family, variant):
    # The bf16 weights widened to float32 exactly on both sides, as in the Q/K tests.
    path = checkpoints(family, variant, "bfloat16")
    ids = token_ids()
    compare(_core.Model.load(str(path)).logits(ids), transformers_logits(path, ids), f"{family}/{variant} bfloat16")


def test_each_part_of_the_output_side_counts(checkpoints):
    """The pieces the comparisons above rest on do bite on these checkpoints: without Gemma2's final
    soft-cap (30) or with an untied head replaced by the embedding, transformers' logits move far
    beyond the tolerance, so a reader that skipped either would fail above."""
    ids = token_ids()
    gemma = checkpoints("gemma2", "base")
    ours = _core.Model.load(str(gemma)).logits(ids)
    assert _core.Model.load(str(gemma)).config["final_softcap"] == 30.0
    assert np.max(np.abs(ours)) < 30.0
    assert rel_diff(ours.astype(np.float64), transformers_logits(gemma, ids, final_logit_softcapping=None)) > 100 * TOLERANCE
    untied = checkpoints("llama", "gqa4")
    assert not _core.Model.load(str(untied)).config["tie_word_embeddings"]
    ours = _core.Model.load(str(untied)).logits(ids)
    model = hf_oracle.load_model(untied, dtype=torch.float32)
    model.lm_head.weight = model.model.embed_tokens.weight
    assert rel_diff(ours.astype(np.float64), hf_logits(model)(ids)) > 100 * TOLERANCE


# --- GGUF ---------------------------------------------------------------------------------------

# (family, variant, overrides): GGUF files of tied and untied heads, GPT-2's LayerNorm with bias
# and Gemma's 1 + w final norm (Gemma 3 made global every sixth layer, as llama.cpp does; its
# converter drops lm_head, so the file and its decoded reference are tied). GGUF has no key for
# GPT-2's scale_attn_by_inverse_layer_idx, so the untied GPT-2 is the base one untied.
GGUF_MODELS = [("llama", "gqa4", {}), ("llama", "base", {}), ("gpt2", "base", {}), ("gpt2", "base", {"tie_word_embeddings": False}),
               ("gemma3_text", "base", {"num_hidden_layers": 6, "layer_types": ["sliding_attention"] * 5 + ["full_attention"]}),
               ("phi3", "base", {}), ("qwen2", "base", {}), ("qwen2", "head_dim64", {})]


@pytest.mark.parametrize("family,variant,overrides", GGUF_MODELS, ids=[f"{f}-{v}" + ("-untied" if o.get("tie_word_embeddings") is False else "") for f, v, o in GGUF_MODELS])
def test_gguf_logits_match_transformers(checkpoints, tmp_path, family, variant, overrides):
    src = checkpoints(family, variant, **overrides)
    ref_dir = tmp_path / "decoded"
    model = write_gguf(src, tmp_path / "model.gguf", "Q8_0", reference_dir=ref_dir)
    ids = token_ids()
    ours = _core.Model.load(str(model)).logits(ids)
    # Exactly the logits of the safetensors folder holding the values the GGUF tensors decode to.
    decoded = _core.Model.load(str(ref_dir)).logits(ids)
    assert np.array_equal(ours, decoded)
    reference = json.loads((ref_dir / "config.json").read_text())
    head_stored = "lm_head.weight" in load_file(str(ref_dir / "model.safetensors"))
    assert head_stored != reference.get("tie_word_embeddings", family == "gpt2"), "the reference ties exactly when it has no head"
    assert head_stored == (family != "gemma3_text" and "lm_head.weight" in load_file(str(src / "model.safetensors")))
    compare(ours, transformers_logits(ref_dir, ids), f"gguf {family}/{variant} Q8_0")


# transformers' own GGUF loader (reads fewer keys than llama.cpp writes: these checkpoints stay
# within what both read alike, as in test_format_gguf.py).
GEMMA_256 = {"head_dim": 256, "query_pre_attn_scalar": 256}
LOADER = [("llama", "gqa4", {}), ("qwen2", "base", {}), ("gpt2", "base", {"n_positions": 1024}),
          ("phi3", "base", {"sliding_window": None, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}),
          ("gemma3_text", "base", {**GEMMA_256, "num_hidden_layers": 6, "tie_word_embeddings": True,
                                   "layer_types": ["sliding_attention"] * 5 + ["full_attention"],
                                   "rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                                       "full_attention": {"rope_type": "default", "rope_theta": 1e6}}})]


@pytest.mark.parametrize("family,variant,overrides", LOADER, ids=[f"{f}-{v}" for f, v, _ in LOADER])
def test_gguf_logits_match_transformers_gguf_loader(checkpoints, tmp_path, family, variant, overrides):
    from transformers import AutoModelForCausalLM

    vocab = ([f"t{i}" for i in range(512)], [0.0] * 512)  # transformers sizes the vocabulary from it
    model = write_gguf(checkpoints(family, variant, **overrides), tmp_path / "m.gguf", "Q8_0", spm_vocab=vocab)
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=model.name, dtype=torch.float32,
                                              attn_implementation="eager").eval()
    ids = [int(i) for i in np.random.default_rng(3).integers(3, 512, size=40)]
    compare(_core.Model.load(str(model)).logits(ids), hf_logits(hf)(ids), f"gguf-loader {family}/{variant} Q8_0")


# --- the real stories260K -------------------------------------------------------------------------

def test_stories260k_safetensors_and_llama2c_match_transformers():
    """The trained TinyStories model on 256 ids of its own stories: its safetensors conversion and
    its llama2.c original (classifier shared with the embedding) give transformers' logits, and
    they predict the story far better than chance (ln 512 = 6.24 nats)."""
    hf_dir = shared_path("models", "stories260K-hf")
    bin_file = shared_path("models", "stories260K", "stories260K.bin")
    ids = json.loads((TESTS.parent / "examples" / "stories260K_story.json").read_text())[:256]
    theirs = transformers_logits(hf_dir, ids)
    from_hf = _core.Model.load(str(hf_dir)).logits(ids)
    from_bin = _core.Model.load(str(bin_file)).logits(ids)
    compare(from_hf, theirs, "stories260K safetensors")
    compare(from_bin, theirs, "stories260K llama2.c")
    # The converted lm_head is the embedding the .bin shares: the same logits, bit for bit.
    assert np.array_equal(from_hf, from_bin)

    def nll(logits):
        z = logits[:-1].astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-np.mean(log_p[np.arange(len(ids) - 1), ids[1:]]))

    assert abs(nll(from_bin) - nll(theirs)) < 1e-5
    assert nll(from_bin) < 3.0, nll(from_bin)


# --- models without a head ------------------------------------------------------------------------

def test_encoder_has_no_lm_head(checkpoints):
    path = checkpoints("bert", "base")
    model = _core.Model.load(str(path))
    assert len(model.capture(token_ids(16))) == 3  # it still serves analyze
    with pytest.raises(_core.InputError) as err:
        model.logits(token_ids(16))
    assert str(err.value) == f"{path}: no LM head (bert is an encoder; attnspec reads no masked-LM head)"


def analyze_rows(model, ids_file, out):
    proc = subprocess.run(["attnspec", "analyze", "--model", str(model), "--token-ids", str(ids_file), "--ctx", "16",
                           "--out", str(out), "--quiet", "--save-spectra"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return (out / "heads.csv").read_text(), (out / "spectra.jsonl").read_text()


@pytest.mark.parametrize("how", ["lm_head dropped", "base model"])
def test_headless_checkpoint_loads_for_analyze_and_refuses_logits(checkpoints, tmp_path, how):
    """A checkpoint without its LM head (the head dropped from an untied model, or the base
    LlamaModel saved on its own, names without "model.") analyzes exactly as the full checkpoint
    and refuses logits with one line naming the file and the missing tensor."""
    full = checkpoints("llama", "gqa4")
    headless = tmp_path / "headless"
    if how == "lm_head dropped":
        headless.mkdir()
        (headless / "config.json").write_text((full / "config.json").read_text())
        tensors = load_file(str(full / "model.safetensors"))
        del tensors["lm_head.weight"]
        save_file(tensors, str(headless / "model.safetensors"), metadata={"format": "pt"})
    else:
        hf_oracle.load_model(full).model.save_pretrained(headless, safe_serialization=True)
        assert not any(k.startswith("model.") for k in load_file(str(headless / "model.safetensors")))
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(" ".join(map(str, token_ids(32))))
    assert analyze_rows(headless, ids_file, tmp_path / "headless-run") == analyze_rows(full, ids_file, tmp_path / "full-run")
    with pytest.raises(_core.InputError) as err:
        _core.Model.load(str(headless)).logits(token_ids(16))
    assert str(err.value) == (f"{headless}: no LM head (missing tensor 'lm_head.weight' and tie_word_embeddings is false)")
