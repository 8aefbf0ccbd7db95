"""GGUF checkpoints: the tiny transformers checkpoints of the oracle tests, written as llama.cpp's
converter writes them (tests/gguf_writer.py), must give attnspec the same spectra as the
safetensors folders they came from; tokenizers carried in GGUF metadata must give the ids of
Hugging Face `tokenizers`; corrupt files must be refused with one line and exit status 2."""
from __future__ import annotations

import json
import struct
import subprocess

import numpy as np
import pytest

from conftest import shared_path
from cli_checks import attnspec_tokenize, expect_input_error
from gguf_writer import write_gguf, write_tokenizer_gguf
from test_format_llama2c import read_spectra

# (family, variant, config overrides): the overrides keep each checkpoint within what the
# architecture's GGUF metadata can say (llama.cpp scales Gemma 2 queries by 1/sqrt(head_dim) and
# makes every sixth Gemma 3 layer global; its Qwen3 files record no sliding window).
MODELS = [("llama", "base", {}), ("llama", "gqa4", {}), ("llama", "head_dim32", {}), ("mistral", "base", {}),
          ("qwen2", "base", {}), ("qwen3", "base", {}), ("qwen3", "bias_window", {"use_sliding_window": False}),
          ("phi3", "base", {}), ("gemma2", "base", {"query_pre_attn_scalar": 32}),
          ("gemma3_text", "base", {"num_hidden_layers": 6, "layer_types": ["sliding_attention"] * 5 + ["full_attention"]}),
          ("gpt2", "base", {})]
CTX = 32


