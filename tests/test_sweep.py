"""`attnspec sweep`: models x texts x context lengths on a real two-node Ray cluster (loopback), byte
for byte the same as the same sweep in one process and as `attnspec analyze`; a worker killed
mid-task changes nothing; a finished sweep run again runs no task; bad manifests are one line, 2."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

CTXS = (16, 32)


# ---- a real Ray cluster: a head and a second node, one CPU each, torn down by pid --------------


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _processes() -> dict:
    """pid -> (parent pid, command line) of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(d)] = (ppid, cmd)
    return out


def _cluster_pids(temp_dir: str) -> set:
    """The processes of our cluster only: those whose command line names its private temp dir (GCS,
    raylets, monitors) and all their descendants (agents, workers, whose titles are ray::...)."""
    procs = _processes()
    found = {pid for pid, (_, cmd) in procs.items() if temp_dir in cmd and pid != os.getpid()}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in procs.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def _stop_cluster(temp_dir: str) -> None:
    # `ray stop --force` would kill every Ray process of every user of this machine; end ours by pid.
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 1.0)):
        for pid in _cluster_pids(temp_dir):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + wait
        while _cluster_pids(temp_dir) and time.time() < deadline:
            time.sleep(0.1)


@dataclass
class Cluster:
    address: str
    temp_dir: str


def _start_cluster(temp_dir: str) -> Cluster:
    gcs, dash, agent, metrics, renv, h_nm, h_om, w_nm, w_om, w_agent, w_metrics, w_renv = _free_ports(12)
    env = dict(os.environ, RAY_TMPDIR=temp_dir, RAY_USAGE_STATS_ENABLED="0")
    common = ["--num-cpus=1", "--disable-usage-stats", f"--temp-dir={temp_dir}", "--object-store-memory=200000000",
              "--node-ip-address=127.0.0.1", "--min-worker-port=0", "--max-worker-port=0"]
    subprocess.run(["ray", "start", "--head", f"--port={gcs}", "--include-dashboard=false",
                    f"--dashboard-port={dash}", f"--dashboard-agent-listen-port={agent}",
                    f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={renv}",
                    f"--node-manager-port={h_nm}", f"--object-manager-port={h_om}", *common],
                   env=env, check=True, capture_output=True, timeout=120)
    subprocess.run(["ray", "start", f"--address=127.0.0.1:{gcs}", f"--node-manager-port={w_nm}",
                    f"--object-manager-port={w_om}", f"--dashboard-agent-listen-port={w_agent}",
                    f"--metrics-export-port={w_metrics}", f"--runtime-env-agent-port={w_renv}", *common],
                   env=env, check=True, capture_output=True, timeout=120)
    return Cluster(address=f"127.0.0.1:{gcs}", temp_dir=temp_dir)


@pytest.fixture(scope="module")
def ray_cluster():
    """A two-node Ray cluster on loopback (1 CPU per node), isolated in its own temp dir; torn down
    at the end, also when a test or the start-up fails."""
    if shutil.which("ray") is None:
        pytest.fail("the `ray` command is missing (pip install ray; scripts/install-deps.sh installs it)")
    temp_dirs = []
    try:
        for attempt in range(2):  # a raylet must register within Ray's fixed 30 s: a loaded machine may miss it once
            temp_dirs.append(tempfile.mkdtemp(prefix="attnspec-ray-", dir="/tmp"))  # short: socket paths must fit
            try:
                cluster = _start_cluster(temp_dirs[-1])
                break
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
                _stop_cluster(temp_dirs[-1])
                if attempt == 1:
                    out = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else str(e.stderr)
                    pytest.fail(f"ray start failed twice: {out[-2000:]}")
        yield cluster
    finally:
        left = set()
        for d in temp_dirs:
            _stop_cluster(d)
            left |= _cluster_pids(d)
            shutil.rmtree(d, ignore_errors=True)
        assert not left, f"Ray processes left running: {left}"


# ---- inputs ----------------------------------------------------------------------------------


def _ids(path: Path, n: int, seed: int) -> Path:
    path.write_text(json.dumps([int(t) for t in np.random.default_rng(seed).integers(0, 512, n)]))
    return path


