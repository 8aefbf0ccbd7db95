"""The pipeline a researcher writes without attnspec: run the model with transformers, hook out each
head's post-RoPE queries and keys, and take singular values with torch.

    python bench/baseline.py --model DIR --token-ids FILE --ctx N --out heads.csv [--method dense|reduced]
                             [--gguf-file NAME]

--method dense   (the usual script) builds each row-centred n x n field E~ and each d x d W_Q^T W_K
                 and calls torch.linalg.svdvals on them: O(n^3) per head and window.
--method reduced uses the exact O(n d_h^2) QR reduction of METRICS.md in torch (only the forward
                 then differs from attnspec's).
--gguf-file NAME loads DIR/NAME with transformers' GGUF loader (it dequantizes every tensor to
                 float32 with gguf-py) instead of a safetensors folder.
All in float32, as such scripts run. Writes window,layer,head,kv_head,k90_field,k90_weights.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import json
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def k90(s: torch.Tensor) -> int:
    v = s.double() ** 2
    c = torch.cumsum(v, 0) / v.sum()
    return int(torch.searchsorted(c, torch.tensor(0.9, dtype=torch.float64)).item()) + 1


@contextlib.contextmanager
def capture_qk(model):
    """Wraps the family's eager_attention_forward to record (query, key, scaling) per layer."""
    records = []
    family = model.config.model_type
    module = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
    original = module.eager_attention_forward

    def wrapped(mod, query, key, value, attention_mask, scaling=None, *args, **kwargs):
        records.append((query.detach(), key.detach(), scaling if scaling is not None else mod.scaling))
        return original(mod, query, key, value, attention_mask, scaling, *args, **kwargs)

    module.eager_attention_forward = wrapped
    try:
        yield records
    finally:
        module.eager_attention_forward = original


def head_blocks(model, layer: int):
    """W_Q and W_K of a layer in the y = W x convention: [H*d_h, d], [G*d_h, d]."""
    cfg = model.config
    if cfg.model_type == "gpt2":
        w = model.transformer.h[layer].attn.c_attn.weight  # Conv1D [d, 3d]
        d = cfg.n_embd
        return w[:, :d].T, w[:, d:2 * d].T
    attn = model.model.layers[layer].self_attn
    return attn.q_proj.weight, attn.k_proj.weight


def reduced_svdvals(a1: torch.Tensor, a2: torch.Tensor) -> torch.Tensor:
    """Singular values of a1 a2^T through thin QR of both factors (float64)."""
    r1 = torch.linalg.qr(a1.double(), mode="r")[1]
    r2 = torch.linalg.qr(a2.double(), mode="r")[1]
    return torch.linalg.svdvals(r1 @ r2.T)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--token-ids", required=True)
    ap.add_argument("--ctx", type=int, required=True)
    ap.add_argument("--max-windows", type=int, default=0)
    ap.add_argument("--method", choices=["dense", "reduced"], default="dense")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--timing", help="write phase timings (JSON) here")
    ap.add_argument("--gguf-file", help="a GGUF file in --model's folder, read by transformers' GGUF loader")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    gguf = {"gguf_file": args.gguf_file} if args.gguf_file else {}
    config = AutoConfig.from_pretrained(args.model, **gguf)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="eager",
                                                 **gguf).eval()
    t_load = time.perf_counter() - t0
    ids = json.load(open(args.token_ids))
    windows = [ids[i:i + args.ctx] for i in range(0, len(ids) - args.ctx + 1, args.ctx)]
    if args.max_windows:
        windows = windows[: args.max_windows]
    L = config.num_hidden_layers
    H = config.num_attention_heads
    G = getattr(config, "num_key_value_heads", None) or H
    rows, t_forward, t_spectra = [], 0.0, 0.0

    # W_Q^T W_K once per model.
    t1 = time.perf_counter()
    k90_w = {}
    with torch.no_grad():
        for l in range(L):
            wq, wk = head_blocks(model, l)
            dh = wq.shape[0] // H
            for h in range(H):
                g = h // (H // G)
                q_blk, k_blk = wq[h * dh:(h + 1) * dh], wk[g * dh:(g + 1) * dh]
                if args.method == "dense":
                    s = torch.linalg.svdvals(q_blk.T @ k_blk)
                else:
                    s = reduced_svdvals(q_blk.T, k_blk.T)
                k90_w[l, h] = k90(s)
    t_weights = time.perf_counter() - t1

    for w, win in enumerate(windows):
        t1 = time.perf_counter()
        with torch.no_grad(), capture_qk(model) as rec:
            model.model(torch.tensor([win])) if hasattr(model, "model") else model.transformer(torch.tensor([win]))
        t2 = time.perf_counter()
        t_forward += t2 - t1
        with torch.no_grad():
            for l, (q, k, scale) in enumerate(rec):
                for h in range(H):
                    g = h // (H // G)
                    qh, kg = q[0, h], k[0, g]  # [n, d_h]
                    if args.method == "dense":
                        e = scale * (qh @ kg.T)
                        e = e - e.mean(dim=1, keepdim=True)
                        s = torch.linalg.svdvals(e)
                    else:
                        s = scale * reduced_svdvals(qh, kg - kg.mean(dim=0, keepdim=True))
                    rows.append((w, l, h, g, k90(s), k90_w[l, h]))
        t_spectra += time.perf_counter() - t2
    with open(args.out, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["window", "layer", "head", "kv_head", "k90_field", "k90_weights"])
        wr.writerows(rows)
    if args.timing:
        json.dump({"load": t_load, "weights": t_weights, "forward": t_forward, "field_spectra": t_spectra,
                   "total": time.perf_counter() - t0}, open(args.timing, "w"))


if __name__ == "__main__":
    main()
