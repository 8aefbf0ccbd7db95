"""Figure G: attnspec's forward against llama.cpp's prompt processing, on the same GGUF files and tokens.

llama.cpp is the engine people pick for a fast CPU forward, and its prompt processing (a whole prompt
through every layer as one batch) is the work attnspec's forward does per window. Both run here on
the same file, the same token ids and the same thread count, in one worker process per case that
alternates the engines (a b a b), so a busy machine slows both alike.

What is timed:
  attnspec  `Model.forward_profile`: every layer, the last up to its Q and K (what `analyze` runs);
  llama.cpp `Llama.eval` of the ids as one batch (n_batch = n_ubatch = n_ctx = the window): every layer
            and the last token's logits, its default CPU build (GGML_NATIVE, its own matmul kernels),
            twice: with its flash-attention kernel off (llama-cpp-python's default) and on (what
            llama.cpp's own tools pick on CPU, `-fa auto`). Ratios are against the faster of the two.
Both are wall-clock seconds of the call, after one untimed warm-up call each. attnspec keeps the
float32 copies of F16 and quantized weights across windows when they fit in a quarter of the
memory (every file here does), so its timed calls are a run's later windows; what the first
window spends widening them is logged beside each case.

llama-cpp-python is built from source once (pip wheel, pinned below) into bench/cache/; the F32, F16
and Q8_0 files are made from the real models' published quantized files with llama.cpp's own
quantizer (llama_model_quantize, requantizing; the weights are the published ones, dequantized), and
the Llama-3.2-1B-shape file is random float32 (seeded) written with gguf-py, then quantized the same
way. Its vocabulary is SmolLM2's (49152 tokens, not 128256): llama.cpp needs a real tokenizer in the
file, and the vocabulary only sizes the embedding table and the last token's logits.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / "cache"
PY = sys.executable

LLAMA_CPP_PYTHON = "0.3.36"  # pinned: llama.cpp as vendored by this release of llama-cpp-python
SITE = CACHE / f"llama-cpp-python-{LLAMA_CPP_PYTHON}"
FORMATS = ("F32", "F16", "Q8_0", "Q4_K_M")
# llama.cpp's file types (enum llama_ftype) for llama_model_quantize.
FTYPES = {"F32": 0, "F16": 1, "Q8_0": 7, "Q4_K_M": 15}
REAL = {"smollm2-135m": "SmolLM2-135M", "qwen2.5-coder-0.5b": "Qwen2.5-Coder-0.5B", "gemma3-270m": "Gemma-3-270M"}
LLAMA_1B = "Llama-3.2-1B-shape"


def log(msg: str) -> None:
    print(msg, flush=True)


def llama_cpp_site() -> Path:
    """The folder holding the llama_cpp package, built from source on first use (minutes: llama.cpp
    is compiled for this CPU)."""
    if (SITE / "llama_cpp" / "__init__.py").exists():
        return SITE
    wheels = CACHE / "wheels"
    wheel = next(wheels.glob(f"llama_cpp_python-{LLAMA_CPP_PYTHON}-*.whl"), None) if wheels.exists() else None
    if wheel is None:
        log(f"G  building llama-cpp-python {LLAMA_CPP_PYTHON} from source (llama.cpp for this CPU; "
            "about 7 minutes on 2 cores) ...")
        t0 = time.perf_counter()
        subprocess.run([PY, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                        f"llama-cpp-python=={LLAMA_CPP_PYTHON}"], check=True)
        log(f"G  built in {time.perf_counter() - t0:.0f} s")
        wheel = next(wheels.glob(f"llama_cpp_python-{LLAMA_CPP_PYTHON}-*.whl"))
    subprocess.run([PY, "-m", "pip", "install", "-q", "--no-deps", "--target", str(SITE), str(wheel)], check=True)
    # What llama_cpp imports besides numpy and typing-extensions (installed beside attnspec).
    subprocess.run([PY, "-m", "pip", "install", "-q", "--target", str(SITE), "--no-deps", "diskcache"], check=True)
    return SITE


def _in_worker(code: str, *args: str, timeout: float = 3600) -> dict:
    """Runs `code` (which prints one JSON line last) in a fresh Python with llama_cpp importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(llama_cpp_site()), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"figure G worker failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


