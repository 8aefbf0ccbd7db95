"""Every option of analyze, plan and tokenize is declared once, in the C++ option table
(src/attnspec/run/options.cpp): the command line's flags, the binding's keywords and the Python
API's signatures and defaults are all read from it, and say the same."""
from __future__ import annotations

import inspect
import re
import subprocess

import pytest

import attnspec
from attnspec import _core

TABLE = _core.options()


def _of(command: str) -> list[dict]:
    return [o for o in TABLE if command in o["commands"]]


@pytest.mark.parametrize("command", ["analyze", "plan", "tokenize", "compress"])
def test_command_line_flags_are_the_table(command):
    help_text = subprocess.run(["attnspec", command, "--help"], capture_output=True, text=True, check=True).stdout
    flags = set(re.findall(r"^\s+(--[a-z][a-z-]*)", help_text, re.M)) - {"--help"}
    assert flags == {"--" + o["name"] for o in _of(command)}
    for o in _of(command):  # the table's help and default are what --help shows
        assert o["help"][:40] in " ".join(help_text.split()), o["name"]


@pytest.mark.parametrize("command", ["analyze", "plan", "compress"])
def test_python_signatures_are_the_table(command):
    sig = inspect.signature(getattr(attnspec, command))
    expected = ["model"] + [o["keyword"] for o in _of(command) if o["keyword"] != "model"]
    assert list(sig.parameters) == expected
    for o in _of(command):
        if o["keyword"] not in ("model", "out"):
            assert sig.parameters[o["keyword"]].default == o["default"], o["keyword"]
        assert o["keyword"] in getattr(attnspec, command).__doc__
    assert sig.parameters["out"].default is None  # Python: a temporary folder


def test_one_default_reaches_cli_and_python_alike(checkpoints, tmp_path):
    """No --ctx: the table's 1024, which the tiny model's 256 positions refuse, in the same words."""
    model = checkpoints("llama", "base")
    ids = tmp_path / "ids.json"
    ids.write_text(" ".join(["5"] * 2048))
    proc = subprocess.run(["attnspec", "analyze", "--model", str(model), "--token-ids", str(ids), "--out",
                           str(tmp_path / "a")], capture_output=True, text=True)
    assert proc.returncode == 2 and "--ctx 1024 exceeds max_position_embeddings 256" in proc.stderr
    with pytest.raises(attnspec.InputError) as caught:
        attnspec.analyze(model, token_ids=ids, out=tmp_path / "b")
    assert proc.stderr.strip() == "attnspec: error: " + str(caught.value)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b" / "heads.csv").exists()


def test_binding_checks_keywords_and_values_by_the_table(checkpoints, tmp_path):
    model = str(checkpoints("llama", "base"))
    with pytest.raises(TypeError, match="unexpected keyword argument 'windows'"):
        _core.run_analyze(model=model, token_ids="x", out=str(tmp_path), windows=3)
    with pytest.raises(attnspec.InputError, match=r"--ctx: an integer is needed \(got 'many'\)"):
        attnspec.analyze(model, token_ids=[1, 2, 3], ctx="many", out=tmp_path / "c")
    with pytest.raises(attnspec.InputError, match="--field: one of unmasked, causal, both"):
        attnspec.analyze(model, token_ids=[1, 2, 3], ctx=2, field="masked", out=tmp_path / "d")
    with pytest.raises(attnspec.InputError, match="plan needs --text FILE or --token-ids FILE"):
        attnspec.plan(model, out=tmp_path / "e")
    # Python's own spellings of a choice: None is the default, a bool says yes or no.
    for strip in (None, True, False, "auto"):
        r = attnspec.analyze(model, token_ids=list(range(1, 9)), ctx=4, strip_gutenberg=strip, out=tmp_path / f"s{strip}")
        assert len(r.heads) > 0


def test_plan_defaults_and_repeatable_tolerances(checkpoints, tmp_path):
    model = str(checkpoints("llama", "base"))
    ids = list(range(1, 65))
    r = attnspec.plan(model, token_ids=ids, ctx=32, out=tmp_path / "a")
    assert sorted(r.plan["tolerance"].unique()) == list(_of("plan")[[o["keyword"] for o in _of("plan")].index("tolerances")]["default"])
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(" ".join(map(str, ids)))
    subprocess.run(["attnspec", "plan", "--model", model, "--token-ids", str(ids_file), "--ctx", "32", "--quiet",
                    "--tolerance", "0.3", "--tolerance", "0.1", "--out", str(tmp_path / "b")], check=True)
    r = attnspec.plan(model, token_ids=ids, ctx=32, tolerances=[0.3, 0.1], out=tmp_path / "c")
    assert (tmp_path / "b" / "plan.csv").read_text() == (tmp_path / "c" / "plan.csv").read_text()


def test_sweep_manifest_options_are_the_table():
    """A manifest's [options] hold analyze's options with the table's defaults (and the sweep's own)."""
    from attnspec.sweep.options import Options, parse_options

    per_run = {"model", "text", "token_ids", "tokenizer", "out", "ctx", "quiet", "resume"}
    fields = Options.__dataclass_fields__
    engine = [o for o in _of("analyze") if o["keyword"] not in per_run]
    assert {o["keyword"] for o in engine} | {"windows_per_task", "task_seconds", "max_retries"} == set(fields)
    for o in engine:
        assert fields[o["keyword"]].default == o["default"], o["keyword"]
    from attnspec.sweep.options import Invalid

    with pytest.raises(Invalid, match="options.field: 'masked' is not one of unmasked, causal, both"):
        parse_options({"field": "masked"})
    with pytest.raises(Invalid, match="options.causal_max_values: must be >= 1"):
        parse_options({"causal_max_values": 0})
