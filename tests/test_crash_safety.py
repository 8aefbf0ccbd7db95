"""Long runs lose nothing: per-window results survive SIGKILL and SIGINT, --resume finishes the run
with output byte-identical to an uninterrupted one, and results do not depend on the thread count."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pytest

WINDOWS = 12
CTX = 256


@pytest.fixture(scope="module")
def slow_model(checkpoints):
    # Big enough that a window takes a noticeable time, so a kill lands mid-run.
    return checkpoints("llama", "base", hidden_size=384, intermediate_size=1536, num_attention_heads=6,
                       num_key_value_heads=3, num_hidden_layers=4)


@pytest.fixture(scope="module")
def ids_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("ids") / "ids.json"
    p.write_text(json.dumps([int(t) for t in np.random.default_rng(5).integers(0, 512, WINDOWS * CTX)]))
    return p


def command(model, ids, out, *extra):
    return ["attnspec", "analyze", "--model", str(model), "--token-ids", str(ids), "--ctx", str(CTX),
            "--out", str(out), "--save-spectra", *extra]


@pytest.fixture(scope="module")
def reference(slow_model, ids_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run(command(slow_model, ids_file, out, "--threads", "2", "--quiet"), check=True)
    return out


def start_and_wait_for_first_window(cmd, out):
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    first = out / ".attnspec-run" / "window-000000.csv"
    deadline = time.time() + 120
    while not first.exists():
        assert proc.poll() is None, f"run ended before its first window was seen: {proc.stderr.read()}"
        assert time.time() < deadline, "no window finished within 120 s"
        time.sleep(0.005)
    return proc


def same_files(a, b):
    for name in ("heads.csv", "spectra.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_sigkill_then_resume_is_byte_identical(slow_model, ids_file, reference, tmp_path):
    out = tmp_path / "run"
    proc = start_and_wait_for_first_window(command(slow_model, ids_file, out, "--threads", "2"), out)
    proc.kill()
    proc.wait()
    assert not (out / "heads.csv").exists(), "the run finished before it could be killed"
    done = sorted(p.name for p in (out / ".attnspec-run").glob("window-*.csv"))
    assert 1 <= len(done) < WINDOWS

    again = subprocess.run(command(slow_model, ids_file, out, "--threads", "2"), capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr  # no silent restart over kept work

    resumed = subprocess.run(command(slow_model, ids_file, out, "--threads", "2", "--resume"),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    same_files(out, reference)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["windows_resumed"] == len(done)
    assert summary["aggregates"] == json.loads((reference / "summary.json").read_text())["aggregates"]
    assert not (out / ".attnspec-run").exists()


def test_sigint_stops_at_a_window_boundary(slow_model, ids_file, reference, tmp_path):
    out = tmp_path / "run"
    proc = start_and_wait_for_first_window(command(slow_model, ids_file, out, "--threads", "2"), out)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and "interrupted after" in err
    resumed = subprocess.run(command(slow_model, ids_file, out, "--threads", "1", "--resume", "--quiet"),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    same_files(out, reference)


def test_resume_refuses_different_inputs(slow_model, ids_file, tmp_path):
    out = tmp_path / "run"
    proc = start_and_wait_for_first_window(command(slow_model, ids_file, out), out)
    proc.kill()
    proc.wait()
    other = tmp_path / "other.json"
    other.write_text(json.dumps([t % 512 for t in range(WINDOWS * CTX)]))
    r = subprocess.run(command(slow_model, other, out, "--resume"), capture_output=True, text=True)
    assert r.returncode == 2 and "cannot resume" in r.stderr and "token_stream" in r.stderr


def test_results_do_not_depend_on_threads_or_repetition(slow_model, ids_file, reference, tmp_path):
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}"
        subprocess.run(command(slow_model, ids_file, out, "--threads", threads, "--quiet", "--max-windows", "3"),
                       check=True)
    same_files(tmp_path / "t1", tmp_path / "t2")
    ref_rows = (reference / "heads.csv").read_text().splitlines()
    rows = (tmp_path / "t1" / "heads.csv").read_text().splitlines()
    assert rows == ref_rows[: len(rows)]