def analyze(model, ids_file, out):
    proc = subprocess.run(["attnspec", "analyze", "--model", str(model), "--token-ids", str(ids_file), "--ctx", str(CTX),
                           "--out", str(out), "--threads", "1", "--quiet", "--save-spectra"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def spectra_diff(a, b):
    """max over heads and spectra of max_i |sigma_i(a) - sigma_i(b)| / sigma_1(b)."""
    sa, sb = read_spectra(a), read_spectra(b)
    assert sa.keys() == sb.keys() and sa
    worst = 0.0
    for key in sa:
        for kind in ("field", "weights"):
            x, y = np.array(sa[key][kind]), np.array(sb[key][kind])
            assert x.shape == y.shape
            worst = max(worst, float(np.max(np.abs(x - y)) / y[0]))
    return worst


@pytest.fixture(scope="module")
def ids_file(tmp_path_factory):
    f = tmp_path_factory.mktemp("ids") / "ids.json"
    rng = np.random.default_rng(7)
    f.write_text(json.dumps([int(i) for i in rng.integers(3, 512, size=2 * CTX)]))
    return f


# Spectra from GGUF against those of the float32 originals, as max |diff| / sigma_1 over heads:
# measured 0 (F32), <= 7e-4 (F16), <= 3.6e-3 (BF16), <= 9.8e-3 (Q8_0); bounds leave headroom.
TOLERANCE = {"F32": 0.0, "F16": 2e-3, "BF16": 2e-2, "Q8_0": 3e-2}


@pytest.mark.parametrize("family,variant,overrides", MODELS, ids=[f"{f}-{v}" for f, v, _ in MODELS])
@pytest.mark.parametrize("type_name", ["F32", "F16", "BF16", "Q8_0"])
def test_gguf_matches_safetensors(checkpoints, ids_file, tmp_path, family, variant, overrides, type_name, record_property):
    src = checkpoints(family, variant, **overrides)
    ref_dir = tmp_path / "decoded"
    model = write_gguf(src, tmp_path / "model.gguf", type_name, reference_dir=ref_dir)
    run = analyze(model, ids_file, tmp_path / "gguf")
    # Exact: the safetensors folder holding the very float32 values the GGUF tensors decode to.
    exact = spectra_diff(run, analyze(ref_dir, ids_file, tmp_path / "ref"))
    assert exact == 0.0, exact
    # Against the original float32 weights: only the storage rounding.
    drift = spectra_diff(run, analyze(src, ids_file, tmp_path / "orig"))
    record_property("drift", drift)
    print(f"{family}/{variant} {type_name}: vs decoded {exact:.3g}, vs float32 original {drift:.3g}")
    assert drift <= TOLERANCE[type_name], drift
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"]["format"] == "gguf"
    assert summary["model"]["family"] == family


def test_mistral_without_window_key_reads_as_llama(checkpoints, ids_file, tmp_path):
    model = write_gguf(checkpoints("mistral", "base"), tmp_path / "m.gguf", "F32", sliding_window_key=False)
    run = analyze(model, ids_file, tmp_path / "run")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"]["family"] == "llama" and summary["model"]["sliding_window"] == [0, 0, 0]


# --- against transformers' own GGUF loader ----------------------------------------------------

# transformers reads fewer keys than llama.cpp writes (no head_dim for qwen3, no rotary dimension
# for phi3, no soft-cap or query scale for gemma2, no sliding window for llama-arch files, no
# attention_bias for qwen3, whose biases it drops): these
# checkpoints stay within what both read the same way, so the loader is an independent oracle for
# attnspec's reading of every architecture.
GEMMA_256 = {"head_dim": 256, "query_pre_attn_scalar": 256}
ORACLE = [("llama", "gqa4", {}), ("mistral", "base", {"sliding_window": 64}), ("qwen2", "base", {}),
          ("qwen3", "base", {"head_dim": 128}),
          ("phi3", "base", {"sliding_window": None, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}),
          ("gemma2", "base", {**GEMMA_256, "attn_logit_softcapping": 50.0}),
          ("gemma3_text", "base", {**GEMMA_256, "num_hidden_layers": 6,
                                   "layer_types": ["sliding_attention"] * 5 + ["full_attention"],
                                   "rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                                       "full_attention": {"rope_type": "default", "rope_theta": 1e6}}}),
          ("gpt2", "base", {"n_positions": 1024})]


@pytest.mark.parametrize("family,variant,overrides", ORACLE, ids=[f"{f}-{v}" for f, v, _ in ORACLE])
def test_gguf_matches_transformers_gguf_loader(checkpoints, tmp_path, family, variant, overrides):
    import torch
    from transformers import AutoModelForCausalLM

    import attnspec
    import hf_oracle

    # transformers takes the vocabulary size from the tokenizer's token list.
    vocab = ([f"t{i}" for i in range(512)], [0.0] * 512)
    model = write_gguf(checkpoints(family, variant, **overrides), tmp_path / "m.gguf", "Q8_0", spm_vocab=vocab)
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=model.name, dtype=torch.float32,
                                              attn_implementation="eager").eval()
    ids = [int(i) for i in np.random.default_rng(3).integers(3, 512, size=40)]
    hf_oracle.assert_attnspec_matches(hf, attnspec.Model.load(str(model)), ids, qk_tol=2e-5, what=family)  # measured <= 1.9e-6


# --- tokenizers from metadata ------------------------------------------------------------------

def corpus_sample():
    text = shared_path("corpus", "pg1342.txt").read_text(encoding="utf-8")
    return text[20000:50000]


def hf_ids(tokenizer_json, text):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(str(tokenizer_json)).encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("name,kind,pre", [("mistral", "llama", None), ("gpt2", "gpt2", "gpt-2"),
                                           ("qwen2", "gpt2", "qwen2"), ("llama3", "gpt2", "llama-bpe")])
def test_gguf_tokenizer_matches_hf(tmp_path, name, kind, pre):
    folder = shared_path("tokenizers", name)
    gguf_file = write_tokenizer_gguf(folder / "tokenizer.json", tmp_path / f"{name}.gguf", kind, pre)
    examples = [json.loads(line)["text"] for line in (folder / "examples.jsonl").read_text().splitlines()]
    # Two runs (loading a 150k-token vocabulary costs a second or two each): the examples joined
    # by blank lines, and a stretch of a novel.
    for text in ["\n\n".join(examples), corpus_sample()]:
        assert attnspec_tokenize(gguf_file, text, tmp_path) == hf_ids(folder / "tokenizer.json", text), text[:80]


def test_gguf_spm_tokenizer_equals_llama2c(checkpoints, tmp_path):
    """The score-merge encoder serves both: llama2.c's tok512.bin, and the same vocabulary written
    into a GGUF file as SentencePiece pieces (U+2581 for a space). Same ids; and an analyze run
    from text on that GGUF model starts every window with its BOS."""
    from test_format_llama2c import read_tok_bin
    bin_model = shared_path("models", "stories260K", "stories260K.bin")
    pieces, scores = read_tok_bin(bin_model.parent / "tok512.bin")
    spm = ([p.decode("utf-8", errors="surrogateescape").replace(" ", "\u2581") for p in pieces], scores)
    model = write_gguf(checkpoints("llama", "base"), tmp_path / "with_tok.gguf", "Q8_0", spm_vocab=spm)
    text = corpus_sample()[:8000]
    ids = attnspec_tokenize(model, text, tmp_path)
    assert ids == attnspec_tokenize(bin_model, text, tmp_path) and len(ids) > 1000
    f = tmp_path / "t.txt"
    f.write_text(text)
    out = tmp_path / "run"
    proc = subprocess.run(["attnspec", "analyze", "--model", str(model), "--text", str(f), "--ctx", "32",
                           "--max-windows", "2", "--out", str(out), "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input"]["prefix_special"] == [1] and "GGUF" in summary["input"]["tokenizer"]


# --- hostile files ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_gguf(checkpoints, tmp_path_factory):
    return write_gguf(checkpoints("llama", "base"), tmp_path_factory.mktemp("g") / "good.gguf", "Q8_0").read_bytes()


def expect_error(data, tmp_path, ids_file, *words):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(data)
    out = tmp_path / "out"
    proc = subprocess.run(["attnspec", "analyze", "--model", str(bad), "--token-ids", str(ids_file), "--ctx", str(CTX),
                           "--out", str(out)], capture_output=True, text=True)
    expect_input_error(proc, out, "bad.gguf", *words)


def test_hostile_gguf(good_gguf, tmp_path, ids_file):
    g = good_gguf
    expect_error(g[:3], tmp_path, ids_file, "bad magic")
    expect_error(b"GGUX" + g[4:], tmp_path, ids_file, "bad magic")
    expect_error(g[:4] + struct.pack("<I", 1) + g[8:], tmp_path, ids_file, "version 1")
    expect_error(g[:4] + struct.pack("<I", 99) + g[8:], tmp_path, ids_file, "version 99")
    expect_error(g[:8] + struct.pack("<Q", 1 << 60) + g[16:], tmp_path, ids_file, "tensor count")
    expect_error(g[:16] + struct.pack("<Q", 1 << 60) + g[24:], tmp_path, ids_file, "metadata count")
    # The first key's length is at byte 24.
    expect_error(g[:24] + struct.pack("<Q", 1 << 62) + g[32:], tmp_path, ids_file, "string length")
    for cut in (30, 200, len(g) // 2, len(g) - 1):
        expect_error(g[:cut], tmp_path, ids_file)  # truncated header, metadata, infos or data
    # Tensor infos: find one by its name and corrupt its type, dims and offset.
    name = b"token_embd.weight"
    at = g.index(name) + len(name)  # n_dims (u32), ne[0..1] (u64), type (u32), offset (u64)
    n_dims = struct.unpack_from("<I", g, at)[0]
    assert n_dims == 2
    type_at, offset_at = at + 4 + 16, at + 4 + 16 + 4
    expect_error(g[:type_at] + struct.pack("<I", 12) + g[type_at + 4:], tmp_path, ids_file, "Q4_K", "token_embd.weight")
    expect_error(g[:type_at] + struct.pack("<I", 77) + g[type_at + 4:], tmp_path, ids_file, "type 77", "token_embd.weight")
    expect_error(g[:offset_at] + struct.pack("<Q", 1 << 40) + g[offset_at + 8:], tmp_path, ids_file, "outside the data section")
    expect_error(g[:offset_at] + struct.pack("<Q", 3) + g[offset_at + 8:], tmp_path, ids_file, "not aligned")
    expect_error(g[:at] + struct.pack("<I", 9) + g[at + 4:], tmp_path, ids_file, "dimensions")
    expect_error(g[:at + 4] + struct.pack("<Q", 1 << 50) + g[at + 12:], tmp_path, ids_file, "implausible dimension")
    # A metadata value: the architecture string's length.
    key = b"general.architecture"
    at = g.index(key) + len(key) + 4  # after the value type
    expect_error(g[:at] + struct.pack("<Q", 1 << 40) + g[at + 8:], tmp_path, ids_file, "string length")
    # Unknown metadata value type.
    expect_error(g[:at - 4] + struct.pack("<I", 99) + g[at:], tmp_path, ids_file, "unknown value type 99")
    # A config the header cannot be: zero heads.
    key = b"llama.attention.head_count"
    at = g.index(key) + len(key)
    vtype = struct.unpack_from("<I", g, at)[0]
    assert vtype == 4  # uint32
    expect_error(g[:at + 4] + struct.pack("<I", 0) + g[at + 8:], tmp_path, ids_file, "head_count")
    # A metadata key of the wrong type (the same four bytes read as float32): named with the type.
    expect_error(g[:at] + struct.pack("<I", 6) + g[at + 4:], tmp_path, ids_file, "'llama.attention.head_count'",
                 "float32", "not an integer")
    # A quantized tensor whose block table runs past the end of the file (it claims 1000x the rows):
    # named with its type.
    at = g.index(name) + len(name)
    rows = struct.unpack_from("<Q", g, at + 12)[0]
    expect_error(g[:at + 12] + struct.pack("<Q", rows * 1000) + g[at + 20:], tmp_path, ids_file,
                 "Q8_0 tensor 'token_embd.weight'", "outside the data section")


def test_hostile_gguf_tokenizer(tmp_path):
    g = write_tokenizer_gguf(shared_path("tokenizers", "mistral", "tokenizer.json"), tmp_path / "t.gguf", "llama").read_bytes()
    key = b"tokenizer.ggml.tokens"
    at = g.index(key) + len(key) + 4 + 4  # value type (array), element type, then the count
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(g[:at] + struct.pack("<Q", 1 << 61) + g[at + 8:])
    text = tmp_path / "x.txt"
    text.write_text("hello")
    proc = subprocess.run(["attnspec", "tokenize", "--model", str(bad), "--text", str(text)], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "array elements" in proc.stderr and "bad.gguf" in proc.stderr, proc.stderr
