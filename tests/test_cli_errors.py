"""Bad input gets one clear line on stderr, exit status 2, and nothing in the output folder."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch
from safetensors.torch import load_file, save_file
from cli_checks import expect_input_error


def run_analyze(model, ids_file, out, ctx=16, *extra):
    return subprocess.run(["attnspec", "analyze", "--model", str(model), "--token-ids", str(ids_file),
                           "--ctx", str(ctx), "--out", str(out), *extra], capture_output=True, text=True)


@pytest.fixture()
def setup(checkpoints, tmp_path):
    src = checkpoints("llama", "base")
    model = tmp_path / "model"
    shutil.copytree(src, model)
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps(list(range(1, 65))))
    return model, ids, tmp_path / "out"


def edit_config(model, **changes):
    cfg = json.loads((model / "config.json").read_text())
    cfg.update(changes)
    (model / "config.json").write_text(json.dumps(cfg))


def test_valid_setup_runs(setup):
    model, ids, out = setup
    proc = run_analyze(model, ids, out)
    assert proc.returncode == 0, proc.stderr
    names = {p.name for p in out.iterdir()}
    assert {"heads.csv", "summary.json"} <= names
    assert not [n for n in names if n.startswith(".") or "partial" in n], names


def test_missing_model_folder(setup):
    model, ids, out = setup
    expect_input_error(run_analyze(model.parent / "nope", ids, out), out, "nope")


def test_malformed_config(setup):
    model, ids, out = setup
    (model / "config.json").write_text("{ not json")
    expect_input_error(run_analyze(model, ids, out), out, "config.json", "malformed JSON")


def test_unknown_model_type(setup):
    model, ids, out = setup
    edit_config(model, model_type="rwkv")
    expect_input_error(run_analyze(model, ids, out), out, "rwkv", "supported", "gpt2", "llama")


def test_kv_heads_not_dividing_heads(setup):
    model, ids, out = setup
    edit_config(model, num_key_value_heads=3)
    expect_input_error(run_analyze(model, ids, out), out, "num_key_value_heads 3")


def test_non_positive_size(setup):
    model, ids, out = setup
    edit_config(model, num_hidden_layers=0)
    expect_input_error(run_analyze(model, ids, out), out, "num_hidden_layers", "positive")


def test_shape_that_does_not_fit_the_config(setup):
    model, ids, out = setup
    edit_config(model, intermediate_size=100)
    expect_input_error(run_analyze(model, ids, out), out, "mlp.up_proj.weight", "[128, 64]", "[100, 64]")


def test_missing_tensor(setup):
    model, ids, out = setup
    tensors = load_file(model / "model.safetensors")
    del tensors["model.layers.1.self_attn.k_proj.weight"]
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    expect_input_error(run_analyze(model, ids, out), out, "model.layers.1.self_attn.k_proj.weight")


def test_truncated_weights(setup):
    model, ids, out = setup
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 2])
    expect_input_error(run_analyze(model, ids, out), out, "model.safetensors", "outside the data section")


def test_nan_weights_are_reported_by_layer(setup):
    model, ids, out = setup
    tensors = load_file(model / "model.safetensors")
    tensors["model.layers.2.self_attn.q_proj.weight"][0, 0] = float("nan")
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    expect_input_error(run_analyze(model, ids, out), out, "layer 2", "model.layers.2.self_attn.q_proj.weight", "NaN")


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_activations_are_reported_by_layer(setup, value):
    # A bad value outside Q/K (layer 0's MLP) passes the weight spectra; the forward finds it in
    # the activations it feeds to layer 1.
    model, ids, out = setup
    tensors = load_file(model / "model.safetensors")
    tensors["model.layers.0.mlp.down_proj.weight"][3, 5] = value
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    expect_input_error(run_analyze(model, ids, out), out, "layer 1", "non-finite")


def test_token_id_outside_vocabulary(setup):
    model, ids, out = setup
    ids.write_text(json.dumps([5] * 20 + [512] + [5] * 20))
    expect_input_error(run_analyze(model, ids, out), out, "512", "vocabulary")


@pytest.mark.parametrize("content", ["", "[1, 2", "1 2 x 4", "[-3]"])
def test_bad_token_id_files(setup, content):
    model, ids, out = setup
    ids.write_text(content)
    expect_input_error(run_analyze(model, ids, out), out, str(ids))


def test_text_shorter_than_one_window(setup):
    model, ids, out = setup
    expect_input_error(run_analyze(model, ids, out, 100), out, "fewer than one window")


def test_context_beyond_max_positions(setup, checkpoints):
    model, ids, out = setup
    edit_config(model, max_position_embeddings=8)
    expect_input_error(run_analyze(model, ids, out, 16), out, "max_position_embeddings", "--allow-long-context")
    proc = run_analyze(model, ids, out, 16, "--allow-long-context")
    assert proc.returncode == 0, proc.stderr
    gpt2 = checkpoints("gpt2", "base")  # learned positions cannot be extended at all
    long_ids = ids.parent / "long.json"
    long_ids.write_text(json.dumps(list(range(300))))
    out2 = ids.parent / "out2"
    expect_input_error(run_analyze(gpt2, long_ids, out2, 256, "--allow-long-context"), out2, "learned positions")


def test_usage_errors_exit_2(setup):
    model, ids, out = setup
    proc = subprocess.run(["attnspec", "analyze", "--model", str(model), "--ctx", "16", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--text" in proc.stderr
    proc = subprocess.run(["attnspec", "analyze", "--model", str(model), "--token-ids", str(ids), "--ctx", "abc",
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2


def test_tensors_of_layers_the_config_lacks(setup):
    model, ids, out = setup
    edit_config(model, num_hidden_layers=2)
    expect_input_error(run_analyze(model, ids, out), out, "model.layers.2.", "2 layers")


def test_sharded_index_naming_a_missing_shard(setup):
    model, ids, out = setup
    (model / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model-00002-of-00002.safetensors"}}))
    expect_input_error(run_analyze(model, ids, out), out, "model-00002-of-00002.safetensors")


@pytest.mark.parametrize("field,value,words", [
    ("hidden_size", 10 ** 9, ["implausibly large"]),
    ("num_attention_heads", "four", ["num_attention_heads", "integer"]),
    ("rope_parameters", {"rope_type": "yarn", "rope_theta": 1e4}, ["yarn", "not supported"]),
])
def test_inconsistent_config_fields(setup, field, value, words):
    model, ids, out = setup
    edit_config(model, **{field: value})
    expect_input_error(run_analyze(model, ids, out), out, *words)


def test_memory_guard_refuses_a_run_that_cannot_fit(checkpoints, tmp_path):
    # 6M-token windows of a d=128 model need ~30 GB of activations: refused up front, with the
    # estimate, instead of being killed by the OS mid-run.
    model = checkpoints("llama", "gqa4")
    n = 6_000_000
    ids = tmp_path / "ids.txt"
    ids.write_text("1 " * n)
    out = tmp_path / "out"
    proc = run_analyze(model, ids, out, n, "--allow-long-context")
    expect_input_error(proc, out, "MiB", "available", "--ctx")
