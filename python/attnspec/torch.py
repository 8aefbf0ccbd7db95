"""attnspec's measurement of a model already loaded in PyTorch, on any device.

    >>> import attnspec.torch
    >>> run = attnspec.torch.analyze(model, input_ids, ctx=1024)      # model: a transformers decoder
    >>> run.heads[["layer", "head", "k90_field", "k90_weights"]]

transformers routes every attention layer through ``AttentionInterface``: the function receives
``query`` [b, H, n, d_h] and ``key`` [b, G, n, d_h] exactly as the softmax consumes them (after
projection biases, q/k norms and RoPE) and the layer's ``scaling``, ``softcap`` and ``sliding_window``.
While a window runs, attnspec registers a capturing function under its own name that records these
and then calls the model's own implementation (eager, sdpa, flash, ...) with the same arguments, so
the model computes exactly what it computes without capture. The mask function of the model's
implementation is registered under the same name (without it transformers would build no mask).

Each layer is reduced at once on the model's device: the float64 Gram matrices ``Q_h^T Q_h`` and
``Kc_g^T Kc_g`` (``Kc``: keys centred over positions, METRICS.md), ``d_h x d_h`` per head, go to the
C++ core, which takes their Cholesky factors and the singular values of ``s R_q R_k^T`` exactly as
``attnspec analyze`` does. Only the causal field (``field="causal"|"both"``) and soft-capped models
(Gemma2) need a layer's ``Q`` and ``K`` themselves, copied to the host as float32 for that layer only.
Nothing is kept across layers but the heads' spectra. Devices without float64 (mps) take a float32
Householder QR on the device instead and hand its R factors over; summary.json says which.

``W_Q^T W_K`` comes from the attention module's projection weights (``q_proj``/``k_proj``, Phi-3's
``qkv_proj``, GPT-2's ``c_attn``, GPT-NeoX's and Falcon's ``query_key_value``); where queries and keys
are not plain linear maps of the layer input (DeepSeek's low-rank latent attention) its columns are
nan and summary.json says why. The files are ``attnspec analyze``'s (heads.csv, head_summary.csv,
spectra.jsonl, summary.json with ``engine: torch``), written by the same C++ row writers.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from . import _core
from ._core import InputError

__all__ = ["analyze", "analyze_checkpoint", "load_checkpoint", "capture", "weight_matrices", "main"]

PathLike = Union[str, os.PathLike]
_PREFIX = "attnspec_capture_"


class _Stop(Exception):
    """Raised inside the forward pass once the last analysed layer is reduced (the rest is not needed)."""


# ---- Capture ------------------------------------------------------------------------------------

_ACTIVE: list = []  # the capture in progress (a stack: one per running forward)


def _eager_of(module):
    fn = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if fn is None:
        raise InputError(f"{type(module).__name__}: its module defines no eager_attention_forward, the function "
                         "transformers falls back to for eager attention; load the model with "
                         "attn_implementation='sdpa' to measure it")
    return fn


def _capturing_attention(module, query, key, value, attention_mask, *args, **kwargs):
    capture_state = _ACTIVE[-1]
    capture_state.record(module, query, key, attention_mask, args, kwargs)
    if capture_state.inner == "eager":
        if getattr(module, "reorder_and_upcast_attn", False) and hasattr(module, "_upcast_and_reordered_attn"):
            # GPT-2's eager attention takes its own upcast path when the implementation is named
            # "eager" (which the capture's name is not): take that path, so the model stays unchanged.
            return module._upcast_and_reordered_attn(query, key, value, attention_mask)
        inner = _eager_of(module)
    else:
        from transformers import AttentionInterface

        inner = AttentionInterface._global_mapping[capture_state.inner]
    return inner(module, query, key, value, attention_mask, *args, **kwargs)


def _configs(model) -> list:
    """The model's config and every sub-config (text configs of multimodal models)."""
    seen, out = set(), []
    for sub in model.modules():
        cfg = getattr(sub, "config", None)
        if cfg is not None and id(cfg) not in seen and hasattr(cfg, "_attn_implementation"):
            seen.add(id(cfg))
            out.append(cfg)
    return out


