"""The shape every input error must have: exit 2, one line on stderr naming the problem, and no
results left in the output folder."""
from __future__ import annotations


def expect_input_error(proc, out, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("attnspec: error: "), proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