_QUANTIZE = r"""
import ctypes, json, sys
import llama_cpp as L
src, dst, ftype = sys.argv[1], sys.argv[2], int(sys.argv[3])
L.llama_backend_init()
params = L.llama_model_quantize_default_params()
params.ftype = ftype
params.allow_requantize = True
params.nthread = 2
rc = L.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
print(json.dumps({"rc": rc}))
"""


def quantized(src: Path, fmt: str, dst: Path) -> Path:
    """`src` rewritten as `fmt` by llama.cpp's quantizer (cached)."""
    if dst.exists():
        return dst
    tmp = dst.with_suffix(".part")
    r = _in_worker(_QUANTIZE, str(src), str(tmp), str(FTYPES[fmt]))
    if r["rc"] != 0:
        raise RuntimeError(f"llama_model_quantize {src} -> {fmt} failed ({r['rc']})")
    tmp.rename(dst)
    return dst


def file_type(path: Path) -> str:
    """The file's general.file_type as a FORMATS name (or the number)."""
    import gguf

    r = gguf.GGUFReader(str(path))
    f = r.fields.get("general.file_type")
    value = int(f.parts[f.data[0]][0]) if f is not None else -1
    return {v: k for k, v in FTYPES.items()}.get(value, str(value))


def llama_1b_f32(tokenizer_from: Path, out: Path) -> Path:
    """A Llama-3.2-1B-shape GGUF in float32 with random weights (N(0, 0.02), seeded) and the
    tokenizer of `tokenizer_from` (so llama.cpp loads it), written the way llama.cpp's converter
    writes a llama-architecture file (tied embeddings: no output.weight)."""
    if out.exists():
        return out
    import gguf
    import numpy as np

    d, f, L, H, G, dh = 2048, 8192, 16, 32, 8, 64
    src = gguf.GGUFReader(str(tokenizer_from))
    vocab = len(src.fields["tokenizer.ggml.tokens"].data)
    tmp = out.with_suffix(".part")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name(LLAMA_1B)
    w.add_context_length(131072)
    w.add_embedding_length(d)
    w.add_block_count(L)
    w.add_feed_forward_length(f)
    w.add_head_count(H)
    w.add_head_count_kv(G)
    w.add_rope_dimension_count(dh)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_file_type(0)
    for name, field in src.fields.items():  # the tokenizer, as the source file holds it
        if not name.startswith("tokenizer."):
            continue
        value = field.contents()
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(name, value, vtype, sub_type=field.types[-1])
        else:
            w.add_key_value(name, value, vtype)
    rng = np.random.default_rng(0)

    def rand(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    w.add_tensor("token_embd.weight", rand(vocab, d))
    w.add_tensor("output_norm.weight", np.ones(d, np.float32))
    for i in range(L):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(d, np.float32))
        w.add_tensor(p + "attn_q.weight", rand(H * dh, d))
        w.add_tensor(p + "attn_k.weight", rand(G * dh, d))
        w.add_tensor(p + "attn_v.weight", rand(G * dh, d))
        w.add_tensor(p + "attn_output.weight", rand(d, H * dh))
        w.add_tensor(p + "ffn_norm.weight", np.ones(d, np.float32))
        w.add_tensor(p + "ffn_gate.weight", rand(f, d))
        w.add_tensor(p + "ffn_up.weight", rand(f, d))
        w.add_tensor(p + "ffn_down.weight", rand(d, f))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.rename(out)
    return out


def model_files(models: list[str], formats: list[str]) -> dict[tuple[str, str], Path]:
    """{(model, format): GGUF path} for every case, made on first use in bench/cache/gguf/."""
    from attnspec import real_models

    folder = CACHE / "gguf"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    smol = real_models.verify("smollm2-135m")
    for key, name in REAL.items():
        if name not in models:
            continue
        src = real_models.verify(key)
        own = file_type(src)
        for fmt in formats:
            out[(name, fmt)] = src if own == fmt else quantized(src, fmt, folder / f"{name}.{fmt}.gguf")
    if LLAMA_1B in models:
        base = llama_1b_f32(smol, folder / f"{LLAMA_1B}.F32.gguf")
        for fmt in formats:
            out[(LLAMA_1B, fmt)] = base if fmt == "F32" else quantized(base, fmt, folder / f"{LLAMA_1B}.{fmt}.gguf")
    return out