class capture:
    """Context manager: while it is open, every attention call of ``model`` goes through
    ``on_layer(layer, module, query, key, scale, window, softcap)`` (batch element 0; query
    [H, n, d_h], key [G, n, d_h] on the model's device) and then through the model's own
    implementation, unchanged. ``calls`` lists the layers seen."""

    def __init__(self, model, on_layer):
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface

        self.model = model
        self.on_layer = on_layer
        self.inner = model.config._attn_implementation or "eager"
        if self.inner.startswith(_PREFIX):
            raise InputError("the model is already inside an attnspec capture")
        self.name = _PREFIX + self.inner
        masks = AttentionMaskInterface._global_mapping
        if self.inner not in masks:
            raise InputError(f"attention implementation '{self.inner}' has no mask function in transformers' "
                             "AttentionMaskInterface; load the model with attn_implementation='sdpa' or 'eager'")
        if self.inner != "eager" and self.inner not in AttentionInterface._global_mapping:
            raise InputError(f"attention implementation '{self.inner}' is not registered with transformers' "
                             "AttentionInterface")
        AttentionInterface.register(self.name, _capturing_attention)
        AttentionMaskInterface.register(self.name, masks[self.inner])
        self.calls: list[int] = []
        self.modules: dict[int, Any] = {}

    def record(self, module, query, key, mask, args, kwargs):
        layer = getattr(module, "layer_idx", None)
        layer = len(self.calls) if layer is None else int(layer)
        self.calls.append(layer)
        self.modules.setdefault(layer, module)
        if not getattr(module, "is_causal", True):
            raise InputError(f"{type(self.model).__name__} attends bidirectionally ({type(module).__name__}.is_causal "
                             "is False): attnspec.torch measures decoders, whose softmax sees keys j <= i; for BERT "
                             "use attnspec analyze --engine native")
        if query.shape[0] != 1 or query.shape[2] != key.shape[2]:
            raise InputError(f"layer {layer}: one window at a time (batch 1, as many keys as queries); got query "
                             f"{tuple(query.shape)} and key {tuple(key.shape)}")
        scaling = kwargs.get("scaling", args[0] if args else None)
        scale = float(scaling) if scaling is not None else query.shape[-1] ** -0.5
        softcap = float(kwargs.get("softcap") or 0.0)
        window = int(kwargs.get("sliding_window") or 0)
        n = query.shape[2]
        if window == 0 and mask is not None and hasattr(mask, "ndim") and mask.ndim == 4 and mask.shape[-1] == n:
            # A sliding window some models put in the mask only: the keys the last query sees.
            last = mask[0, 0, -1]
            visible = int(last.sum() if last.dtype == _torch().bool else (last > _torch().finfo(last.dtype).min / 2).sum())
            window = visible if visible < n else 0
        self.on_layer(layer, module, query[0], key[0], scale, window, softcap)

    def __enter__(self):
        self.saved = [(cfg, cfg._attn_implementation) for cfg in _configs(self.model)]
        for cfg, impl in self.saved:
            if impl == self.inner:
                cfg._attn_implementation = self.name
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc):
        _ACTIVE.remove(self)
        for cfg, impl in self.saved:
            cfg._attn_implementation = impl
        return False


def _torch():
    import torch

    return torch


def _float64_on(device) -> bool:
    return device.type in ("cpu", "cuda")


def _grams(x, centre: bool):
    """Per-head Gram matrices [heads, d_h, d_h] float64 on the host of x [heads, n, d_h] (less its mean
    over positions when ``centre``): in float64 on the device where it has float64, else from the
    R factors of a float32 Householder QR there (R^T R, formed in float64 on the host)."""
    torch = _torch()
    if _float64_on(x.device):
        x = x.to(torch.float64)
        if centre:
            x = x - x.mean(dim=1, keepdim=True)
        return (x.mT @ x).cpu().numpy()
    x = x.to(torch.float32)
    if centre:
        x = x - x.mean(dim=1, keepdim=True)
    r = torch.linalg.qr(x, mode="r").R.cpu().to(torch.float64)
    return (r.mT @ r).numpy()


