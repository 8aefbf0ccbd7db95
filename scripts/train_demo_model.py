#!/usr/bin/env python3
"""Trains the demo model that ships in python/attnspec/demo_model/ (used by ``attnspec demo``).

A GPT-2-family language model (``GPT2LMHeadModel``: 4 layers, d = 256, 4 heads of d_h = 64, 256
positions, tied embeddings) with its own byte-level BPE tokenizer (4096 ids, GPT-2's ByteLevel
pre-tokenizer), trained from scratch on the five public-domain Project Gutenberg books in
``../shared/corpus`` (licence header and footer stripped; the last 5% of every book held out for
validation). The books are read from ../shared and never copied into the repository.

    python scripts/train_demo_model.py                    # tokenizer, model, loss curve, demo text
    python scripts/train_demo_model.py --demo-text-only   # only regenerate demo_text.txt from README.md

Everything is seeded and runs on ONE torch thread (the default ``--threads 1``), so a rerun with the
same arguments on the same software gives the same numbers. Training stops at ``--steps`` (the cosine
schedule's length), when the validation loss has not improved for ``--patience`` evaluations, or
after ``--max-minutes`` of wall time, whichever comes first; the checkpoint with the best validation
loss is saved. A run stopped by the clock is replayed step for step, at any speed, by
``--steps S --stop-step N --max-minutes 0`` (``training_log.json["final"]["replay"]``). The shipped
model's data, recipe, loss curve and spectra are in its model card, demo_model/README.md (written by
hand from training_log.json and an ``attnspec demo`` run). Writes into ``--out``:

- ``model.safetensors`` + ``config.json`` + ``generation_config.json`` (float32 unless it would exceed
  ``--max-mb``, then float16),
- ``tokenizer.json``, ``tokenizer_config.json``, ``vocab.json``, ``merges.txt``,
- ``training_log.json`` (arguments, corpus statistics, the loss curve, the final numbers) and ``loss.png``,
- ``demo_text.txt``: README.md as plain prose (the text ``attnspec demo`` analyses).

Needs torch, transformers, tokenizers, safetensors, matplotlib.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
DEFAULT_OUT = REPO / "python" / "attnspec" / "demo_model"
BOOKS = ["pg11.txt", "pg1342.txt", "pg2701.txt", "pg84.txt", "pg98.txt"]
EOT = "<|endoftext|>"

START_RE = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG EBOOK.*\*\*\*\s*$", re.M)
END_RE = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG EBOOK.*\*\*\*\s*$", re.M)


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def read_book(path: Path) -> str:
    """A Gutenberg book without its licence header and footer: the text strictly between the
    ``*** START OF ...`` and ``*** END OF ...`` marker lines, BOM removed, CRLF -> LF, stripped."""
    text = path.read_bytes().decode("utf-8")
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    start, end = START_RE.search(text), END_RE.search(text)
    if not start or not end or end.start() <= start.end():
        raise SystemExit(f"{path}: no Project Gutenberg START/END markers")
    return text[start.end():end.start()].strip() + "\n"


def split_book(text: str, val_fraction: float) -> tuple[str, str]:
    """(train, validation): validation is the last ``val_fraction`` of the characters, starting at
    the first paragraph break (blank line) after the cut point."""
    cut = int(len(text) * (1 - val_fraction))
    brk = text.find("\n\n", cut)
    cut = brk + 2 if brk != -1 else cut
    return text[:cut], text[cut:]


def readme_to_prose(md: str) -> str:
    """README.md as plain text for the demo: fenced code blocks and table rows dropped, Markdown
    links reduced to their text, emphasis / code marks and heading hashes removed."""
    out, in_code = [], False
    for line in md.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code or line.lstrip().startswith("|"):
            continue
        line = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", line)  # [text](url) -> text
        line = re.sub(r"^#+\s*", "", line)
        line = line.replace("**", "").replace("`", "")
        out.append(line.rstrip())
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return text


def write_demo_text(out: Path, readme: Path) -> Path:
    path = out / "demo_text.txt"
    path.write_text(readme_to_prose(readme.read_text(encoding="utf-8")), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------
# Tokenizer
# ------------------------------------------------------------------------------------------------


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE as GPT-2 has it (ByteLevel pre-tokenizer with GPT-2's split regex, no prefix
    space; ByteLevel decoder), all 256 byte symbols in the vocabulary, ``<|endoftext|>`` = id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_tokenizer(tok, out: Path, ctx: int) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT,
                                   model_max_length=ctx)
    fast.save_pretrained(out)
    tok.model.save(str(out))  # vocab.json + merges.txt (GPT-2's classic pair)
    # transformers 5 names its class TokenizersBackend; PreTrainedTokenizerFast loads tokenizer.json
    # as it is in transformers 4 and 5 alike.
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("backend", None)
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------


def lr_at(step: int, args) -> float:
    """Linear warm-up over ``--warmup`` steps, then cosine decay to ``--min-lr-ratio`` x peak at ``--steps``."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def evaluate(model, windows, batch: int) -> float:
    """Mean next-token cross-entropy (nats) over every predicted position of ``windows`` [N, ctx]."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            x = windows[i:i + batch]
            logits = model(x).logits[:, :-1]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1),
                                                     reduction="sum")
            total += float(loss)
            count += x[:, 1:].numel()
    model.train()
    return total / count


def plot_loss(log: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = log["curve"]
    steps = [c["step"] for c in curve]
    fig, ax = plt.subplots(figsize=(5.2, 3.2), dpi=110)
    ax.plot(steps, [c["train_loss"] for c in curve], color="#c8443a", label="train (mean over the last interval)")
    ax.plot(steps, [c["val_loss"] for c in curve], color="#1f5fa8", marker="o", ms=3, label="validation")
    best = log["final"]["best_step"]
    ax.axvline(best, color="#888", lw=0.8, ls="--")
    ax.set_xlabel(f"step ({log['args']['batch']} x {log['args']['ctx']} tokens)")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title("attnspec demo model: loss", fontsize=10)
    ax.grid(color="#e3e3e3", lw=0.6)
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder with the Gutenberg books")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model folder to write")
    p.add_argument("--readme", type=Path, default=REPO / "README.md", help="source of demo_text.txt")
    p.add_argument("--demo-text-only", action="store_true", help="only (re)write demo_text.txt and exit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="held-out tail of every book")
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--ctx", type=int, default=256, help="n_positions and the training window")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--embd", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--batch", type=int, default=8, help="windows per step")
    p.add_argument("--steps", type=int, default=1100, help="length of the cosine schedule (maximum steps)")
    p.add_argument("--stop-step", type=int, default=0,
                   help="stop after this many steps (default: --steps); with --max-minutes 0 it replays a run "
                        "the wall-time limit stopped, step for step")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--patience", type=int, default=3, help="evaluations without improvement before stopping")
    p.add_argument("--max-minutes", type=float, default=30.0, help="wall-time limit of the training loop (0: none)")
    p.add_argument("--max-mb", type=float, default=20.0, help="largest model.safetensors (MB); float16 beyond")
    args = p.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    demo = write_demo_text(args.out, args.readme)
    print(f"wrote {demo} ({demo.stat().st_size} bytes, from {args.readme.name})", flush=True)
    if args.demo_text_only:
        return 0

    import numpy as np
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    t_start = time.time()

    # -- data: strip, split, tokenize ------------------------------------------------------------
    train_texts, val_texts, books = [], [], []
    for name in BOOKS:
        text = read_book(args.corpus / name)
        tr, va = split_book(text, args.val_fraction)
        train_texts.append(tr)
        val_texts.append(va)
        books.append({"file": name, "chars": len(text), "train_chars": len(tr), "val_chars": len(va)})
    tok = train_tokenizer(train_texts, args.vocab)
    eot = tok.token_to_id(EOT)
    assert eot == 0 and tok.get_vocab_size() == args.vocab, (eot, tok.get_vocab_size())

    def stream(texts):
        ids = []
        for t, enc in zip(texts, tok.encode_batch(texts)):
            ids.extend(enc.ids)
            ids.append(eot)  # books separated by <|endoftext|>
        return torch.tensor(ids, dtype=torch.long)

    train_ids, val_ids = stream(train_texts), stream(val_texts)
    for b, tr, va in zip(books, tok.encode_batch(train_texts), tok.encode_batch(val_texts)):
        b["train_tokens"], b["val_tokens"] = len(tr.ids), len(va.ids)
    n_val = len(val_ids) // args.ctx
    val_windows = val_ids[: n_val * args.ctx].view(n_val, args.ctx)
    print(f"corpus: {len(train_ids)} train tokens, {len(val_ids)} validation tokens ({n_val} windows of {args.ctx}); "
          f"tokenizer {tok.get_vocab_size()} ids ({time.time() - t_start:.1f} s)", flush=True)

    # -- model ----------------------------------------------------------------------------------
    config = GPT2Config(vocab_size=args.vocab, n_positions=args.ctx, n_embd=args.embd, n_layer=args.layers,
                        n_head=args.heads, n_inner=4 * args.embd, activation_function="gelu_new",
                        resid_pdrop=args.dropout, embd_pdrop=args.dropout, attn_pdrop=args.dropout,
                        bos_token_id=eot, eos_token_id=eot, tie_word_embeddings=True)
    model = GPT2LMHeadModel(config)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(args.seed)
    print(f"model: GPT2LMHeadModel, {n_params} parameters, {args.layers} layers, d={args.embd}, "
          f"{args.heads} heads of d_h={args.embd // args.heads}, ctx {args.ctx}", flush=True)

    # -- train ----------------------------------------------------------------------------------
    curve, interval = [], []
    best = {"val_loss": float("inf"), "step": 0, "state": None}
    bad_evals = 0
    last_step = min(args.steps, args.stop_step or args.steps)
    stop_reason = "end of the schedule (--steps)" if last_step == args.steps else "--stop-step"
    t_train = time.time()
    initial_val = evaluate(model, val_windows, 16)
    curve.append({"step": 0, "tokens": 0, "train_loss": float("nan"), "val_loss": initial_val, "lr": 0.0, "seconds": 0.0})
    print(f"step     0  val {initial_val:.4f}", flush=True)
    model.train()
    step = 0
    while step < last_step:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        starts = torch.randint(0, len(train_ids) - args.ctx, (args.batch,), generator=gen)
        x = torch.stack([train_ids[s:s + args.ctx] for s in starts.tolist()])
        loss = model(x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        interval.append(float(loss.detach()))
        step += 1
        elapsed = time.time() - t_train
        out_of_time = args.max_minutes > 0 and elapsed > args.max_minutes * 60
        if step % args.eval_every == 0 or step == last_step or out_of_time:
            val = evaluate(model, val_windows, 16)
            elapsed = time.time() - t_train
            curve.append({"step": step, "tokens": step * args.batch * args.ctx, "train_loss": float(np.mean(interval)),
                          "val_loss": val, "lr": lr_at(step - 1, args), "seconds": round(elapsed, 1)})
            interval = []
            improved = val < best["val_loss"] - 1e-4
            if improved:
                best = {"val_loss": val, "step": step,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
                bad_evals = 0
            else:
                bad_evals += 1
            print(f"step {step:5d}  train {curve[-1]['train_loss']:.4f}  val {val:.4f}{' *' if improved else ''}  "
                  f"lr {curve[-1]['lr']:.2e}  {elapsed / 60:.1f} min", flush=True)
            if bad_evals >= args.patience:
                stop_reason = f"validation loss did not improve for {args.patience} evaluations"
                break
            if out_of_time:
                stop_reason = f"wall-time limit ({args.max_minutes:g} min)"
                break
    train_seconds = time.time() - t_train
    model.load_state_dict(best["state"])

    # -- save -----------------------------------------------------------------------------------
    for old in args.out.glob("*.safetensors"):
        old.unlink()
    dtype = "float32"
    if n_params * 4 > args.max_mb * 1e6:
        model = model.half()
        dtype = "float16"
    model.generation_config.pad_token_id = eot
    model.save_pretrained(args.out, safe_serialization=True)
    save_tokenizer(tok, args.out, args.ctx)
    size = (args.out / "model.safetensors").stat().st_size
    # The final numbers of the saved (best) weights: full train-set loss on a fixed sample of
    # windows (the training loss above is averaged over moving weights) and full validation loss.
    g2 = torch.Generator().manual_seed(args.seed + 1)
    sample = torch.randint(0, len(train_ids) - args.ctx, (len(val_windows),), generator=g2).tolist()
    train_eval = evaluate(model.float(), torch.stack([train_ids[s:s + args.ctx] for s in sample]), 16)
    log = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "software": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__,
                     "tokenizers": __import__("tokenizers").__version__, "machine": platform.machine(),
                     "cpu_count": os.cpu_count()},
        "books": books,
        "train_tokens": int(len(train_ids)),
        "val_tokens": int(len(val_ids)),
        "val_windows": int(n_val),
        "parameters": int(n_params),
        "curve": curve,
        "final": {
            "steps_run": step,
            "best_step": best["step"],
            "stop_reason": stop_reason,
            # the same training step for step, whatever stopped it (evaluations do not touch the RNG):
            "replay": f"python scripts/train_demo_model.py --steps {args.steps} --stop-step {step} --max-minutes 0",
            "train_seconds": round(train_seconds, 1),
            "total_seconds": round(time.time() - t_start, 1),
            "tokens_seen": step * args.batch * args.ctx,
            "epochs": round(step * args.batch * args.ctx / len(train_ids), 3),
            "val_loss": best["val_loss"],
            "val_perplexity": math.exp(best["val_loss"]),
            "train_loss_sample": train_eval,
            "dtype": dtype,
            "model_bytes": size,
        },
    }
    (args.out / "training_log.json").write_text(json.dumps(log, indent=1) + "\n")
    plot_loss(log, args.out / "loss.png")
    for f in args.out.iterdir():  # safetensors are written 0600; the package must be readable by all
        f.chmod(0o644)
    f = log["final"]
    print(f"done: {f['steps_run']} steps ({f['stop_reason']}), best step {f['best_step']}, val loss {f['val_loss']:.4f} "
          f"(ppl {f['val_perplexity']:.1f}), train loss {f['train_loss_sample']:.4f}, {train_seconds / 60:.1f} min of "
          f"training; model.safetensors {size / 1e6:.2f} MB ({dtype}) in {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
