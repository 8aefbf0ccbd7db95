"""--model also takes a Hugging Face hub id, resolved through the local hub cache (no network in
tests): a cached id runs like its folder; an uncached one offline is one clear error, exit 2."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

import attnspec


@pytest.fixture()
def hub_cache(checkpoints, tmp_path):
    """A hub cache laid out as huggingface_hub lays it out, holding org/tiny-llama at one commit."""
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--org--tiny-llama"
    shutil.copytree(checkpoints("llama", "base"), repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return cache


def test_cached_hub_id_runs_like_its_folder(hub_cache, tmp_path, monkeypatch, checkpoints):
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps(list(range(1, 65))))
    env = {"HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1"}
    run = lambda model, out: subprocess.run(
        ["attnspec", "analyze", "--model", model, "--token-ids", str(ids), "--ctx", "32", "--out", str(out), "--quiet"],
        capture_output=True, text=True, env={**__import__("os").environ, **env})
    by_id, by_folder = run("org/tiny-llama", tmp_path / "a"), run(str(checkpoints("llama", "base")), tmp_path / "b")
    assert by_id.returncode == 0 and by_folder.returncode == 0, by_id.stderr + by_folder.stderr
    assert (tmp_path / "a" / "heads.csv").read_text() == (tmp_path / "b" / "heads.csv").read_text()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert attnspec.resolve_model("org/tiny-llama").name == "0123456789abcdef0123456789abcdef01234567"


def test_uncached_hub_id_offline_is_one_clear_error(hub_cache, tmp_path, monkeypatch):
    ids = tmp_path / "ids.json"
    ids.write_text("1 2 3 4")
    env = {**__import__("os").environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(["attnspec", "analyze", "--model", "gpt2", "--token-ids", str(ids), "--ctx", "2",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line and "huggingface-cli download gpt2" in line and "HF_HUB_OFFLINE" in line
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(attnspec.InputError, match="huggingface-cli download gpt2"):
        attnspec.resolve_model("gpt2")