# ---- The projections' weights ----------------------------------------------------------------------


class NoWeights(Exception):
    """W_Q^T W_K is not defined for this attention module (the reason is the message)."""


def _weight_of(linear):
    w = getattr(linear, "weight", None)
    if w is None or not hasattr(w, "dim") or w.dim() != 2 or not w.dtype.is_floating_point:
        raise NoWeights(f"{type(linear).__name__} holds no plain floating-point weight matrix (quantized?)")
    return w.detach()


def weight_matrices(module, H: int, G: int, dh: int):
    """``(W_Q [H*d_h, d], W_K [G*d_h, d])`` of an attention module in the convention y = W x
    (METRICS.md), head blocks in order; :class:`NoWeights` where queries and keys are not plain
    linear maps of the layer input."""
    name = type(module).__name__
    if any(hasattr(module, a) for a in ("kv_a_proj_with_mqa", "q_a_proj", "kv_b_proj")):
        raise NoWeights(f"{name} is multi-head latent attention: keys (and queries) come from low-rank latents "
                        "(kv_a_proj_with_mqa -> kv_b_proj) with a RoPE part shared by all heads, so W_Q^T W_K is "
                        "not one d x d_h by d_h x d product; the field E~ is defined and measured")
    q, k = getattr(module, "q_proj", None), getattr(module, "k_proj", None)
    if q is not None and k is not None:
        wq, wk = _weight_of(q), _weight_of(k)
    elif getattr(module, "qkv_proj", None) is not None:  # Phi-3: Q | K | V row blocks
        w = _weight_of(module.qkv_proj)
        wq, wk = w[: H * dh], w[H * dh: (H + G) * dh]
    elif getattr(module, "c_attn", None) is not None:  # GPT-2 Conv1D [in, 3 * out]: y = x W + b
        w = _weight_of(module.c_attn)
        wq, wk = w[:, : H * dh].T, w[:, H * dh: (H + G) * dh].T
    elif getattr(module, "query_key_value", None) is not None:
        w = _weight_of(module.query_key_value)
        d = w.shape[1]
        if getattr(module, "new_decoder_architecture", False):  # Falcon: per KV group, its queries, key, value
            g = w.view(G, H // G + 2, dh, d)
            wq, wk = g[:, :-2].reshape(H * dh, d), g[:, -2].reshape(G * dh, d)
        elif getattr(module, "multi_query", False) and hasattr(module, "new_decoder_architecture"):
            wq, wk = w[: H * dh], w[H * dh: (H + 1) * dh]  # Falcon multi-query: H queries, one key, one value
        elif w.shape[0] == 3 * H * dh:  # GPT-NeoX, Falcon: [heads, (q, k, v), d_h] rows
            r = w.view(H, 3, dh, d)
            wq, wk = r[:, 0].reshape(H * dh, d), r[:, 1].reshape(H * dh, d)
        else:
            raise NoWeights(f"{name}.query_key_value has {w.shape[0]} rows, no layout attnspec knows for "
                            f"{H} query and {G} key heads of {dh}")
    else:
        raise NoWeights(f"{name} has no q_proj/k_proj, qkv_proj, c_attn or query_key_value linear map")
    if wq.shape[0] != H * dh or wk.shape[0] != G * dh or wq.shape[1] != wk.shape[1]:
        raise NoWeights(f"{name}: the query/key projections have {wq.shape[0]} and {wk.shape[0]} rows, not "
                        f"{H} x {dh} and {G} x {dh} (queries are not one linear map per head)")
    return wq, wk


def _weight_spectra(module, H: int, G: int, dh: int) -> np.ndarray:
    """[H, d_h] singular values of W_Q^(h)T W_K^(g) (NaN throughout when not defined: NoWeights)."""
    wq, wk = weight_matrices(module, H, G, dh)
    d = wq.shape[1]
    torch = _torch()
    gq = _grams(wq.reshape(H, dh, d).mT, centre=False)  # W_Q^(h)T is d x d_h: its Gram is W_Q^(h) W_Q^(h)T
    gk = _grams(wk.reshape(G, dh, d).mT, centre=False)
    del torch
    return _core.external_weight_spectra(gq, gk, d)


# ---- Inputs ----------------------------------------------------------------------------------------


def _specials(tokenizer) -> tuple[list[int], list[int]]:
    """The ids a Hugging Face tokenizer adds before and after a text (e.g. BOS)."""
    probe = "attnspec"
    plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    for i in range(len(full) - len(plain) + 1):
        if full[i:i + len(plain)] == plain:
            return full[:i], full[i + len(plain):]
    return [], []


def _cut(stream: Sequence[int], ctx: int, prefix: list, suffix: list, max_windows: int, source: str) -> list:
    body = ctx - len(prefix) - len(suffix)
    if body <= 0:
        raise InputError(f"--ctx {ctx} leaves no room for text after the tokenizer's {len(prefix) + len(suffix)} "
                         "special token(s)")
    count = len(stream) // body
    if count == 0:
        raise InputError(f"{source}: holds {len(stream)} tokens, fewer than one window of {body} (--ctx {ctx})")
    if max_windows > 0:
        count = min(count, max_windows)
    return [list(prefix) + [int(t) for t in stream[k * body:(k + 1) * body]] + list(suffix) for k in range(count)]


def _windows(inputs, tokenizer, ctx: int, max_windows: int) -> tuple[list, dict]:
    """Windows of ctx ids and summary.json's input description, from token ids (a sequence, a 1-D
    array or tensor, or a [streams, N] one) or texts (a str or a list of str, with ``tokenizer``)."""
    if isinstance(inputs, str) or (isinstance(inputs, (list, tuple)) and inputs and all(isinstance(t, str) for t in inputs)):
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if tokenizer is None:
            raise InputError("texts need tokenizer= (the model's Hugging Face tokenizer), or pass token ids")
        prefix, suffix = _specials(tokenizer)
        windows = []
        for i, text in enumerate(texts):
            ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
            left = max_windows - len(windows) if max_windows > 0 else 0
            if max_windows > 0 and left <= 0:
                break
            windows += _cut(ids, ctx, prefix, suffix, left, f"text {i}")
        return windows, {"texts": len(texts), "tokenizer": type(tokenizer).__name__,
                         "tokenizer_name": getattr(tokenizer, "name_or_path", ""), "prefix_special": prefix,
                         "suffix_special": suffix}
    if hasattr(inputs, "detach"):
        inputs = inputs.detach().cpu().numpy()
    arr = np.asarray(inputs)
    if arr.size == 0 or arr.dtype.kind not in "iu":
        raise InputError("token ids must be a non-empty sequence of integers (or texts with tokenizer=)")
    streams = [arr] if arr.ndim == 1 else list(arr) if arr.ndim == 2 else None
    if streams is None:
        raise InputError(f"token ids must be 1-D or [streams, N], not {arr.ndim}-D")
    if arr.min() < 0:
        raise InputError(f"token id {int(arr.min())} is negative")
    windows = []
    for i, s in enumerate(streams):
        left = max_windows - len(windows) if max_windows > 0 else 0
        if max_windows > 0 and left <= 0:
            break
        windows += _cut(s.tolist(), ctx, [], [], left, f"token stream {i}")
    return windows, {"token_ids": "in memory", "streams": len(streams), "stream_tokens": int(arr.size)}


def _text_config(config):
    get = getattr(config, "get_text_config", None)
    return get() if get else config


def _max_positions(config) -> Optional[int]:
    cfg = _text_config(config)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        v = getattr(cfg, key, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


# ---- The run ---------------------------------------------------------------------------------------


def analyze(model, inputs=None, *, tokenizer=None, ctx: int = 1024, field: str = "unmasked", out: Optional[PathLike] = None,
            max_windows: int = 0, layers: int = 0, save_spectra: bool = True, causal_method: str = "auto",
            causal_dense_max: int = 1024, causal_max_values: int = 512, allow_long_context: bool = False,
            threads: int = 0, quiet: bool = True, _input_description: Optional[dict] = None,
            _model_path: Optional[str] = None):
    """Measures ``model`` (a transformers decoder in PyTorch, on whatever device it sits) on ``inputs``
    and returns the :class:`attnspec.AnalysisResult` of the files written into ``out`` (a temporary
    folder when omitted): the same files and columns as ``attnspec analyze``.

    ``inputs``: token ids (a list, 1-D array or tensor used as given, or [streams, N]) cut into
    consecutive windows of ``ctx`` tokens, or a text / list of texts tokenized with ``tokenizer``
    (a Hugging Face tokenizer; each window starts and ends with what it adds, e.g. BOS).
    ``field``: ``unmasked`` (E~), ``causal`` or ``both`` (adds the causal field E~c's columns).
    ``layers``: analyze the first this many layers only (0: all). Bad input raises
    :class:`attnspec.InputError` before anything is written.
    """
    torch = _torch()
    from . import AnalysisResult

    t0 = time.perf_counter()
    if inputs is None:
        raise InputError("analyze needs token ids or texts")
    if field not in ("unmasked", "causal", "both"):
        raise InputError(f"--field: one of unmasked, causal, both (got '{field}')")
    if not isinstance(ctx, int) or ctx <= 0:
        raise InputError("--ctx must be a positive number of tokens")
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "_attn_implementation"):
        raise InputError(f"{type(model).__name__} is not a transformers PreTrainedModel: attnspec.torch captures "
                         "attention through transformers' AttentionInterface")
    if getattr(config, "is_encoder_decoder", False):
        raise InputError(f"{type(model).__name__} is an encoder-decoder; attnspec.torch measures decoder-only models")
    tcfg = _text_config(config)
    limit = _max_positions(config)
    if limit is not None and ctx > limit and not allow_long_context:
        raise InputError(f"--ctx {ctx} exceeds max_position_embeddings {limit}; pass --allow-long-context to run "
                         "anyway (models with learned positions cannot be extended)")
    windows, description = _windows(inputs, tokenizer, ctx, max_windows)
    if _input_description is not None:
        description = _input_description
    vocab = getattr(tcfg, "vocab_size", None)
    if vocab:
        for w, win in enumerate(windows):
            bad = [i for i, t in enumerate(win) if t >= vocab]
            if bad:
                raise InputError(f"token id {win[bad[0]]} (window {w}, position {bad[0]}) is outside the model's "
                                 f"vocabulary of {vocab}")
    n_layers = getattr(tcfg, "num_hidden_layers", None) or getattr(tcfg, "n_layer", None)
    if not isinstance(n_layers, int) or n_layers <= 0:
        raise InputError(f"{type(model).__name__}: its config names no number of layers (num_hidden_layers)")
    if layers < 0 or (n_layers and layers > n_layers):
        raise InputError(f"cannot analyze {layers} layers: the model has {n_layers}")
    last = (layers if layers > 0 else n_layers) - 1
    if threads:
        _core.set_threads(threads)
    try:
        device = next(model.parameters()).device
    except StopIteration:
        raise InputError(f"{type(model).__name__} has no parameters") from None
    need_blocks_for_causal = field != "unmasked"

    state: dict = {"layers": {}, "window": None, "softcap": {}, "scale": {}, "sliding": {}, "shapes": {}}

    def on_layer(layer, module, q, k, scale, window, softcap):
        if layer > last:
            raise _Stop()
        H, n, dh = q.shape
        G = k.shape[0]
        state["scale"][layer], state["sliding"][layer], state["softcap"][layer] = scale, window, softcap
        state["shapes"][layer] = (H, G, dh)
        blocks = need_blocks_for_causal or softcap > 0
        with torch.no_grad():
            gq, gk = _grams(q, centre=False), _grams(k, centre=True)
            qb = q.to(torch.float32).contiguous().cpu().numpy() if blocks else None
            kb = k.to(torch.float32).contiguous().cpu().numpy() if blocks else None
        state["window"].add_layer(layer, gq, gk, scale, window, softcap, qb, kb)
        if layer == last:
            raise _Stop()

    rows_heads, rows_spectra = [], []
    results = []
    forward_seconds = 0.0
    cap = capture(model, on_layer)
    was_training = model.training
    model.eval()
    try:
        for w, ids in enumerate(windows):
            tf = time.perf_counter()
            state["window"] = _core.ExternalWindow(w, len(ids), field, causal_method, causal_dense_max,
                                                   causal_max_values)
            cap.calls.clear()
            x = torch.tensor([ids], dtype=torch.long, device=device)
            try:
                with torch.no_grad(), cap:
                    model(input_ids=x, use_cache=False)
            except _Stop:
                pass
            except (IndexError, RuntimeError) as e:
                if "index" in str(e) and limit is not None and ctx > limit:
                    raise InputError(f"--ctx {ctx} is beyond the model's {limit} positions, which it cannot extend "
                                     f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
                raise
            forward_seconds += time.perf_counter() - tf
            expected = list(range(last + 1))
            if sorted(set(cap.calls)) != expected or len(cap.calls) != len(expected):
                _no_interface(model, cap.calls, expected)
            results.append(state["window"])
    finally:
        model.train(was_training)
    H, G, dh = state["shapes"][0]
    # W_Q^T W_K from the attention modules that were called, layer by layer.
    tw = time.perf_counter()
    weights = np.full((last + 1, H, dh), np.nan)
    undefined = None
    for layer in range(last + 1):
        h_l, g_l, dh_l = state["shapes"][layer]
        if (h_l, dh_l) != (H, dh):
            raise InputError(f"layer {layer} has {h_l} heads of {dh_l}, layer 0 {H} of {dh}: attnspec's files need "
                             "the same heads in every layer")
        try:
            with torch.no_grad():
                weights[layer] = _weight_spectra(cap.modules[layer], h_l, g_l, dh_l)
        except NoWeights as e:
            undefined = str(e)
    weight_seconds = time.perf_counter() - tw
    # A model that soft-caps its logits (Gemma2) gets the capped field's columns in every run, as in
    # the native engine; the layers said so through their softcap argument.
    capped = any(v > 0 for v in state["softcap"].values())
    for win in results:
        win.set_capped(capped)
        heads_csv, spectra_jsonl = win.rows(weights, save_spectra)
        rows_heads.append(heads_csv)
        rows_spectra.append(spectra_jsonl)

    import transformers

    impl = cap.inner
    conventions = {
        "engine": "torch: Q and K captured where transformers' AttentionInterface hands them to the model's own "
                  f"attention ({impl}), batch 1, in the model's dtype ({str(_param_dtype(model)).removeprefix('torch.')}) "
                  f"on {device}; s = the scaling the layer passes (1/sqrt(d_h) when it passes none; a model that folds s into "
                  "its query projection, as OPT does, passes 1 with s q as the query: E~ and its spectra are the same)",
        "reduction": ("per head, the Gram matrices Q^T Q and Kc^T Kc formed in float64 on the device, then the "
                      "Cholesky factors and the small core's singular values in float64 on the host (C++)")
        if _float64_on(device) else
        ("per head, R factors of a float32 Householder QR on the device (it has no float64), then R^T R, the "
         "Cholesky factors and the small core's singular values in float64 on the host (C++)"),
    }
    if getattr(tcfg, "alibi", False) or getattr(tcfg, "position_embedding_type", None) == "alibi":
        conventions["positions"] = ("ALiBi: the position bias reaches the softmax through the attention mask and is "
                                    "not part of E = s q.k (METRICS.md); the spectra are of the content logits")
    if undefined:
        conventions["weights_undefined"] = ("the *_weights columns are nan and spectra.jsonl's weights empty: "
                                            + undefined)
    name = _model_path or getattr(config, "_name_or_path", "") or type(model).__name__
    summary = {
        "attnspec_version": _core.__version__,
        "command": "analyze",
        "engine": "torch",
        "model": {
            "path": str(name),
            "family": getattr(tcfg, "model_type", None) or getattr(config, "model_type", ""),
            "class": type(model).__name__,
            "format": "torch",
            "layers": n_layers,
            "heads": H,
            "kv_heads": G,
            "head_dim": dh,
            "d_model": getattr(tcfg, "hidden_size", None),
            "vocab_size": vocab,
            "max_positions": limit,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "dtypes": str(_param_dtype(model)).removeprefix("torch."),
            "softmax_scale": [state["scale"][l] for l in range(last + 1)],
            "sliding_window": [state["sliding"][l] for l in range(last + 1)],
            "attention": "causal",
            "positions": "as the model computes them (transformers)",
        },
        "torch": {"device": str(device), "dtype": str(_param_dtype(model)).removeprefix("torch."),
                  "attn_implementation": impl, "torch_version": torch.__version__,
                  "transformers_version": transformers.__version__},
        "input": description,
        "ctx": ctx,
        "windows": len(windows),
        "layers_analyzed": last + 1,
        "conventions": conventions,
        "threads": int(torch.get_num_threads()),
        "timing_seconds": {"total": time.perf_counter() - t0, "forward_and_field_spectra": forward_seconds,
                           "weight_spectra": weight_seconds},
    }
    if capped:
        summary["model"]["attn_softcap"] = max(state["softcap"].values())
    out_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="attnspec-torch-"))
    _core.write_external_run(out_dir, "".join(rows_heads), "".join(rows_spectra), save_spectra, field, causal_method,
                             causal_dense_max, causal_max_values, capped, json.dumps(summary))
    if not quiet:
        print(f"attnspec: wrote {out_dir}", file=sys.stderr)
    return AnalysisResult.load(out_dir)


