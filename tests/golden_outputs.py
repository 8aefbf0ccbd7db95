"""Every output attnspec writes for a fixed set of runs, as sha256 per file: the record that a change
meant to leave behaviour alone (a refactor) really did.

The runs cover every family variant the oracle tests build (analyze with every extra column and
file, and the error line where a variant refuses an option), the compression plan, the real tiny
Llama with its llama2.c tokenizer, the llama2.c and GGUF formats, the tokenizers of the four
families (from tokenizer.json and from a tokenizer-only GGUF) and the Python API. What depends on
the machine or the run (summary.json's threads and timings, temporary paths) is taken out first;
every other byte counts.

OpenBLAS picks its kernels by CPU model (SkylakeX, Cooperlake, Zen, Haswell, ...), and each kernel
rounds float32 products its own way, which shows in the tenth digit of some columns: a record made on
one server did not hold on another. So every run here uses OpenBLAS's Haswell kernels (AVX2 and FMA,
which attnspec's own vector loops also use, and every x86-64 server of the last decade has), and the
record holds on any such machine.

    python3 tests/golden_outputs.py --check            # the installed `attnspec` against the record
    python3 tests/golden_outputs.py --check --cli build/dev/attnspec
    python3 tests/golden_outputs.py --record           # rewrite tests/golden/outputs.json

tests/test_golden_outputs.py runs --check with the installed command.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
SHARED = TESTS.parents[1] / "shared"
RECORD = TESTS / "golden" / "outputs.json"

VOLATILE_SUMMARY_KEYS = ("threads", "timing_seconds")
ANALYZE_EXTRAS = ["--field", "both", "--data-side", "--invariants", "--save-spectra"]
# The environment of every recorded run: one thread, and the same BLAS kernels on every machine.
RUN_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_CORETYPE": "Haswell"}


def check_machine() -> None:
    """The record needs OpenBLAS's Haswell kernels; a CPU without AVX2 and FMA cannot run them."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx2" not in flags or " fma" not in flags:
        raise RuntimeError("the golden record is made with OpenBLAS's Haswell kernels (x86-64 with AVX2 and FMA); "
                           "this machine has no AVX2/FMA, so its outputs cannot be compared with the record")


def _token_ids(vocab: int, n: int, seed: int) -> list[int]:
    """Deterministic ids without numpy's generator (its streams are not promised across versions)."""
    out, x = [], seed * 2654435761 % 2**32 or 1
    for _ in range(n):
        x = (1103515245 * x + 12345) % 2**31
        out.append(3 + x % (vocab - 3))
    return out


def _normalise(path: Path, root: Path) -> bytes:
    data = path.read_bytes()
    if path.name in ("summary.json", "plan.json"):
        j = json.loads(data)
        for key in VOLATILE_SUMMARY_KEYS:
            j.pop(key, None)
        data = json.dumps(j, indent=1, sort_keys=True).encode()
    return _masked(data, root)


def _masked(data: bytes, root: Path) -> bytes:
    """The temporary folder and ../shared (wherever the checkout is) as placeholders."""
    for path, name in ((root, b"<root>"), (SHARED, b"<shared>"), (SHARED.resolve(), b"<shared>")):
        data = data.replace(str(path).encode(), name)
    return data


