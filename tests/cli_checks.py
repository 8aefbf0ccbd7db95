"""Checks shared by the command-line tests: the shape every input error must have (exit 2, one line
on stderr naming the problem, no results left in the output folder), and `attnspec tokenize`."""
from __future__ import annotations

import json
import subprocess


def expect_input_error(proc, out, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("attnspec: error: "), proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def attnspec_tokenize(model, text, tmp_path):
    """The ids `attnspec tokenize --model MODEL` gives for `text`."""
    f = tmp_path / "text.txt"
    f.write_text(text, encoding="utf-8")
    proc = subprocess.run(["attnspec", "tokenize", "--model", str(model), "--text", str(f)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