def _param_dtype(model):
    try:
        return next(model.parameters()).dtype
    except StopIteration:
        return None


def _no_interface(model, calls, expected):
    """One clear InputError when attention calls did not come through AttentionInterface as expected."""
    attention = sorted({type(m).__name__ for m in model.modules() if type(m).__name__.endswith("Attention")})
    which = ", ".join(attention) or "no module named *Attention"
    if not calls:
        raise InputError(f"no attention layer of {type(model).__name__} called transformers' AttentionInterface "
                         f"(its attention modules: {which}): their attention is computed by their own code, which "
                         "attnspec cannot see; load the architecture's transformers implementation (AutoModelForCausalLM "
                         "without trust_remote_code, attn_implementation 'eager' or 'sdpa'), or use attnspec analyze "
                         "--engine native for the families 'attnspec models' lists")
    missing = sorted(set(expected) - set(calls))
    raise InputError(f"{type(model).__name__}: attention calls through transformers' AttentionInterface came for "
                     f"layers {sorted(set(calls))[:8]}{'...' if len(set(calls)) > 8 else ''} (in {len(calls)} calls), "
                     f"expected one per layer 0..{expected[-1]}" + (f"; layers {missing[:8]} bypass it ({which})"
                                                                     if missing else ""))


# ---- Checkpoints and the command line --------------------------------------------------------------


