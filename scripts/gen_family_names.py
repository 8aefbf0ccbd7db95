#!/usr/bin/env python3
"""Writes, for every family variant the oracle tests build (tests/hf_oracle.py VARIANTS), the
config.json and the tensor names and shapes that `transformers` saves for it, into
tests/data/family_names/<family>-<variant>.json. src/attnspec/model/families_test.cpp checks each
family's tensor table against these files, so a table that names a tensor transformers does not
write (or misses one it does) fails without transformers at test time. No weights are kept.

    python3 scripts/gen_family_names.py            # rewrite the files
    python3 scripts/gen_family_names.py --check    # compare with what the installed transformers saves
"""
from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "family_names"
sys.path.insert(0, str(ROOT / "tests"))


def saved_tensors(folder: Path) -> list[tuple[str, list[int]]]:
    """(name, shape) of every tensor in the folder's safetensors files, sorted by name."""
    tensors = []
    for f in sorted(folder.glob("*.safetensors")):
        with f.open("rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        tensors += [(name, t["shape"]) for name, t in header.items() if name != "__metadata__"]
    return sorted(tensors)


def render(config: dict, tensors: list[tuple[str, list[int]]]) -> str:
    """The config as saved, then one tensor a line (small diffs when transformers renames one)."""
    rows = ",\n".join(f"  [{json.dumps(name)}, {json.dumps(shape)}]" for name, shape in tensors)
    return '{\n "config": ' + json.dumps(config, indent=1, sort_keys=True).replace("\n", "\n ") + \
           ',\n "tensors": [\n' + rows + "\n ]\n}\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(argv)
    import hf_oracle
    from transformers.utils import logging

    logging.disable_progress_bar()  # save_pretrained's shard bar, once per variant

    differ = []
    with tempfile.TemporaryDirectory(prefix="attnspec-names-") as tmp:
        for family, variant in sorted(hf_oracle.VARIANTS):
            folder = hf_oracle.make_tiny_checkpoint(family, Path(tmp) / f"{family}-{variant}", variant=variant)
            config = json.loads((folder / "config.json").read_text())
            text = render(config, saved_tensors(folder))
            out = OUT / f"{family}-{variant}.json"
            if args.check:
                # transformers_version alone may differ: names and shapes are what counts.
                old = json.loads(out.read_text()) if out.exists() else None
                new = json.loads(text)
                for j in (old, new):
                    if j:
                        j["config"].pop("transformers_version", None)
                if old != new:
                    differ.append(out.name)
            else:
                OUT.mkdir(parents=True, exist_ok=True)
                out.write_text(text)
    if differ:
        print("differs from the installed transformers: " + ", ".join(differ))
        return 1
    print(f"{len(hf_oracle.VARIANTS)} variants " + ("as recorded" if args.check else f"written to {OUT}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
