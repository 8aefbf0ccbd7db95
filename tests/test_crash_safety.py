"""Long runs lose nothing: per-window results survive SIGKILL and SIGINT, --resume finishes the run
with output byte-identical to an uninterrupted one, and results do not depend on the thread count.
Each interruption lands at a known window through the run's test point (no race with its speed)."""
from __future__ import annotations

import json
import os
import signal
import subprocess

import numpy as np
import pytest

WINDOWS = 12
CTX = 256


@pytest.fixture(scope="module")
def model(checkpoints):
    # Any speed will do: the run stops itself at a known window (start_and_stop_after_first_window).
    return checkpoints("llama", "base", hidden_size=96, intermediate_size=192, num_attention_heads=6,
                       num_key_value_heads=3, num_hidden_layers=3)


@pytest.fixture(scope="module")
def ids_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("ids") / "ids.json"
    p.write_text(json.dumps([int(t) for t in np.random.default_rng(5).integers(0, 512, WINDOWS * CTX)]))
    return p


def command(model, ids, out, *extra):
    return ["attnspec", "analyze", "--model", str(model), "--token-ids", str(ids), "--ctx", str(CTX),
            "--out", str(out), "--save-spectra", *extra]


@pytest.fixture(scope="module")
def reference(model, ids_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run(command(model, ids_file, out, "--threads", "2", "--quiet"), check=True)
    return out


def start_and_stop_after_first_window(cmd):
    """Starts the run with its test point set (ATTNSPEC_TEST_STOP_AFTER_WINDOW): it stops itself
    (SIGSTOP) once its first window is saved, so what follows acts at a known point, at any speed."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, ATTNSPEC_TEST_STOP_AFTER_WINDOW="1"))
    _, status = os.waitpid(proc.pid, os.WUNTRACED)  # returns when the child stops (or ends)
    if not os.WIFSTOPPED(status):
        proc.returncode = os.waitstatus_to_exitcode(status)
        pytest.fail(f"the run ended (status {proc.returncode}) before its first window: {proc.stderr.read()}")
    return proc


def same_files(a, b):
    for name in ("heads.csv", "spectra.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_sigkill_then_resume_is_byte_identical(model, ids_file, reference, tmp_path):
    out = tmp_path / "run"
    proc = start_and_stop_after_first_window(command(model, ids_file, out, "--threads", "2"))
    proc.kill()
    proc.wait()
    assert not (out / "heads.csv").exists()
    done = sorted(p.name for p in (out / ".attnspec-run").glob("window-*.csv"))
    assert done == ["window-000000.csv"]

    again = subprocess.run(command(model, ids_file, out, "--threads", "2"), capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr  # no silent restart over kept work

    resumed = subprocess.run(command(model, ids_file, out, "--threads", "2", "--resume"),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    same_files(out, reference)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["windows_resumed"] == len(done)
    assert summary["aggregates"] == json.loads((reference / "summary.json").read_text())["aggregates"]
    assert not (out / ".attnspec-run").exists()


def test_sigint_stops_at_a_window_boundary(model, ids_file, reference, tmp_path):
    out = tmp_path / "run"
    proc = start_and_stop_after_first_window(command(model, ids_file, out, "--threads", "2"))
    proc.send_signal(signal.SIGINT)  # pending while stopped, handled as soon as it goes on
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and "interrupted after" in err
    assert not (out / "heads.csv").exists()
    resumed = subprocess.run(command(model, ids_file, out, "--threads", "1", "--resume", "--quiet"),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    same_files(out, reference)


def test_resume_refuses_different_inputs(model, ids_file, tmp_path):
    out = tmp_path / "run"
    proc = start_and_stop_after_first_window(command(model, ids_file, out))
    proc.kill()
    proc.wait()
    other = tmp_path / "other.json"
    other.write_text(json.dumps([t % 512 for t in range(WINDOWS * CTX)]))
    r = subprocess.run(command(model, other, out, "--resume"), capture_output=True, text=True)
    assert r.returncode == 2 and "cannot resume" in r.stderr and "token_stream" in r.stderr


def test_results_do_not_depend_on_threads_or_repetition(model, ids_file, reference, tmp_path):
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}"
        subprocess.run(command(model, ids_file, out, "--threads", threads, "--quiet", "--max-windows", "3"),
                       check=True)
    same_files(tmp_path / "t1", tmp_path / "t2")
    ref_rows = (reference / "heads.csv").read_text().splitlines()
    rows = (tmp_path / "t1" / "heads.csv").read_text().splitlines()
    assert rows == ref_rows[: len(rows)]