def _device(name: str):
    torch = _torch()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: this PyTorch sees no CUDA device")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise InputError("--device mps: this PyTorch has no MPS device")
    return torch.device(name)


def load_checkpoint(model: PathLike, *, device: str = "auto", dtype: str = "float32"):
    """A transformers decoder from a checkpoint folder or hub id (AutoModelForCausalLM), in eval mode on
    ``device`` in ``dtype`` (``auto``: as stored). InputError when transformers cannot load it."""
    torch = _torch()
    import transformers

    where = os.fspath(model)
    if not os.path.exists(where) and not _core.looks_like_hub_id(where):
        raise InputError(f"{where}: no such checkpoint folder (nor a Hugging Face hub id)")
    if not os.path.exists(where):
        try:
            where = _core.resolve_model(where)
        except InputError:
            pass  # transformers may still find it (other file formats in the hub cache)
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}
    target = _device(device)
    try:
        config = transformers.AutoConfig.from_pretrained(where)
    except Exception as e:  # noqa: BLE001 - transformers raises many types for an unreadable checkpoint
        raise InputError(f"{where}: transformers cannot read its config ({str(e).splitlines()[0]})") from None
    if getattr(config, "is_encoder_decoder", False):
        raise InputError(f"{where}: {config.model_type} is an encoder-decoder; attnspec.torch measures decoder-only "
                         "models")
    try:
        m = transformers.AutoModelForCausalLM.from_pretrained(where, dtype=dtypes[dtype])
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{where}: transformers cannot load it as a causal LM ({str(e).splitlines()[0]})") from None
    return m.to(target).eval(), where


