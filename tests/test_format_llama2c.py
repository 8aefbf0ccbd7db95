"""llama2.c checkpoints (`.bin` + `tok*.bin`): the same model as its Hugging Face conversion.

../shared/models/stories260K holds Karpathy's stories260K in llama2.c's format and
../shared/models/stories260K-hf the same weights converted to a Hugging Face folder (Q/K rows
permuted to rotate-half). attnspec reads the .bin directly, undoing the permutation by a row
map, so both must give the same spectra. The tokenizer is checked against a line-by-line Python
transcription of run.c's encode() (below) and the example in the model's README.
"""
from __future__ import annotations

import csv
import json
import struct
import subprocess

import numpy as np
import pytest

from conftest import TESTS, shared_path
from cli_checks import attnspec_tokenize, expect_input_error

STORY = TESTS.parent / "examples" / "stories260K_story.json"


@pytest.fixture(scope="module")
def bin_model():
    return shared_path("models", "stories260K", "stories260K.bin")


@pytest.fixture(scope="module")
def hf_model():
    return shared_path("models", "stories260K-hf")


def analyze(model, out, *extra, ctx=256):
    proc = subprocess.run(["attnspec", "analyze", "--model", str(model), "--ctx", str(ctx), "--out", str(out),
                           "--threads", "1", "--quiet", "--save-spectra", *extra], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def read_spectra(out):
    rows = [json.loads(line) for line in (out / "spectra.jsonl").read_text().splitlines()]
    return {(r["window"], r["layer"], r["head"]): r for r in rows}


def read_heads(out):
    with open(out / "heads.csv") as f:
        return list(csv.DictReader(f))


def assert_same_run(a, b, rtol, atol):
    """Same spectra (to rtol/atol of sigma_1) and same integer metrics in two runs; returns the max diff."""
    sa, sb = read_spectra(a), read_spectra(b)
    assert sa.keys() == sb.keys() and len(sa) > 0
    worst = 0.0
    for key in sa:
        for kind in ("field", "weights"):
            x, y = np.array(sa[key][kind]), np.array(sb[key][kind])
            assert x.shape == y.shape, key
            diff = float(np.max(np.abs(x - y)) / max(x[0], 1e-30))
            worst = max(worst, diff)
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol * x[0], err_msg=f"{key} {kind}")
    ha, hb = read_heads(a), read_heads(b)
    assert len(ha) == len(hb)
    for ra, rb in zip(ha, hb):
        for col in ("k90_field", "k90_weights", "kv_head"):
            assert ra[col] == rb[col], (col, ra, rb)
    return worst


def test_bin_matches_hf_conversion(bin_model, hf_model, tmp_path):
    a = analyze(bin_model, tmp_path / "bin", "--token-ids", str(STORY))
    b = analyze(hf_model, tmp_path / "hf", "--token-ids", str(STORY))
    worst = assert_same_run(a, b, rtol=1e-5, atol=1e-5)
    print(f"max |sigma_bin - sigma_hf| / sigma_1 = {worst:.3g}")
    sa = json.loads((a / "summary.json").read_text())
    assert sa["model"]["format"] == "llama2.c"
    assert sa["model"]["parameters"] == 260_032  # the README's count: no RoPE tables, shared classifier
    assert sa["model"]["kv_heads"] == 4 and sa["model"]["head_dim"] == 8


# --- run.c's encode(), transcribed -------------------------------------------------------------

def read_tok_bin(path):
    data = path.read_bytes()
    (max_len,) = struct.unpack_from("<i", data, 0)
    at, pieces, scores = 4, [], []
    while at < len(data):
        score, n = struct.unpack_from("<fi", data, at)
        at += 8
        pieces.append(data[at:at + n])
        scores.append(score)
        at += n
    return pieces, scores


def runc_encode(text: bytes, pieces, scores):
    """llama2.c run.c encode(t, text, bos=0, eos=0): dummy prefix, per-character lookup with byte
    fallback (id = byte + 3), then repeatedly merge the best-scoring adjacent pair (leftmost on
    ties). str_lookup's bsearch over unique pieces equals a dict lookup."""
    lookup = {}
    for i, p in enumerate(pieces):
        lookup.setdefault(p, i)
    tokens = []
    if text:
        tokens.append(lookup.get(b" ", -1))
    buf = b""
    for i, c in enumerate(text):
        if (c & 0xC0) != 0x80:
            buf = b""
        buf += bytes([c])
        if i + 1 < len(text) and (text[i + 1] & 0xC0) == 0x80 and len(buf) < 4:
            continue
        if buf in lookup:
            tokens.append(lookup[buf])
        else:
            tokens.extend(b + 3 for b in buf)
        buf = b""
    while True:
        best_score, best_id, best_idx = -1e10, -1, -1
        for i in range(len(tokens) - 1):
            idx = lookup.get(pieces[tokens[i]] + pieces[tokens[i + 1]], -1)
            if idx != -1 and scores[idx] > best_score:
                best_score, best_id, best_idx = scores[idx], idx, i
        if best_idx == -1:
            break
        tokens[best_idx:best_idx + 2] = [best_id]
    return tokens