def _digest_folder(folder: Path, root: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(_normalise(p, root)).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class Runner:
    def __init__(self, cli: str, root: Path):
        self.cli, self.root, self.results = cli, root, {}

    def run(self, name: str, args: list[str], out: Path | None = None) -> None:
        """Runs `attnspec args`; records each file of `out`, the stdout, and the status with stderr's
        last line (an error message is behaviour too)."""
        env = dict(os.environ, **RUN_ENV)
        p = subprocess.run([self.cli, *args], capture_output=True, text=True, env=env, timeout=900)
        rec = {"status": str(p.returncode)}
        if p.returncode != 0:
            rec["stderr"] = _masked((p.stderr.strip().splitlines() or [""])[-1].encode(), self.root).decode()
        if p.stdout:
            rec["stdout"] = hashlib.sha256(_masked(p.stdout.encode(), self.root)).hexdigest()
        if out is not None and out.is_dir():
            rec.update(_digest_folder(out, self.root))
        self.results[name] = rec
        print(f"  {name}: status {p.returncode}, {len(rec)} entries", flush=True)

    def analyze(self, name: str, model: Path, ids: list[int] | None = None, *, extra=(), ctx=32, windows=2,
                text: Path | None = None) -> None:
        out = self.root / "out" / name
        args = ["analyze", "--model", str(model), "--ctx", str(ctx), "--max-windows", str(windows),
                "--threads", "1", "--quiet", "--out", str(out), *extra]
        if text is None:
            ids_file = self.root / "ids" / f"{name}.json"
            ids_file.parent.mkdir(parents=True, exist_ok=True)
            ids_file.write_text(json.dumps(ids))
            args += ["--token-ids", str(ids_file)]
        else:
            args += ["--text", str(text)]
        self.run(name, args, out)

    def plan(self, name: str, model: Path, ids: list[int], *, extra=()) -> None:
        out = self.root / "out" / name
        ids_file = self.root / "ids" / f"{name}.json"
        ids_file.parent.mkdir(parents=True, exist_ok=True)
        ids_file.write_text(json.dumps(ids))
        self.run(name, ["plan", "--model", str(model), "--token-ids", str(ids_file), "--ctx", "32",
                        "--max-windows", "1", "--threads", "1", "--quiet", "--out", str(out),
                        "--tolerance", "0.05", "--tolerance", "0.2", *extra], out)


def collect(cli: str) -> dict:
    check_machine()
    import hf_oracle
    import gguf_writer

    with tempfile.TemporaryDirectory(prefix="attnspec-golden-") as tmp:
        root = Path(tmp).resolve()
        r = Runner(cli, root)
        ckpt = {}
        for (family, variant) in sorted(hf_oracle.VARIANTS):
            path = hf_oracle.make_tiny_checkpoint(family, root / "ckpt" / f"{family}-{variant}", variant=variant)
            ckpt[(family, variant)] = path
            vocab = json.loads((path / "config.json").read_text()).get("vocab_size") or 100
            vocab = vocab or json.loads((path / "config.json").read_text())["text_config"]["vocab_size"]
            ids = _token_ids(vocab, 70, seed=len(family) * 31 + len(variant))
            r.analyze(f"analyze/{family}-{variant}", path, ids, extra=ANALYZE_EXTRAS)
        ids = _token_ids(hf_oracle._VOCAB, 70, seed=7)
        for variant in ("base", "no_prefix"):  # encoders refuse the causal field: their extras without it
            r.analyze(f"analyze/bert-{variant}-unmasked", ckpt[("bert", variant)], ids,
                      extra=["--data-side", "--invariants", "--save-spectra"])
        r.analyze("analyze/llama-base-plain", ckpt[("llama", "base")], ids)
        r.analyze("analyze/llama-base-causal-lanczos", ckpt[("llama", "base")], ids,
                  extra=["--field", "causal", "--causal-method", "lanczos", "--causal-max-values", "5"])
        bf16 = hf_oracle.make_tiny_checkpoint("llama", root / "ckpt" / "llama-bf16", dtype="bfloat16")
        r.analyze("analyze/llama-base-bf16", bf16, ids, extra=ANALYZE_EXTRAS)
        for fam in (("llama", "base"), ("gpt2", "base"), ("gemma2", "base"), ("qwen3", "base")):
            r.plan(f"plan/{fam[0]}-{fam[1]}", ckpt[fam], ids)
        r.plan("plan/llama-geometric", ckpt[("llama", "base")], ids, extra=["--ranks", "geometric"])

        # GGUF files written as llama.cpp's converter would, in a few storage types.
        for (fam, type_name) in ((("llama", "base"), "Q8_0"), (("qwen2", "base"), "F16"), (("gpt2", "base"), "F32"),
                                 (("gemma3_text", "base"), "Q8_0"), (("phi3", "base"), "BF16")):
            f = gguf_writer.write_gguf(ckpt[fam], root / f"{fam[0]}-{type_name}.gguf", type_name)
            r.analyze(f"gguf/{fam[0]}-{type_name}", f, ids, extra=ANALYZE_EXTRAS)

        # The real trained tiny Llama, its llama2.c tokenizer, and the llama2.c file itself.
        book = SHARED / "corpus" / "pg84.txt"
        tok = SHARED / "models" / "stories260K" / "tok512.bin"
        r.analyze("real/stories260K-hf", SHARED / "models" / "stories260K-hf", extra=[*ANALYZE_EXTRAS, "--tokenizer", str(tok)],
                  ctx=64, windows=3, text=book)
        r.analyze("real/stories260K-llama2c", SHARED / "models" / "stories260K" / "stories260K.bin",
                  extra=["--invariants"], ctx=64, windows=2, text=book)
        r.plan("real/stories260K-plan", SHARED / "models" / "stories260K-hf", ids=[i % 512 for i in ids],
               extra=["--tokenizer", str(tok)])

        # Tokenizers: tokenizer.json folders, and tokenizer-only GGUF files of two of them.
        excerpt = root / "excerpt.txt"
        excerpt.write_text(book.read_text(encoding="utf-8")[20000:40000] + "\n  tabs\tand  émigré ½ 東京 🙂\n",
                           encoding="utf-8")
        for fam in ("gpt2", "llama3", "mistral", "qwen2"):
            r.run(f"tokenize/{fam}", ["tokenize", "--model", str(SHARED / "tokenizers" / fam), "--text", str(excerpt)])
        r.run("tokenize/gutenberg-auto", ["tokenize", "--model", str(SHARED / "tokenizers" / "gpt2"), "--text", str(book),
                                          "--strip-gutenberg", "auto"])
        for fam, kind, pre in (("gpt2", "gpt2", "gpt-2"), ("llama3", "gpt2", "llama-bpe"), ("mistral", "llama", None)):
            f = gguf_writer.write_tokenizer_gguf(SHARED / "tokenizers" / fam / "tokenizer.json", root / f"tok-{fam}.gguf",
                                                 kind, pre)
            r.run(f"tokenize/{fam}-gguf", ["tokenize", "--model", str(f), "--text", str(excerpt)])
        r.run("models", ["models"])

        # Bad input: one line and status 2, worded as before.
        r.run("errors/no-input", ["analyze", "--model", str(ckpt[("llama", "base")]), "--ctx", "8", "--out",
                                  str(root / "out" / "e1")])
        r.run("errors/ctx-too-long", ["analyze", "--model", str(ckpt[("llama", "base")]), "--ctx", "100000",
                                      "--text", str(excerpt), "--tokenizer", str(SHARED / "tokenizers" / "llama3"),
                                      "--out", str(root / "out" / "e2")])
        r.run("errors/bad-field", ["analyze", "--model", str(ckpt[("llama", "base")]), "--ctx", "8", "--field", "x",
                                   "--text", str(excerpt), "--out", str(root / "out" / "e3")])

        # The Python API writes the same files through the binding (in a Python of its own, which
        # loads OpenBLAS with RUN_ENV's kernels).
        if cli_is_installed(cli):
            out = root / "out" / "python-analyze"
            ids_file = root / "py.ids.json"
            ids_file.write_text(json.dumps(ids))
            code = ("import attnspec, sys; attnspec.analyze(sys.argv[1], token_ids=sys.argv[2], ctx=32, out=sys.argv[3], "
                    "max_windows=2, threads=1, quiet=True, field='both', data_side=True, invariants=True, "
                    "save_spectra=True)")
            subprocess.run([sys.executable, "-c", code, str(ckpt[("qwen2", "base")]), str(ids_file), str(out)],
                           check=True, env=dict(os.environ, **RUN_ENV), timeout=900)
            r.results["python/analyze-qwen2"] = _digest_folder(out, root)
        return r.results


def cli_is_installed(cli: str) -> bool:
    return shutil.which("attnspec") is not None and Path(shutil.which(cli) or cli).resolve() == Path(shutil.which("attnspec")).resolve()


def compare(found: dict, expected: dict) -> list[str]:
    problems = []
    for case in sorted(set(found) | set(expected)):
        if case not in found:
            problems.append(f"{case}: not run (recorded before)")
            continue
        if case not in expected:
            problems.append(f"{case}: new (not in the record; --record to add it)")
            continue
        for key in sorted(set(found[case]) | set(expected[case])):
            a, b = found[case].get(key), expected[case].get(key)
            if a != b:
                problems.append(f"{case}/{key}: {b!r} before, {a!r} now")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", default="attnspec", help="the attnspec executable (default: the one on PATH)")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", action="store_true", help=f"write {RECORD.relative_to(TESTS.parent)}")
    mode.add_argument("--check", action="store_true", help="compare with the record; status 1 on any difference")
    args = ap.parse_args(argv)
    found = collect(args.cli)
    if args.record:
        RECORD.parent.mkdir(exist_ok=True)
        RECORD.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        print(f"recorded {sum(len(v) for v in found.values())} outputs of {len(found)} runs in {RECORD}")
        return 0
    expected = json.loads(RECORD.read_text())
    if not cli_is_installed(args.cli):  # the Python API case needs the installed package
        expected = {k: v for k, v in expected.items() if not k.startswith("python/")}
    problems = compare(found, expected)
    for p in problems:
        print("DIFFERS", p)
    print(f"{len(found)} runs, {sum(len(v) for v in found.values())} outputs: "
          f"{'identical to the record' if not problems else f'{len(problems)} differences'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