def analyze_checkpoint(model: PathLike, text: Optional[PathLike] = None, token_ids=None, *, out: Optional[PathLike] = None,
                       device: str = "auto", dtype: str = "float32", tokenizer: Optional[PathLike] = None,
                       ctx: int = 1024, max_windows: int = 0, strip_gutenberg="auto", **options):
    """``attnspec analyze --engine torch``: the checkpoint loaded by transformers on ``device`` in
    ``dtype``, the input read as the native engine reads it (attnspec's tokenizer, same windows)."""
    m, where = load_checkpoint(model, device=device, dtype=dtype)
    request = dict(model=where if os.path.exists(where) else ".", ctx=ctx, max_windows=max_windows,
                   strip_gutenberg=strip_gutenberg, tokenizer=tokenizer)
    if text is not None:
        request["text"] = os.fspath(text)  # read_input says when there is no tokenizer
    elif isinstance(token_ids, (str, os.PathLike)):
        request["token_ids"] = os.fspath(token_ids)
    else:  # ids in memory, used as given
        return analyze(m, token_ids, ctx=ctx, max_windows=max_windows, out=out, _model_path=str(where), **options)
    windows, description = _core.read_input(**{k: v for k, v in request.items() if v is not None})
    return analyze(m, np.asarray(windows, dtype=np.int64).reshape(-1), ctx=ctx, out=out,
                   _input_description=json.loads(description), _model_path=str(where), **options)


