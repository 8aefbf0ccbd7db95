"""The query/key maps of ``attnspec compress`` (``projections.safetensors``) applied to a Hugging Face
``transformers`` model, so the compressed model runs where people deploy.

The file holds, per layer ``l`` and KV head ``g``, two float32 ``[d_h, k]`` matrices:
``layers.{l}.kv_heads.{g}.key`` (R) and ``layers.{l}.kv_heads.{g}.query`` (L). A compressed head's
logits are ``s (L^T q) . (R^T k)`` with ``q``, ``k`` its query and key after RoPE, so a key cache
stores ``R^T k`` (``k`` numbers per token instead of ``d_h``) and every query head of the KV head
maps its query by ``L^T``. The recipe, as :func:`apply_projections` does it:

    >>> import transformers, attnspec.projections
    >>> model = transformers.AutoModelForCausalLM.from_pretrained("ckpt", attn_implementation="eager")
    >>> attnspec.projections.apply_projections(model, "runs/compress/projections.safetensors")
    >>> logits = model(input_ids).logits   # the compressed model attnspec evaluated

It registers an attention function with ``transformers.AttentionInterface`` that maps the post-RoPE
queries and keys (zero-padding them back to ``d_h``, which leaves every logit ``s (L^T q).(R^T k)``)
and then runs the model's own eager attention (masks, sliding windows, soft-capping unchanged); the
same name is registered with ``AttentionMaskInterface`` for eager's additive masks.
"""
from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path
from typing import Union

PathLike = Union[str, os.PathLike]
_NAME = "attnspec_projected"


def load_projections(path: PathLike) -> tuple[dict, dict]:
    """``({(layer, kv_head): (L, R)}, metadata)`` from a projections.safetensors file, as numpy arrays."""
    import numpy as np

    data = Path(path).read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    body = memoryview(data)[8 + size:]
    metadata = header.pop("__metadata__", {})
    arrays = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {t['dtype']}, expected F32")
        begin, end = t["data_offsets"]
        arrays[name] = np.frombuffer(body[begin:end], dtype="<f4").reshape(t["shape"])
    maps = {}
    for name in arrays:
        parts = name.split(".")  # layers.{l}.kv_heads.{g}.{query|key}
        if len(parts) == 5 and parts[0] == "layers" and parts[2] == "kv_heads" and parts[4] == "key":
            l, g = int(parts[1]), int(parts[3])
            maps[(l, g)] = (arrays[f"layers.{l}.kv_heads.{g}.query"], arrays[name])
    return maps, metadata


def apply_projections(model, path: PathLike):
    """Makes ``model`` (a transformers decoder) compute every head's logits through the maps of
    ``path``; returns the model. Uses the model's eager attention after mapping."""
    import torch
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    maps, _ = load_projections(path)
    dtype = next(model.parameters()).dtype
    tensors = {key: (torch.from_numpy(L.copy()).to(dtype), torch.from_numpy(R.copy()).to(dtype))
               for key, (L, R) in maps.items()}

    def projected(module, query, key, value, attention_mask, **kwargs):
        # query [b, H, n, d_h], key [b, G, n, d_h], both after RoPE.
        layer = module.layer_idx
        H, G, dh = query.shape[1], key.shape[1], query.shape[-1]
        q, k = torch.zeros_like(query), torch.zeros_like(key)
        for g in range(G):
            L, R = tensors[(layer, g)]
            r = L.shape[1]
            k[:, g, :, :r] = key[:, g] @ R
            for h in range(g * (H // G), (g + 1) * (H // G)):
                q[:, h, :, :r] = query[:, h] @ L
        eager = sys.modules[type(module).__module__].eager_attention_forward
        return eager(module, q, k, value, attention_mask, **kwargs)

    AttentionInterface.register(_NAME, projected)
    AttentionMaskInterface.register(_NAME, eager_mask)  # the additive masks eager attention expects
    model.config._attn_implementation = _NAME
    for sub in model.modules():  # text configs of multimodal models
        cfg = getattr(sub, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation"):
            cfg._attn_implementation = _NAME
    return model