# One case in a fresh process: the engines named in argv on one file, the same ids, alternating.
# Engines: "attnspec", "llama.cpp" (flash attention off), "llama.cpp-fa" (flash attention on).
_CASE = r"""
import json, statistics, sys, time
import numpy as np
path, ids_file, ctx, threads, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
engines = sys.argv[6].split(",")
ids = json.loads(open(ids_file).read())[:ctx]
assert len(ids) == ctx, (len(ids), ctx)
from attnspec import _core
import llama_cpp
_core.set_threads(threads)
profile = None
def attnspec_run(ids=ids, model=_core.Model.load(path) if "attnspec" in engines else None):
    global profile
    profile = model.forward_profile(ids)
    return profile["seconds"]["total"]
def llama_cpp_run(flash):
    llm = llama_cpp.Llama(model_path=path, n_ctx=ctx, n_batch=ctx, n_ubatch=ctx, n_threads=threads,
                          n_threads_batch=threads, logits_all=False, verbose=False, flash_attn=flash)
    def run(ids=ids):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t = time.perf_counter() - t0
        # The same prompt: llama.cpp holds exactly these ids, no BOS added, one sequence of ctx tokens.
        assert llm.n_tokens == len(ids) and list(llm.input_ids[:llm.n_tokens]) == ids
        return t
    return run
runs = {e: attnspec_run if e == "attnspec" else llama_cpp_run(e == "llama.cpp-fa") for e in engines}
for run in runs.values():
    run(ids[:64])  # warm-up: page in the file, allocate buffers (attnspec: widen what it keeps)
first = profile  # what a run's first window spends widening weights once, when they are kept
times = {e: [] for e in engines}
for _ in range(repeats):
    for e, run in runs.items():
        times[e].append(run())
print(json.dumps({"seconds": times, "profile": profile, "first_profile": first, "n": len(ids),
                  "llama_cpp_system": llama_cpp.llama_print_system_info().decode()}))
"""
ENGINES = ("attnspec", "llama.cpp", "llama.cpp-fa")


def run_case(path: Path, ids: Path, ctx: int, threads: int, repeats: int, engines=ENGINES) -> dict:
    return _in_worker(_CASE, str(path), str(ids), str(ctx), str(threads), str(repeats), ",".join(engines))


def figure_g(results: dict, args, book_ids) -> None:
    """G: per model, format, ctx and thread count, attnspec's forward time over llama.cpp's prompt
    processing time (ratio < 1: attnspec faster), and tokens per second of both."""
    from attnspec import real_models

    t_start = time.perf_counter()
    models = args.g_models.split(",")
    formats = args.g_formats.split(",")
    ctxs = [int(c) for c in args.g_ctx.split(",")]
    threads_list = [int(t) for t in args.g_threads.split(",")]
    llama_cpp_site()
    files = model_files(models, formats)
    smol = real_models.verify("smollm2-135m")
    cases = []
    for model in models:
        # Ids of a book, tokenized by the model's own tokenizer (the 1B shape shares SmolLM2's).
        ids_src = smol if model == LLAMA_1B else files[(model, formats[0])]
        ids = book_ids(ids_src, max(ctxs))
        for fmt in formats:
            for ctx in ctxs:
                for threads in threads_list:
                    repeats = 1 if ctx > 1024 else args.g_repeats  # long windows: one call each
                    r = run_case(files[(model, fmt)], ids, ctx, threads, repeats)
                    t = {e: statistics.median(v) for e, v in r["seconds"].items()}
                    a, off, on = t["attnspec"], t["llama.cpp"], t["llama.cpp-fa"]
                    b = min(off, on)
                    case = {"model": model, "format": fmt, "ctx": ctx, "threads": threads, "file": str(files[(model, fmt)]),
                            "attnspec_seconds": r["seconds"]["attnspec"], "llama_cpp_seconds": r["seconds"]["llama.cpp"],
                            "llama_cpp_flash_attn_seconds": r["seconds"]["llama.cpp-fa"],
                            "ratio": a / b, "ratio_flash_attn_off": a / off, "ratio_flash_attn_on": a / on,
                            "attnspec_tokens_per_s": ctx / a, "llama_cpp_tokens_per_s": ctx / b,
                            "attnspec_profile": r["profile"], "attnspec_first_call_profile": r["first_profile"]}
                    cases.append(case)
                    once = r["first_profile"]
                    kept = (f", widened {once['widened_bytes'] / 1e9:.1f} GB once in "
                            f"{once['seconds']['embed_and_widen']:.2f} s" if once["widened_bytes"] else "")
                    log(f"G  {model:20s} {fmt:7s} ctx {ctx:5d} {threads} thr: attnspec {a:7.2f} s "
                        f"({ctx / a:7.0f} tok/s{kept}), llama.cpp {off:7.2f} s, with flash attention {on:7.2f} s "
                        f"({ctx / b:7.0f} tok/s), ratio {a / b:.2f}")
    # One line per format: the ratios of every model, ctx and thread count (against llama.cpp's faster setting).
    for fmt in formats:
        row = [c for c in cases if c["format"] == fmt]
        log(f"G  {fmt:7s} attnspec / llama.cpp time: " + "; ".join(
            f"{c['model']} {c['ctx']}/{c['threads']}t {c['ratio']:.2f}" for c in row) +
            f"  (median {statistics.median(c['ratio'] for c in row):.2f})")
    results["G_llama_cpp"] = {"llama_cpp_python": LLAMA_CPP_PYTHON, "cases": cases,
                              "llama_cpp_system": r["llama_cpp_system"],
                              "seconds": time.perf_counter() - t_start}