def _parser():
    from ._cli import Parser, add_engine_option

    p = Parser(prog="attnspec analyze --engine torch",
               description="attnspec analyze with the model run in PyTorch (transformers)")
    for o in _core.options():
        if "analyze" in o["commands"]:
            add_engine_option(p, o["name"])
    return p


def main(argv=None) -> int:
    from ._cli import run_command

    def body(a) -> int:
        # One line on stderr for the command line: transformers' progress bars and advice stay quiet.
        import warnings

        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        warnings.simplefilter("ignore")
        if a.threads:
            _torch().set_num_threads(a.threads)  # the command's process only: PyTorch's threads as attnspec's
        if a.data_side or a.invariants or a.resume:
            raise InputError("--engine torch does not compute --data-side or --invariants, nor --resume a run yet; "
                             "use --engine native for them")
        if a.out is None or a.model is None:
            raise InputError("analyze needs --model and --out")
        out = Path(a.out)
        analyze_checkpoint(a.model, a.text, a.token_ids, out=out, device=a.device, dtype=a.dtype,
                           tokenizer=a.tokenizer, ctx=a.ctx, max_windows=a.max_windows,
                           strip_gutenberg=a.strip_gutenberg, field=a.field, layers=a.layers,
                           save_spectra=a.save_spectra, causal_method=a.causal_method,
                           causal_dense_max=a.causal_dense_max, causal_max_values=a.causal_max_values,
                           allow_long_context=a.allow_long_context, threads=a.threads, quiet=a.quiet)
        return 0

    return run_command("analyze --engine torch", _parser, body, argv)