@pytest.fixture(scope="module")
def small_manifest(checkpoints, tmp_path_factory):
    """3 tiny checkpoints (three families) x 2 token-id files x 2 contexts, 2 windows per task."""
    d = tmp_path_factory.mktemp("manifest")
    models = [checkpoints("gpt2"), checkpoints("llama"), checkpoints("qwen2")]
    texts = [_ids(d / "alpha.json", 200, 1), _ids(d / "beta.json", 150, 2)]
    m = d / "sweep.toml"
    m.write_text("models = [" + ", ".join(f'"{p}"' for p in models) + "]\n"
                 "token_ids = [" + ", ".join(f'"{t.name}"' for t in texts) + "]\n"  # relative to the manifest
                 f"ctx = [{CTXS[0]}, {CTXS[1]}]\n"
                 "[options]\nwindows_per_task = 2\nmax_windows = 5\nthreads = 1\n")
    return m


def sweep(manifest: Path, out: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(["attnspec", "sweep", str(manifest), "--out", str(out), *extra], capture_output=True,
                          text=True, timeout=timeout)
    return proc


def outputs(out: Path) -> dict:
    """Every result file of a sweep (not its tasks/ records or the timing report), by relative path."""
    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if p.is_file() and rel.parts[0] != "tasks" and rel.name != "sweep_report.json":
            files[str(rel)] = p.read_bytes()
    return files


def assert_same_outputs(a: Path, b: Path) -> None:
    fa, fb = outputs(a), outputs(b)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        assert fa[name] == fb[name], f"{name} differs between {a} and {b}"


@pytest.fixture(scope="module")
def local_sweep(small_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "sweep"
    proc = sweep(small_manifest, out)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def ray_sweep(small_manifest, ray_cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray") / "sweep"
    proc = sweep(small_manifest, out, "--ray", ray_cluster.address)
    assert proc.returncode == 0, proc.stderr
    return out


# ---- tests -----------------------------------------------------------------------------------


def test_local_sweep_is_analyze_byte_for_byte(small_manifest, local_sweep, checkpoints, tmp_path):
    """Each run folder of a sweep holds exactly what `attnspec analyze` writes for it."""
    runs = sorted(p.parent for p in local_sweep.rglob("summary.json"))
    assert [str(p.relative_to(local_sweep)) for p in runs] == sorted(
        f"{m}/{t}/ctx{c}" for m in ("gpt2-base-float32", "llama-base-float32", "qwen2-base-float32")
        for t in ("alpha", "beta") for c in CTXS)
    report = json.loads((local_sweep / "sweep_report.json").read_text())
    # alpha: 200 ids -> 5 windows of 16 (max), 5 of 32 -> 3 + 3 tasks; beta: 150 -> 5 + 4 windows -> 3 + 2 tasks
    assert report["tasks"] == {"total": 3 * 11, "run": 33, "reused": 0, "failed": 0}
    assert report["mode"] == "local"
    for model in ("llama", "gpt2"):
        ckpt = checkpoints(model)
        run = local_sweep / f"{ckpt.name}/beta/ctx32"
        ref = tmp_path / model
        subprocess.run(["attnspec", "analyze", "--model", str(ckpt), "--token-ids", str(small_manifest.parent / "beta.json"),
                        "--ctx", "32", "--max-windows", "5", "--save-spectra", "--out", str(ref), "--quiet"], check=True)
        for name in ("heads.csv", "spectra.jsonl", "head_summary.csv"):
            assert (run / name).read_bytes() == (ref / name).read_bytes(), name
        mine, theirs = json.loads((run / "summary.json").read_text()), json.loads((ref / "summary.json").read_text())
        assert mine.pop("command") == "sweep" and theirs.pop("command") == "analyze"
        for machine_dependent in ("threads", "timing_seconds", "windows_resumed"):
            theirs.pop(machine_dependent)
        assert mine == theirs
    # DIR/heads.csv: every run's rows in (model, text, ctx, window) order, with the run's keys in front.
    merged = (local_sweep / "heads.csv").read_text().splitlines()
    assert merged[0].startswith("model,text,ctx,window,layer,head,kv_head,n,k90_field")
    expect = []
    for run in runs:
        m, t, c = run.relative_to(local_sweep).parts
        expect += [f"{m},{t},{c[3:]},{line}" for line in (run / "heads.csv").read_text().splitlines()[1:]]
    assert merged[1:] == expect
    table = (local_sweep / "table.csv").read_text()
    assert table.count("\n") == 1 + 12 + 3  # header, a row per run, a row per model
    assert "gpt2-base-float32/alpha/ctx16" in table  # the run folders, relative to DIR


def test_sweep_folder_reads_as_its_runs(local_sweep, tmp_path):
    """The readers take a sweep's DIR as the folder of runs it is (its own heads.csv holds all their
    rows): the table made from it is the sweep's table, and `attnspec report DIR` works."""
    import pandas as pd

    from attnspec.table import write_table

    write_table([local_sweep], tmp_path / "again")
    ours, again = (pd.read_csv(d / "table.csv").drop(columns="runs") for d in (local_sweep, tmp_path / "again"))
    pd.testing.assert_frame_equal(ours, again)
    proc = subprocess.run(["attnspec", "report", str(local_sweep), "--out", str(tmp_path / "report"), "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "report" / "report.html").is_file()


def test_ray_sweep_matches_local_byte_for_byte(local_sweep, ray_sweep):
    assert_same_outputs(local_sweep, ray_sweep)
    report = json.loads((ray_sweep / "sweep_report.json").read_text())
    assert report["mode"] == "ray" and report["tasks"]["run"] == 33 and report["tasks"]["failed"] == 0
    assert sum(n["tasks"] for n in report["nodes"]) == 33
    assert all(n["node_id"] != "local" for n in report["nodes"])


def test_rerun_of_finished_sweep_runs_nothing(small_manifest, ray_sweep, ray_cluster):
    records = {p: p.stat().st_mtime_ns for p in (ray_sweep / "tasks").iterdir()}
    assert len(records) == 33
    before = outputs(ray_sweep)
    proc = sweep(small_manifest, ray_sweep, "--ray", ray_cluster.address)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((ray_sweep / "sweep_report.json").read_text())
    assert report["tasks"] == {"total": 33, "run": 0, "reused": 33, "failed": 0}
    assert {p: p.stat().st_mtime_ns for p in (ray_sweep / "tasks").iterdir()} == records
    assert outputs(ray_sweep) == before
    # A lost and a truncated task record are run again, and only they (here in one process).
    lost, torn = sorted(records)[7], sorted(records)[20]
    lost.unlink()
    torn.write_bytes(torn.read_bytes()[:100])
    proc = sweep(small_manifest, ray_sweep)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((ray_sweep / "sweep_report.json").read_text())["tasks"]["run"] == 2
    assert outputs(ray_sweep) == before


def _state(pid: int) -> str:
    """A process's state letter (R, S, T for stopped, Z, ...), or "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def test_worker_killed_mid_task_loses_nothing(checkpoints, ray_cluster, tmp_path):
    """Through the sweep's test gate (sweep.TASK_GATE) every task stops its worker before it computes:
    once both nodes' workers hold a task, one is killed, the other and every later task go on. The
    killed worker's task is run again elsewhere and the outputs equal a sweep in one process."""
    from attnspec.sweep import TASK_GATE

    model = checkpoints("llama", "base", hidden_size=64, intermediate_size=128, num_attention_heads=4,
                        num_key_value_heads=2, num_hidden_layers=2)
    ids = _ids(tmp_path / "ids.json", 8 * 32, 7)
    manifest = tmp_path / "gated.toml"
    manifest.write_text(f'models = ["{model}"]\ntoken_ids = ["{ids}"]\nctx = [32]\n'
                        "[options]\nwindows_per_task = 2\nthreads = 1\n")
    local = tmp_path / "local"
    assert sweep(manifest, local, "--quiet").returncode == 0
    gate = tmp_path / "gate"
    gate.mkdir()
    out = tmp_path / "ray"
    proc = subprocess.Popen(["attnspec", "sweep", str(manifest), "--out", str(out), "--ray", ray_cluster.address,
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **{TASK_GATE: str(gate)}))
    held: dict = {}  # gate file -> what the task announced, once its worker is stopped at the gate
    killed, pair, released = None, [], set()
    try:
        deadline = time.monotonic() + 240  # a bound on a hung sweep only; nothing below races it
        while proc.poll() is None:
            assert time.monotonic() < deadline, "the gated sweep did not finish"
            for f in gate.glob("*.json"):
                info = json.loads(f.read_text())  # written atomically, just before the worker stops
                if f.name not in held and _state(info["pid"]) == "T":
                    held[f.name] = info
            waiting = [name for name in held if name not in released]
            if killed is None and len(waiting) == 2:  # both nodes' single CPUs hold a task
                pair = [held[name] for name in waiting]
                victim = min(waiting, key=lambda name: held[name]["first"])
                killed = held[victim]
                os.kill(killed["pid"], signal.SIGKILL)
                released.add(victim)
                waiting.remove(victim)
            if killed is not None:
                for name in waiting:
                    os.kill(held[name]["pid"], signal.SIGCONT)
                    released.add(name)
            time.sleep(0.05)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        for info in held.values():  # never leave a stopped worker behind, whatever failed
            if _state(info["pid"]) == "T":
                os.kill(info["pid"], signal.SIGCONT)
    assert proc.returncode == 0, stderr
    assert killed is not None, f"two tasks were never held at once: {held}"
    assert_same_outputs(local, out)
    report = json.loads((out / "sweep_report.json").read_text())
    assert report["tasks"]["total"] == report["tasks"]["run"] == 4 and report["tasks"]["failed"] == 0
    # The killed worker finished nothing; its task (found by its first window) was run again elsewhere.
    finishers = {pid for n in report["nodes"] for pid in n["pids"]}
    assert killed["pid"] not in finishers
    records = [json.loads(f.read_text()) for f in (out / "tasks").iterdir()]
    redone = [r for r in records if r["task"]["first"] == killed["first"]]
    assert len(redone) == 1 and redone[0]["node"]["pid"] != killed["pid"]
    assert len(held) == 5, held  # four tasks passed the gate, the killed one twice
    assert len({info["node"]["node_id"] for info in pair}) == 2, f"the two held tasks shared a node: {pair}"


# ---- one-file checkpoints: GGUF and llama2.c .bin ----------------------------------------------


def _analyze_like(run: Path, ref: Path, *args: str) -> None:
    """`attnspec analyze ARGS --out ref` writes exactly the files of the sweep's run folder `run`;
    summary.json differs only in the command, threads and timings."""
    subprocess.run(["attnspec", "analyze", *args, "--save-spectra", "--quiet", "--out", str(ref)], check=True)
    for name in ("heads.csv", "spectra.jsonl", "head_summary.csv"):
        assert (run / name).read_bytes() == (ref / name).read_bytes(), f"{run}/{name}"
    mine, theirs = json.loads((run / "summary.json").read_text()), json.loads((ref / "summary.json").read_text())
    assert mine.pop("command") == "sweep" and theirs.pop("command") == "analyze"
    for machine_dependent in ("threads", "timing_seconds", "windows_resumed"):
        theirs.pop(machine_dependent)
    assert mine == theirs


@pytest.fixture(scope="module")
def file_models(checkpoints, tmp_path_factory):
    """A tiny Q8_0 GGUF carrying a SentencePiece tokenizer in its metadata (stories260K's vocabulary),
    the real llama2.c stories260K.bin with its tok512.bin, a text and a token-id file, and a
    manifest naming both models (the .bin with its tokenizer file given explicitly)."""
    from conftest import shared_path
    from gguf_writer import write_gguf
    from test_format_llama2c import read_tok_bin

    d = tmp_path_factory.mktemp("file-models")
    bin_model = shared_path("models", "stories260K", "stories260K.bin")
    pieces, scores = read_tok_bin(bin_model.parent / "tok512.bin")
    spm = ([p.decode("utf-8", errors="surrogateescape").replace(" ", "\u2581") for p in pieces], scores)
    gguf_model = write_gguf(checkpoints("llama", "base"), d / "tiny.gguf", "Q8_0", spm_vocab=spm)
    text = d / "book.txt"
    text.write_text(shared_path("corpus", "pg84.txt").read_text(encoding="utf-8")[20000:26000], encoding="utf-8")
    ids = _ids(d / "ids.json", 150, 4)
    m = d / "files.toml"
    m.write_text(f'models = ["{gguf_model}", {{ path = "{bin_model}", tokenizer = "{bin_model.parent / "tok512.bin"}" }}]\n'
                 f'texts = ["{text}"]\ntoken_ids = ["{ids}"]\nctx = [32]\n'
                 "[options]\nwindows_per_task = 2\nmax_windows = 3\nthreads = 1\n")
    return {"manifest": m, "gguf": gguf_model, "bin": bin_model, "text": text, "ids": ids}


def test_sweep_of_gguf_and_llama2c_files(file_models, ray_cluster, tmp_path):
    """A .gguf and a llama2.c .bin are models like any folder: runs named after the file, texts
    tokenized by the tokenizer the file carries (or the tok*.bin given), byte for byte `attnspec
    analyze` on the same file, the same bytes on Ray, and a second run finds every task done."""
    fm = file_models
    local = tmp_path / "local"
    proc = sweep(fm["manifest"], local)
    assert proc.returncode == 0, proc.stderr
    runs = sorted(str(p.parent.relative_to(local)) for p in local.rglob("summary.json"))
    assert runs == ["stories260K/book/ctx32", "stories260K/ids/ctx32", "tiny/book/ctx32", "tiny/ids/ctx32"]
    assert json.loads((local / "sweep_report.json").read_text())["tasks"]["run"] == 4 * 2  # 3 windows, 2 per task
    common = ["--ctx", "32", "--max-windows", "3"]
    _analyze_like(local / "tiny/book/ctx32", tmp_path / "a1", "--model", str(fm["gguf"]), "--text", str(fm["text"]), *common)
    _analyze_like(local / "tiny/ids/ctx32", tmp_path / "a2", "--model", str(fm["gguf"]), "--token-ids", str(fm["ids"]), *common)
    tok = fm["bin"].parent / "tok512.bin"
    _analyze_like(local / "stories260K/book/ctx32", tmp_path / "a3", "--model", str(fm["bin"]), "--text", str(fm["text"]),
                  "--tokenizer", str(tok), *common)
    _analyze_like(local / "stories260K/ids/ctx32", tmp_path / "a4", "--model", str(fm["bin"]), "--token-ids",
                  str(fm["ids"]), "--tokenizer", str(tok), *common)
    summary = json.loads((local / "tiny/book/ctx32/summary.json").read_text())
    assert summary["model"]["format"] == "gguf" and "GGUF" in summary["input"]["tokenizer"]
    assert summary["input"]["prefix_special"] == [1]  # the BOS of the file's SentencePiece vocabulary
    assert "tiny/book/ctx32" in (local / "table.csv").read_text()
    # On the Ray cluster: the same bytes; run again, nothing runs.
    ray_out = tmp_path / "ray"
    proc = sweep(fm["manifest"], ray_out, "--ray", ray_cluster.address)
    assert proc.returncode == 0, proc.stderr
    assert_same_outputs(local, ray_out)
    proc = sweep(fm["manifest"], ray_out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((ray_out / "sweep_report.json").read_text())["tasks"] == {"total": 8, "run": 0, "reused": 8,
                                                                                "failed": 0}


def test_file_model_fingerprint(file_models, tmp_path):
    """A one-file model's fingerprint follows its bytes, and a llama2.c .bin's follows the tok*.bin
    beside it (the tokenizer the engine takes when none is given), not other files there."""
    from attnspec.sweep import model_fingerprint

    shutil.copy(file_models["bin"], tmp_path / "m.bin")
    shutil.copy(file_models["bin"].parent / "tok512.bin", tmp_path / "tok512.bin")
    fp = model_fingerprint(tmp_path / "m.bin", None)
    assert fp == model_fingerprint(tmp_path / "m.bin", None)
    (tmp_path / "notes.txt").write_text("unrelated")
    assert model_fingerprint(tmp_path / "m.bin", None) == fp
    tok = bytearray((tmp_path / "tok512.bin").read_bytes())
    tok[-1] ^= 1
    (tmp_path / "tok512.bin").write_bytes(bytes(tok))
    assert model_fingerprint(tmp_path / "m.bin", None) != fp
    g = bytearray(file_models["gguf"].read_bytes())
    (tmp_path / "a.gguf").write_bytes(bytes(g))
    a = model_fingerprint(tmp_path / "a.gguf", None)
    g[len(g) // 2] ^= 1
    (tmp_path / "a.gguf").write_bytes(bytes(g))
    assert model_fingerprint(tmp_path / "a.gguf", None) != a


def test_missing_or_corrupt_file_model_is_one_line(file_models, tmp_path):
    """A manifest naming a missing or corrupt .gguf (or .bin) fails with one line and status 2
    before any task runs."""
    fm = file_models
    good = fm["gguf"].read_bytes()
    corrupt = {"truncated.gguf": good[:len(good) - 1], "magic.gguf": b"GGUX" + good[4:], "header.gguf": good[:1000]}
    cases = [(f"{tmp_path / 'missing.gguf'}", "no such checkpoint file"), ("sub/missing.gguf", "no such checkpoint file"),
             (f"{tmp_path / 'missing.bin'}", "no such checkpoint file")]
    for name, data in corrupt.items():
        (tmp_path / name).write_bytes(data)
        cases.append((str(tmp_path / name), name))
    for i, (model, words) in enumerate(cases):
        m = tmp_path / f"m{i}.toml"
        m.write_text(f'models = ["{model}"]\ntexts = ["{fm["text"]}"]\nctx = [32]\n')
        out = tmp_path / f"out{i}"
        p = sweep(m, out)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, (model, p.returncode, p.stderr)
        assert lines[0].startswith("attnspec: error: ") and words in lines[0], (model, lines[0])
        assert not out.exists(), (model, list(out.rglob("*")))


def test_yaml_manifest_and_one_line_errors(checkpoints, tmp_path):
    model = checkpoints("gpt2")
    ids = _ids(tmp_path / "ids.json", 64, 3)
    yaml_manifest = tmp_path / "s.yaml"
    yaml_manifest.write_text(f"models:\n  - path: {model}\n    name: tiny\ntoken_ids: [{ids}]\nctx: [16]\n"
                             "options:\n  max_windows: 2\n  layers: 2\n")
    proc = sweep(yaml_manifest, tmp_path / "yaml")
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "yaml/tiny/ids/ctx16"
    heads = (run / "heads.csv").read_text().splitlines()
    assert {line.split(",")[1] for line in heads[1:]} == {"0", "1"}  # layers 0 and 1 of the model's 3
    assert len(heads) == 1 + 2 * 2 * 4 and json.loads((run / "summary.json").read_text())["layers_analyzed"] == 2

    def error(text: str, suffix: str = ".toml", names_manifest: bool = True) -> str:
        m = tmp_path / f"bad{suffix}"
        m.write_text(text)
        p = sweep(m, tmp_path / "bad-out")
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, (p.returncode, p.stderr)
        assert lines[0].startswith("attnspec: error: "), lines[0]
        assert not names_manifest or str(m) in lines[0], lines[0]
        return lines[0]

    ok = f'models = ["{model}"]\ntoken_ids = ["{ids}"]\n'
    assert "not a valid TOML" in error("models = [")
    assert "unknown key 'modles'" in error(f'modles = ["{model}"]\nctx = [16]')
    assert "ctx: -4 is not a positive" in error(ok + "ctx = [-4]")
    assert "'ctx' must list" in error(ok)
    assert "options.field: 'weird'" in error(ok + 'ctx = [16]\n[options]\nfield = "weird"\n')
    assert "options: unknown key 'threadz'" in error(ok + "ctx = [16]\n[options]\nthreadz = 2\n")
    assert "options.max_windows: must be an integer" in error(ok + 'ctx = [16]\n[options]\nmax_windows = "x"\n')
    assert "is not a folder" in error(f'models = ["./nowhere"]\ntoken_ids = ["{ids}"]\nctx = [16]\n')
    assert "no such file" in error(f'models = ["{model}"]\ntoken_ids = ["missing.json"]\nctx = [16]\n')
    assert "needs at least one of 'texts'" in error(f'models = ["{model}"]\nctx = [16]\n')
    assert "not a valid YAML" in error("models: [\n", ".yaml")
    # Bad input found when the runs are described: an id outside the vocabulary, before any task runs.
    big = tmp_path / "big.json"
    big.write_text(json.dumps([5000] * 40))
    line = error(f'models = ["{model}"]\ntoken_ids = ["{big}"]\nctx = [16]\n', names_manifest=False)
    assert str(big) in line and "outside the model's vocabulary" in line
    assert not (tmp_path / "bad-out" / "tasks").exists()
    # A cluster address nobody listens on.
    m = tmp_path / "good.toml"
    m.write_text(ok + "ctx = [16]\n")
    p = sweep(m, tmp_path / "no-cluster", "--quiet", "--ray", f"127.0.0.1:{_free_ports(1)[0]}", timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "cannot connect to the Ray cluster" in p.stderr, p.stderr
    # Bad input a task finds (NaN weights): the sweep ends with one line, status 2, and no results.
    from safetensors.numpy import load_file, save_file

    broken = tmp_path / "nan-model"
    shutil.copytree(model, broken)
    tensors = load_file(broken / "model.safetensors")
    tensors["transformer.h.1.attn.c_attn.weight"][0, 0] = np.nan
    save_file(tensors, broken / "model.safetensors", metadata={"format": "pt"})
    m = tmp_path / "nan.toml"
    m.write_text(f'models = ["{broken}"]\ntoken_ids = ["{ids}"]\nctx = [16]\n')
    p = sweep(m, tmp_path / "nan-out", "--quiet")
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "non-finite values" in p.stderr and "transformer.h.1.attn.c_attn.weight" in p.stderr
    assert not (tmp_path / "nan-out" / "heads.csv").exists()
