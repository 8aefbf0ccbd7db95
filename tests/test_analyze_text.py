"""`attnspec analyze --text BOOK` on checkpoints that carry real tokenizer files: the windows it
builds (text tokens plus the post-processor's BOS per window) must equal what Hugging Face
`tokenizers` gives, so the results equal a --token-ids run on the oracle's ids."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from tokenizers import Tokenizer

from conftest import shared_path

CTX = 64


def gutenberg_body(path) -> str:
    """The book between its START and END marker lines (the oracle side of --strip-gutenberg)."""
    text = path.read_bytes().decode("utf-8").lstrip("\ufeff")
    lines = text.splitlines(keepends=True)
    start = next(i for i, l in enumerate(lines) if l.startswith("*** START OF"))
    end = next(i for i, l in enumerate(lines) if l.startswith("*** END OF"))
    return "".join(lines[start + 1:end])


@pytest.mark.parametrize("family,tokenizer_dir,vocab,bos", [
    ("gpt2", "gpt2", 50257, []),
    ("llama", "llama3", 128256, [128000]),
    ("qwen2", "qwen2", 151669, []),
    ("mistral", "mistral", 32000, [1]),
])
def test_text_windows_equal_tokenizers_ids(checkpoints, tmp_path, family, tokenizer_dir, vocab, bos):
    src = checkpoints(family, "base", vocab_size=vocab)
    model = tmp_path / "model"
    shutil.copytree(src, model)
    tok_files = shared_path("tokenizers", tokenizer_dir)
    for f in tok_files.iterdir():
        if f.name != "examples.jsonl":
            shutil.copy(f, model / f.name)
    book = shared_path("corpus", "pg11.txt")  # CRLF line ends and a BOM: the hard case
    out_text = tmp_path / "text"
    proc = subprocess.run(["attnspec", "analyze", "--model", str(model), "--text", str(book), "--ctx", str(CTX),
                           "--max-windows", "3", "--out", str(out_text), "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out_text / "summary.json").read_text())
    assert summary["input"]["prefix_special"] == bos

    ids = Tokenizer.from_file(str(tok_files / "tokenizer.json")).encode(gutenberg_body(book), add_special_tokens=False).ids
    assert summary["input"]["stream_tokens"] == len(ids)
    body = CTX - len(bos)
    windows = [bos + ids[k * body:(k + 1) * body] for k in range(3)]
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps([t for w in windows for t in w]))
    out_ids = tmp_path / "ids"
    subprocess.run(["attnspec", "analyze", "--model", str(model), "--token-ids", str(ids_file), "--ctx", str(CTX),
                    "--out", str(out_ids), "--quiet"], check=True)
    assert (out_text / "heads.csv").read_text() == (out_ids / "heads.csv").read_text()


def test_tokenize_command_matches_tokenizers(tmp_path):
    tok_dir = shared_path("tokenizers", "llama3")
    book = shared_path("corpus", "pg84.txt")
    proc = subprocess.run(["attnspec", "tokenize", "--model", str(tok_dir), "--text", str(book)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    expected = Tokenizer.from_file(str(tok_dir / "tokenizer.json")).encode(book.read_text(encoding="utf-8"),
                                                                          add_special_tokens=False).ids
    assert json.loads(proc.stdout) == expected


def test_text_errors(checkpoints, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(checkpoints("gpt2", "base", vocab_size=50257), model)
    run = lambda text: subprocess.run(["attnspec", "analyze", "--model", str(model), "--text", str(text), "--ctx", "16",
                                       "--out", str(tmp_path / "out")], capture_output=True, text=True)
    book = tmp_path / "book.txt"
    book.write_text("Some text.")
    r = run(book)  # no tokenizer files in the checkpoint
    assert r.returncode == 2 and "--tokenizer" in r.stderr
    for f in shared_path("tokenizers", "gpt2").glob("*.json"):
        shutil.copy(f, model / f.name)
    book.write_bytes(b"valid start \xff\xfe broken")
    r = run(book)
    assert r.returncode == 2 and "UTF-8" in r.stderr and "12" in r.stderr
    book.write_bytes(b"")  # `attnspec tokenize` gives [] here; a run has no window to analyze
    r = run(book)
    assert r.returncode == 2 and "the text file is empty: no window" in r.stderr
    book.write_bytes(b"\xef\xbb\xbfheader\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\n"
                     b"*** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicense\n")
    r = run(book)
    assert r.returncode == 2 and "empty after Project Gutenberg stripping" in r.stderr
    book.write_text("far too short")
    r = run(book)
    assert r.returncode == 2 and "fewer than one window" in r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