def figure_g_scale(results: dict, args, book_ids, plot: Path) -> None:
    """G (scale): time per token as the window grows (ctx 512 -> 8192) for both engines on the
    Llama-3.2-1B-shape file, so the O(n^2) attention term's share shows; plotted to `plot`."""
    from attnspec import real_models

    fmt = args.g_scale_format
    files = model_files([LLAMA_1B], [fmt])
    ids = book_ids(real_models.verify("smollm2-135m"), max(args.g_scale_ctx))
    threads = max(int(t) for t in args.g_threads.split(","))
    rows = []
    for ctx in args.g_scale_ctx:
        # Two workers per window: llama.cpp's plain attention holds the n x n scores of every head
        # (8192^2 x 32 heads x 4 bytes = 8.6 GB at 8192 on this shape), so the flash-attention context
        # runs in a worker of its own.
        r = run_case(files[(LLAMA_1B, fmt)], ids, ctx, threads, 1, ("attnspec", "llama.cpp"))
        fa = run_case(files[(LLAMA_1B, fmt)], ids, ctx, threads, 1, ("llama.cpp-fa",))
        a, b, c = r["seconds"]["attnspec"][0], r["seconds"]["llama.cpp"][0], fa["seconds"]["llama.cpp-fa"][0]
        prof = r["profile"]
        share = prof["seconds"]["attention"] / prof["seconds"]["total"]
        rows.append({"ctx": ctx, "attnspec_seconds": a, "llama_cpp_seconds": b, "llama_cpp_flash_attn_seconds": c,
                     "attnspec_ms_per_token": 1e3 * a / ctx, "llama_cpp_ms_per_token": 1e3 * b / ctx,
                     "llama_cpp_flash_attn_ms_per_token": 1e3 * c / ctx, "attnspec_attention_share": share,
                     "attention_flop_share": prof["flops"]["attention"] / prof["flops"]["total"]})
        log(f"G  scale {LLAMA_1B} {fmt} ctx {ctx:5d} {threads} thr: attnspec {1e3 * a / ctx:6.2f} ms/token "
            f"(attention {share:.0%} of its time, {rows[-1]['attention_flop_share']:.0%} of its FLOPs), "
            f"llama.cpp {1e3 * b / ctx:6.2f}, with flash attention {1e3 * c / ctx:6.2f} ms/token, "
            f"ratio {a / min(b, c):.2f}")
    results["G_scale"] = {"model": LLAMA_1B, "format": fmt, "threads": threads, "rows": rows}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    x = [r["ctx"] for r in rows]
    ax.plot(x, [r["attnspec_ms_per_token"] for r in rows], "o-", label="attnspec forward")
    ax.plot(x, [r["llama_cpp_ms_per_token"] for r in rows], "s-", label="llama.cpp prompt processing")
    ax.plot(x, [r["llama_cpp_flash_attn_ms_per_token"] for r in rows], "^--", label="llama.cpp, flash attention")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("window (tokens)")
    ax.set_ylabel("ms per token")
    ax.set_title(f"{LLAMA_1B} {fmt}, {threads} threads")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(plot, dpi=120)
    log(f"G  scale plot: {plot}")
