"""Behaviour is kept: every output of a fixed set of runs (all families, formats, tokenizers, the plan,
the errors and the Python API) is byte-identical to tests/golden/outputs.json (tests/golden_outputs.py)."""
import golden_outputs

from conftest import shared_path


def test_outputs_identical_to_the_record():
    shared_path("models", "stories260K", "tok512.bin")  # fails with a message when ../shared is absent
    found = golden_outputs.collect("attnspec")
    expected = golden_outputs.json.loads(golden_outputs.RECORD.read_text())
    problems = golden_outputs.compare(found, expected)
    assert not problems, "outputs differ from the record:\n" + "\n".join(problems[:40])