TEXTS = [
    "Once upon a time, there was a little girl named Lily.",
    "Tom and Sue went to the park. They saw a big, red ball!\nThe end.",
    "  two leading spaces, trailing spaces   ",
    "Ünïcödé and 東京 and emoji 😀 need byte fallback; tabs\tand 1234567890.",
    "x",
    "\ufeffOnce upon a time",       # a leading BOM is a character of the text (byte fallback here)
    "The end.\ufeff And \ufeff\ufeff",
    "",                             # no tokens (run.c adds its dummy prefix only to a non-empty text)
]


def test_tokenizer_matches_runc(bin_model, tmp_path):
    tok = bin_model.parent / "tok512.bin"
    pieces, scores = read_tok_bin(tok)
    assert len(pieces) == 512
    story = " ".join(TEXTS) * 3
    for text in TEXTS + [story]:
        want = runc_encode(text.encode("utf-8"), pieces, scores)
        assert attnspec_tokenize(bin_model, text, tmp_path) == want, text
        assert attnspec_tokenize(tok, text, tmp_path) == want, text  # the tokenizer file itself


def test_tokenizer_readme_example(bin_model, tmp_path):
    # ../shared/models/stories260K/README.md: run.c's ids for this sentence (BOS first).
    ids = attnspec_tokenize(bin_model, "Once upon a time, there was a little girl named Lily.", tmp_path)
    assert [1] + ids == [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426]


def test_text_input_starts_windows_with_bos(bin_model, tmp_path):
    text = tmp_path / "story.txt"
    text.write_text(" ".join(TEXTS[:2]) * 40)
    out = tmp_path / "run"
    analyze(bin_model, out, "--text", str(text), ctx=64)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input"]["prefix_special"] == [1]
    assert "llama2.c" in summary["input"]["tokenizer"]


# --- hostile files -------------------------------------------------------------------------------

def expect_error(model, tmp_path, *words):
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps(list(range(1, 33))))
    out = tmp_path / "out"
    proc = subprocess.run(["attnspec", "analyze", "--model", str(model), "--token-ids", str(ids), "--ctx", "16",
                           "--out", str(out)], capture_output=True, text=True)
    expect_input_error(proc, out, *words)


def test_hostile_bin_files(bin_model, tmp_path):
    good = bin_model.read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(good[:20])
    expect_error(bad, tmp_path, "bad.bin", "truncated")
    bad.write_bytes(good[:-4])
    expect_error(bad, tmp_path, "bad.bin", "implies 1056540 bytes but the file has 1056536")
    bad.write_bytes(good + b"\0\0\0\0")
    expect_error(bad, tmp_path, "implies 1056540 bytes")
    for field, value in [(0, 0), (0, -64), (2, 1 << 30), (3, 7), (4, 3), (6, 2**31 - 1)]:
        header = list(struct.unpack_from("<7i", good, 0))
        header[field] = value
        bad.write_bytes(struct.pack("<7i", *header) + good[28:])
        expect_error(bad, tmp_path, "bad.bin", "llama2.c header")
    # Huge but individually plausible fields: the implied size overflows nothing and is refused.
    bad.write_bytes(struct.pack("<7i", 1 << 24, 1 << 24, 1 << 24, 1 << 12, 1 << 12, -(1 << 24), 1 << 24) + good[28:])
    expect_error(bad, tmp_path, "bad.bin", "implies")


def test_hostile_tokenizer_files(bin_model, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "stories260K.bin").symlink_to(bin_model)
    text = tmp_path / "t.txt"
    text.write_text("Once upon a time " * 50)
    tok = (bin_model.parent / "tok512.bin").read_bytes()

    def run():
        return subprocess.run(["attnspec", "analyze", "--model", str(folder / "stories260K.bin"), "--text", str(text),
                               "--ctx", "16", "--out", str(tmp_path / "o")], capture_output=True, text=True)

    proc = run()
    assert proc.returncode == 2 and "no llama2.c tokenizer (tok*.bin)" in proc.stderr, proc.stderr
    for data, words in [(tok[:2], "truncated"), (tok[:-3], "truncated"), (struct.pack("<i", -5) + tok[4:], "max_token_length"),
                        (tok[:4] + struct.pack("<fi", 0.0, 1 << 20) + tok[12:], "length")]:
        (folder / "tok512.bin").write_bytes(data)
        proc = run()
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "tok512.bin" in lines[0] and words in lines[0], proc.stderr
