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
    # plan() resolves hub ids as analyze() does (the one resolver behind both).
    plan = attnspec.plan("org/tiny-llama", token_ids=list(range(1, 65)), ctx=32, out=tmp_path / "p")
    assert len(plan.plan) > 0


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


# ---- Downloads: a local server that answers as the hub does (its revision API and resolve URLs) ----

class _FakeHub:
    """Serves org/tiny-dl (public) and org/gated (needs `Authorization: Bearer secret`) from a
    checkpoint folder; the weights answer with a redirect, as the hub's LFS files do."""

    commit = "fedcba9876543210fedcba9876543210fedcba98"

    def __init__(self, folder):
        import http.server
        import threading

        hub, self.requests = self, []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                hub.requests.append(self.path)
                parts = self.path.strip("/").split("/")
                repo = "/".join(parts[2:4]) if parts[:2] == ["api", "models"] else "/".join(parts[:2])
                if repo == "org/gated" and self.headers.get("Authorization") != "Bearer secret":
                    return self._send(401)
                if parts[0] == "cdn":
                    return self._send(200, (folder / parts[1]).read_bytes())
                if repo not in ("org/tiny-dl", "org/gated"):
                    return self._send(404)
                if parts[:2] == ["api", "models"]:
                    files = sorted(p.name for p in folder.iterdir()) + ["README.md", "sub/extra.json"]
                    body = json.dumps({"sha": hub.commit, "siblings": [{"rfilename": f} for f in files]})
                    return self._send(200, body.encode())
                name = parts[-1]
                if name.endswith(".safetensors"):
                    return self._send(302, headers=[("Location", f"/cdn/{name}")])
                return self._send(200, (folder / name).read_bytes())

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture()
def fake_hub(checkpoints):
    hub = _FakeHub(checkpoints("llama", "base"))
    yield hub
    hub.server.shutdown()


def test_uncached_hub_id_is_downloaded_into_the_cache(fake_hub, tmp_path, monkeypatch, checkpoints):
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps(list(range(1, 65))))
    cache = tmp_path / "hub"
    env = {**__import__("os").environ, "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": fake_hub.url}
    env.pop("HF_HUB_OFFLINE", None)
    run = lambda model, out: subprocess.run(
        ["attnspec", "analyze", "--model", model, "--token-ids", str(ids), "--ctx", "32", "--out", str(out), "--quiet"],
        capture_output=True, text=True, env=env)
    by_id, by_folder = run("org/tiny-dl", tmp_path / "a"), run(str(checkpoints("llama", "base")), tmp_path / "b")
    assert by_id.returncode == 0 and by_folder.returncode == 0, by_id.stderr + by_folder.stderr
    assert (tmp_path / "a" / "heads.csv").read_text() == (tmp_path / "b" / "heads.csv").read_text()
    snapshot = cache / "models--org--tiny-dl" / "snapshots" / fake_hub.commit
    assert (cache / "models--org--tiny-dl" / "refs" / "main").read_text() == fake_hub.commit
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(p.name for p in checkpoints("llama", "base").iterdir())
    assert any(r.startswith("/cdn/") for r in fake_hub.requests), "the redirect of the weights was not followed"
    # The Python API resolves through the same code: now from the cache, without a request.
    before = len(fake_hub.requests)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert attnspec.resolve_model("org/tiny-dl") == snapshot
    assert len(fake_hub.requests) == before


def test_download_failures_are_one_clear_error(fake_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(attnspec.InputError, match="the download failed: HTTP 404"):
        attnspec.resolve_model("org/missing")
    ids = tmp_path / "ids.json"
    ids.write_text("1 2 3 4")
    proc = subprocess.run(["attnspec", "plan", "--model", "org/gated", "--token-ids", str(ids), "--ctx", "2",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "HTTP 401" in proc.stderr and "HF_TOKEN" in proc.stderr and not (tmp_path / "out").exists()
    monkeypatch.setenv("HF_TOKEN", "secret")
    assert (attnspec.resolve_model("org/gated") / "config.json").is_file()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: offline
    with pytest.raises(attnspec.InputError, match="the download failed: .*(connect|Connect)"):
        attnspec.resolve_model("org/elsewhere")
