"""attnspec's tokenizer against Hugging Face `tokenizers` (and `sentencepiece`) as the oracle.

Covers the four reference families in ../shared/tokenizers on their examples, on every book of
../shared/corpus and on generated hard strings; tokenizers trained here on a book in each family's
pipeline style (so the algorithm is checked beyond four vocabularies); GPT-2's vocab.json +
merges.txt; SentencePiece's tokenizer.model; text preparation; and the errors for bad files.
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import sentencepiece as spm
from tokenizers import AddedToken, Regex, Tokenizer as HfTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from attnspec import _core
from conftest import books, hf_tokenizer, shared_path as shared

FAMILIES = ["gpt2", "llama3", "qwen2", "mistral"]
InputError = getattr(_core, "InputError", ValueError)

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def first_difference(ours: list[int], theirs: list[int]) -> str:
    i = next((k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    return f"lengths {len(ours)} vs {len(theirs)}, first difference at {i}: {ours[i:i + 8]} vs {theirs[i:i + 8]}"


def assert_same_on(strings, ours, oracle, what: str):
    """Every string encodes identically; the message lists the first few that do not."""
    bad = []
    for s in strings:
        a, b = ours(s), oracle(s)
        if a != b:
            bad.append(f"{s[:60]!r}: {first_difference(a, b)}")
    assert not bad, f"{what}: {len(bad)} of {len(strings)} strings differ, e.g.\n" + "\n".join(bad[:10])


# --------------------------------------------------------------------------------------------
# Hard strings


SPECIAL_TEXTS = ["<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<s>", "</s>",
                 "<unk>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<0x41>", "<mask>"]
WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\r", "\v", "\f", "\u00a0", "\u2009", "\u3000", "\u0085",
              "\u2028", "\u2029", "\u180e", "\u200b", "\ufeff", "\u1680", "\u202f", "\u205f", "\x1c"]


def hard_strings() -> list[str]:
    s = [
        "", " ", "  ", "\n", "\t", "\r\n", "a", "Hello world", " Hello", "Hello  world", "Hello\u00a0world",
        # mixed scripts
        "日本語のテキストと English mixed 中文字符", "مرحبا بالعالم 123", "नमस्ते दुनिया", "สวัสดีชาวโลก",
        "Привет, мир! Ёлка", "Γειά σου Κόσμε ΆΈΉ", "한국어 텍스트 각", "ℌ𝔢𝔩𝔩𝔬 𝟙𝟚𝟛", "Ꭰꭰ ǅǆ ß ẞ ﬁ ﬀ",
        # combining marks and decomposed accents (NFC matters for Qwen2)
        "e\u0301te\u0301", "Cafe\u0301 re\u0301sume\u0301", "A\u030a \u212b \u00c5", "\u1100\u1161\u11a8 \u1112\u1161\u11ab",
        "Vie\u0323\u0302t Nam", "a\u0323\u0307 a\u0307\u0323 q\u0307\u0323", "\u0041\u0300\u0316\u0301",
        "\u0915\u093c \u0958", "\u00e9\u0301", "o\u0308\u0304", "\u03b9\u0308\u0301 \u1fd3", "\u0300abc", "x\u20dd",
        # emoji with modifiers and ZWJ sequences
        "👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🦙 🇫🇷🇩🇪 ❤️ 👩🏿‍💻", "👋👋👋", "a👍b", "1️⃣ #️⃣",
        # whitespace runs and unusual whitespace
        "a  b   c    d", "a\t\tb", "a\n\nb\n\n\nc", "a\r\n\r\nb", "  leading", "trailing  ", "\n\n\n",
        " " * 50, "\t \n \r\n \u00a0", "x\u2028y\u2029z", "line1\u0085line2", "tab\there\vvt\fff",
        "a \u3000 b", "a\u180eb \u180e", "a\u200bb", "\ufeffbom", "end \n", "x \n y", "x  \n\n  y",
        # contractions
        "I'm you're we've they'll he'd it's don't", "I'M YOU'RE WE'VE THEY'LL HE'D IT'S DON'T",
        "I'M", "'S 'T 'RE 'VE 'M 'LL 'D", "'s't're've'm'll'd", "We'Ll O'Neil rock'n'roll", "'", "''", "' s",
        "ſ 'ſ 'K 'ß", "Kelvin 'K", "it’s curly’s", "L'été d'Arc",
        # numbers and punctuation
        "3.14159 1,000,000 -42 +7 1e10 0x1F 2024-01-01", "١٢٣ ٤٥٦ ۱۲۳ १२३ ๑๒๓ ①②③ ⅫⅣ ½¾", "...!!!???",
        "a,b.c;d:e", "(parenthesized) [bracketed] {braced}", "#hashtag @mention $dollar %percent",
        "http://example.com/path?x=1&y=2", "C++ && || -> => ::", "~!@#$%^&*()_+`-=", "“quoted” ‘single’ —dash– …",
        "snake_case camelCase PascalCase", "_leading __dunder__", "a_b_c 1_000",
        # very long words
        "a" * 5000, "abc" * 2000, "Z" * 3001, " " + "x" * 4000, "日" * 2000, "9" * 1500, " " * 3000,
        "\n" * 1000, "ab " * 1000, "é" * 1000, "e\u0301" * 500, "👍" * 500, "\u00a0" * 300,
        "Pneumonoultramicroscopicsilicovolcanoconiosis" * 50,
    ]
    # digits of every length, alone and in context
    for n in range(1, 21):
        digits = "".join(str((i * 7 + 3) % 10) for i in range(n))
        s += [digits, f" {digits}", f"x{digits}y", f"{digits}.{digits}", f"-{digits}"]
    # special-token text: whole, partial, adjacent, nested, around whitespace
    for t in SPECIAL_TEXTS:
        s += [t, f"a{t}b", f" {t} ", f"{t}{t}", f"{t} {t}", f"Hello{t}", f"{t}Hello", f"\n{t}\n",
              t[:-1], t[1:], f"<{t}>", f"{t[:3]} {t[3:]}"]
    s += ["<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "<s>[INST] hi [/INST]</s>",
          "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", "<|endoftext|><|endoftext",
          "<<|endoftext|>|>", "<|<|im_start|>|>", "<s><s></s>", " <s>", "<s> ", "▁<s>▁", "▁▁hello ▁world"]
    # seeded random strings from many ranges
    rng = random.Random(20240601)
    ranges = [(0x20, 0x7E), (0x20, 0x7E), (0x20, 0x7E), (0xA0, 0xFF), (0x100, 0x17F), (0x300, 0x36F),
              (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F),
              (0x1100, 0x11FF), (0x1E00, 0x1EFF), (0x2000, 0x206F), (0x20A0, 0x20CF), (0x2150, 0x218F),
              (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x1F300, 0x1F64F),
              (0x1F900, 0x1F9FF), (0x1F3FB, 0x1F3FF), (0x1D400, 0x1D4FF)]
    pieces = WHITESPACE + SPECIAL_TEXTS + ["'s", "'LL", "\u200d", "\ufe0f", "0123456789", "e\u0301", "\r\n"]
    for _ in range(3000):
        out = []
        for _ in range(rng.randint(1, 30)):
            r = rng.random()
            if r < 0.12:
                out.append(rng.choice(pieces))
            elif r < 0.2:
                out.append(" ")
            else:
                lo, hi = rng.choice(ranges)
                out.append(chr(rng.randint(lo, hi)))
        s.append("".join(out))
    return s


@pytest.fixture(scope="module")
def hard():
    return hard_strings()


# --------------------------------------------------------------------------------------------
# The four reference families


@pytest.fixture(scope="module")
def family():
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            folder = shared("tokenizers", name)
            cache[name] = (_core.Tokenizer.load(str(folder)), HfTokenizer.from_file(str(folder / "tokenizer.json")))
        return cache[name]

    return get


def hf_ids(hf: HfTokenizer, text: str) -> list[int]:
    return hf.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("name", FAMILIES)
def test_examples_match_reference_ids_and_tokenizers(family, name):
    ours, hf = family(name)
    lines = shared("tokenizers", name, "examples.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 10
    for line in lines:
        example = json.loads(line)
        assert ours.encode(example["text"]) == example["ids"], example["text"]
        assert hf_ids(hf, example["text"]) == example["ids"], example["text"]


@pytest.mark.parametrize("name", FAMILIES)
def test_sanity_values_and_specials(family, name):
    ours, _ = family(name)
    hello = {"gpt2": [15496, 995], "llama3": [9906, 1917], "qwen2": [9707, 1879], "mistral": [22557, 1526]}
    assert ours.encode("Hello world") == hello[name]
    prefix = {"gpt2": [], "llama3": [128000], "qwen2": [], "mistral": [1]}
    assert list(ours.prefix_special) == prefix[name]
    assert list(ours.suffix_special) == []
    assert "BPE" in ours.describe() and "tokenizer.json" in ours.describe()


@pytest.mark.parametrize("name", FAMILIES)
def test_books_match_tokenizers(family, name):
    ours, hf = family(name)
    for book in books():
        for text in (book.read_text(encoding="utf-8"), _core.read_text_file(str(book))):
            a, b = ours.encode(text), hf_ids(hf, text)
            assert a == b, f"{name} on {book.name}: {first_difference(a, b)}"


@pytest.mark.parametrize("name", FAMILIES)
def test_hard_strings_match_tokenizers(family, hard, name):
    ours, hf = family(name)
    assert_same_on(hard, ours.encode, lambda s: hf_ids(hf, s), name)


# --------------------------------------------------------------------------------------------
# Tokenizers trained here, one per pipeline style


def byte_level_bpe(**model_args) -> HfTokenizer:
    return HfTokenizer(models.BPE(**model_args))


def trainer(vocab_size=1200, **extra):
    return trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, **extra)


def train_style(style: str, corpus: list[str]) -> HfTokenizer:
    byte_alphabet = pre_tokenizers.ByteLevel.alphabet()
    if style == "gpt2":
        tok = byte_level_bpe()
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(corpus, trainer(initial_alphabet=byte_alphabet, special_tokens=["<|endoftext|>"]))
    elif style == "gpt2_prefix_space":
        tok = byte_level_bpe()
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.train_from_iterator(corpus, trainer(initial_alphabet=byte_alphabet, special_tokens=["<|endoftext|>"]))
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 1))
    elif style == "llama3":
        tok = byte_level_bpe(ignore_merges=True)
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tok.train_from_iterator(corpus, trainer(initial_alphabet=byte_alphabet,
                                                special_tokens=["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]))
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[
                ("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])])
    elif style == "qwen2":
        tok = byte_level_bpe()
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tok.train_from_iterator(corpus, trainer(initial_alphabet=byte_alphabet,
                                                special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
        # Added tokens with every matching option, normalized and not.
        tok.add_tokens([AddedToken("<think>", special=False, normalized=False),
                        AddedToken("<mask>", lstrip=True, rstrip=True, normalized=False),
                        AddedToken("whale", single_word=True, normalized=True),
                        AddedToken("Caf\u00e9", normalized=True)])
    elif style in ("sentencepiece", "sentencepiece_no_fuse"):
        bytes_ = [f"<0x{b:02X}>" for b in range(256)]
        tok = HfTokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=style == "sentencepiece"))
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
        tok.train_from_iterator(corpus, trainer(special_tokens=["<unk>", "<s>", "</s>"] + bytes_,
                                                limit_alphabet=60, vocab_size=1500))
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
        tok.add_tokens([AddedToken("Whale", normalized=True), AddedToken("<mask>", rstrip=True, normalized=False)])
    elif style.startswith("metaspace"):
        tok = HfTokenizer(models.BPE(unk_token="<unk>", byte_fallback=style == "metaspace", fuse_unk=True))
        scheme = {"metaspace": "always", "metaspace_first": "first", "metaspace_never": "never"}[style]
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=scheme, split=True)
        tok.train_from_iterator(corpus, trainer(special_tokens=["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)],
                                                limit_alphabet=80))
    elif style == "wordlike":
        # Plain (not byte-level) BPE with subword prefix/suffix and the simpler pre-tokenizers.
        tok = HfTokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
        tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase(),
                                               normalizers.Strip()])
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)])
        tok.train_from_iterator(corpus, trainer(special_tokens=["[UNK]", "[CLS]", "[SEP]"], limit_alphabet=100,
                                                continuing_subword_prefix="##", end_of_word_suffix="</w>"))
        tok.post_processor = processors.BertProcessing(("[SEP]", 2), ("[CLS]", 1))
    elif style == "bertlike":
        tok = HfTokenizer(models.BPE(unk_token="[UNK]"))
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(),
                                                     pre_tokenizers.Digits(individual_digits=False)])
        tok.train_from_iterator(corpus, trainer(special_tokens=["[UNK]"], limit_alphabet=200))
    elif style == "bert_pre":
        tok = HfTokenizer(models.BPE(unk_token="[UNK]", fuse_unk=True))
        tok.normalizer = normalizers.NFKD()
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.train_from_iterator(corpus, trainer(special_tokens=["[UNK]"], limit_alphabet=150))
    else:
        raise ValueError(style)
    return tok


TRAINED_STYLES = ["gpt2", "gpt2_prefix_space", "llama3", "qwen2", "sentencepiece", "sentencepiece_no_fuse",
                  "metaspace", "metaspace_first", "metaspace_never", "wordlike", "bertlike", "bert_pre"]


@pytest.fixture(scope="module")
def training_corpus():
    # Moby Dick plus a few lines in other scripts, so the vocabulary is not ASCII only.
    text = shared("corpus", "pg2701.txt").read_text(encoding="utf-8")
    extra = ["日本語のテキスト 中文字符 한국어", "Привет мир Ёлка", "Γειά σου Κόσμε", "مرحبا بالعالم", "Café résumé naïve"] * 20
    return text.splitlines() + extra


def other_merges_form(tokenizer_json: dict) -> dict:
    """The same tokenizer with merges written in the other of the two forms ("a b" <-> ["a", "b"])."""
    data = json.loads(json.dumps(tokenizer_json))
    merges = data["model"]["merges"]
    if merges and isinstance(merges[0], str):
        data["model"]["merges"] = [m.split(" ", 1) for m in merges]
    else:
        data["model"]["merges"] = [f"{a} {b}" for a, b in merges]
    return data


@pytest.mark.parametrize("style", TRAINED_STYLES)
def test_trained_tokenizers_match(style, training_corpus, hard, tmp_path):
    tok = train_style(style, training_corpus)
    saved = json.loads(tok.to_str())
    variants = {"as saved": saved}
    if style in ("gpt2", "qwen2", "sentencepiece", "metaspace"):
        variants["other merges form"] = other_merges_form(saved)
    if style == "metaspace_first":
        # Metaspace without splitting: a whole text is a single word for the model.
        unsplit = json.loads(json.dumps(saved))
        unsplit["pre_tokenizer"]["split"] = False
        variants["without split"] = unsplit
    if "other merges form" in variants:
        forms = {type(v["model"]["merges"][0]).__name__ for v in variants.values()}
        assert forms == {"str", "list"}
    book = shared("corpus", "pg84.txt").read_text(encoding="utf-8")
    for label, data in variants.items():
        folder = tmp_path / label.replace(" ", "_")
        folder.mkdir()
        (folder / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        ours = _core.Tokenizer.load(str(folder))
        hf = HfTokenizer.from_file(str(folder / "tokenizer.json"))
        a, b = ours.encode(book), hf_ids(hf, book)
        assert a == b, f"{style} ({label}) on pg84: {first_difference(a, b)}"
        assert_same_on(hard, ours.encode, lambda s: hf_ids(hf, s), f"{style} ({label})")
        # What the post-processor adds around a single sequence, read off tokenizers itself.
        marker = hf.encode("whale", add_special_tokens=False).ids
        full = hf.encode("whale", add_special_tokens=True).ids
        start = next(i for i in range(len(full)) if full[i:i + len(marker)] == marker)
        assert list(ours.prefix_special) == full[:start], style
        assert list(ours.suffix_special) == full[start + len(marker):], style


def test_config_bos_eos_used_without_post_processor(tmp_path, training_corpus):
    tok = train_style("sentencepiece", training_corpus[:3000])
    data = json.loads(tok.to_str())
    data["post_processor"] = None
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    assert list(_core.Tokenizer.load(str(tmp_path)).prefix_special) == []
    config = {"add_bos_token": True, "add_eos_token": True, "bos_token": "<s>",
              "eos_token": {"content": "</s>", "__type": "AddedToken"}}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    loaded = _core.Tokenizer.load(str(tmp_path))
    assert list(loaded.prefix_special) == [1] and list(loaded.suffix_special) == [2]


# --------------------------------------------------------------------------------------------
# GPT-2 from vocab.json + merges.txt


def test_gpt2_vocab_and_merges_equal_tokenizer_json(family, hard, tmp_path):
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(shared("tokenizers", "gpt2", name), tmp_path / name)
    files = _core.Tokenizer.load(str(tmp_path))
    reference, _ = family("gpt2")
    assert "vocab.json" in files.describe()
    assert list(files.prefix_special) == [] and list(files.suffix_special) == []
    for book in books():
        text = book.read_text(encoding="utf-8")
        assert files.encode(text) == reference.encode(text), book.name
    assert_same_on(hard, files.encode, reference.encode, "gpt2 vocab.json + merges.txt")
    assert files.encode("a<|endoftext|>b") == [64, 50256, 65]


# --------------------------------------------------------------------------------------------
# SentencePiece tokenizer.model


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spm")
    spm.SentencePieceTrainer.train(input=str(shared("corpus", "pg1342.txt")), model_prefix=str(folder / "m"),
                                   vocab_size=2000, model_type="bpe", byte_fallback=True, character_coverage=0.9995,
                                   minloglevel=2, num_threads=2)
    (folder / "m.model").rename(folder / "tokenizer.model")
    return folder


def test_sentencepiece_model_matches_sentencepiece(sentencepiece_model, hard):
    sp = spm.SentencePieceProcessor(model_file=str(sentencepiece_model / "tokenizer.model"))
    ours = _core.Tokenizer.load(str(sentencepiece_model))
    assert "tokenizer.model" in ours.describe()
    for book in books()[:2]:
        text = book.read_text(encoding="utf-8")
        assert ours.encode(text) == sp.encode(text), book.name
    assert_same_on(hard, ours.encode, sp.encode, "sentencepiece tokenizer.model")
    # BOS by default (Llama/Mistral convention), none when the config says so, EOS on request.
    assert list(ours.prefix_special) == [sp.bos_id()] and list(ours.suffix_special) == []


def test_sentencepiece_bos_from_config(sentencepiece_model, tmp_path):
    shutil.copy(sentencepiece_model / "tokenizer.model", tmp_path / "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "tokenizer.model"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"add_bos_token": False}), encoding="utf-8")
    assert list(_core.Tokenizer.load(str(tmp_path)).prefix_special) == []
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"add_eos_token": True, "eos_token": "</s>"}),
                                                    encoding="utf-8")
    loaded = _core.Tokenizer.load(str(tmp_path))
    assert list(loaded.prefix_special) == [sp.bos_id()] and list(loaded.suffix_special) == [sp.eos_id()]


# --------------------------------------------------------------------------------------------
# A byte-order mark and the empty text, for every kind of tokenizer file


def first_lines_as_stored() -> list[str]:
    """Each book's first line exactly as the file holds it (pg11.txt's begins with a UTF-8 BOM)."""
    lines = [book.read_bytes().split(b"\n", 1)[0].decode("utf-8") + "\n" for book in books()]
    assert sum(line.startswith("\ufeff") for line in lines) == 1, "pg11.txt should start with a BOM"
    return lines


BOM_TEXTS = ["\ufeff", "\ufeff\ufeff", "\ufeffThe", "\ufeff The", " \ufeff", "a\ufeffb", "end\ufeff",
             "\ufeff\n\ufeff", "\ufeff<|endoftext|>", "\ufeff123", "\ufeff\u0301e", "x \ufeff\ufeff y"]


@pytest.fixture(scope="module")
def every_kind(sentencepiece_model, minilm, tmp_path_factory):
    """(what, tokenizer folder or file for attnspec, the oracle's encode) for every kind of
    tokenizer file attnspec reads, each oracle written by somebody else: HF `tokenizers` for
    tokenizer.json (the four families and BERT WordPiece), vocab.json + merges.txt, vocab.txt and
    GGUF metadata; `sentencepiece` for tokenizer.model. (llama2.c's tok*.bin: test_format_llama2c.)"""
    from gguf_writer import write_tokenizer_gguf

    root = tmp_path_factory.mktemp("kinds")
    kinds = []
    for name in FAMILIES:
        folder = shared("tokenizers", name)
        kinds.append((name, folder, HfTokenizer.from_file(str(folder / "tokenizer.json"))))
    gpt2 = kinds[0][2]
    merges = root / "gpt2-files"
    merges.mkdir()
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(shared("tokenizers", "gpt2", name), merges / name)
    kinds.append(("gpt2 vocab.json + merges.txt", merges, gpt2))
    for (name, kind, pre), (_, _, hf) in zip([("gpt2", "gpt2", "gpt-2"), ("llama3", "gpt2", "llama-bpe"),
                                              ("qwen2", "gpt2", "qwen2"), ("mistral", "llama", None)], kinds):
        gguf = write_tokenizer_gguf(shared("tokenizers", name, "tokenizer.json"), root / f"{name}.gguf", kind, pre)
        kinds.append((f"{name} GGUF ({kind})", gguf, hf))
    bert = hf_tokenizer(minilm)
    kinds.append(("bert tokenizer.json", minilm, bert))
    vocab_txt = root / "bert-vocab"
    vocab_txt.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm / name, vocab_txt / name)
    kinds.append(("bert vocab.txt", vocab_txt, bert))
    sp = spm.SentencePieceProcessor(model_file=str(sentencepiece_model / "tokenizer.model"))
    kinds.append(("sentencepiece tokenizer.model", sentencepiece_model, sp))
    return [(what, path, (lambda o: (lambda t: o.encode(t) if isinstance(o, spm.SentencePieceProcessor)
                                     else o.encode(t, add_special_tokens=False).ids))(oracle))
            for what, path, oracle in kinds]


def test_bom_and_empty_text_every_kind(every_kind, tmp_path):
    """U+FEFF is a character like any other (HF encodes it; Python's "utf-8" codec keeps it when it
    decodes a file), at the start of a text or anywhere in it; the empty text has no tokens."""
    lines = first_lines_as_stored()
    with_bom = next(line for line in lines if line.startswith("\ufeff"))
    bom_line = tmp_path / "first-line.txt"
    bom_line.write_bytes(with_bom.encode("utf-8"))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    for what, path, oracle in every_kind:
        ours = _core.Tokenizer.load(str(path))
        assert ours.encode("") == [] == oracle(""), what
        assert_same_on(lines + BOM_TEXTS, ours.encode, oracle, what)
        # The command reads the file as stored: the BOM reaches the tokenizer.
        for f, text in ((bom_line, with_bom), (empty, "")):
            proc = subprocess.run(["attnspec", "tokenize", "--model", str(path), "--text", str(f)],
                                  capture_output=True, text=True)
            assert proc.returncode == 0, (what, proc.stderr)
            assert json.loads(proc.stdout) == oracle(text), (what, f.name)


def test_bom_text_through_analyze_equals_token_ids(checkpoints, tmp_path):
    """A run on a text that starts with a BOM (no Gutenberg stripping) sees the BOM's tokens first."""
    model = tmp_path / "model"
    shutil.copytree(checkpoints("gpt2", "base", vocab_size=50257), model)
    for f in shared("tokenizers", "gpt2").glob("*.json"):
        shutil.copy(f, model / f.name)
    book = shared("corpus", "pg11.txt")
    ids = HfTokenizer.from_file(str(model / "tokenizer.json")).encode(book.read_bytes().decode("utf-8"),
                                                                        add_special_tokens=False).ids
    assert ids[:3] == [171, 119, 123]  # U+FEFF as GPT-2's three byte tokens
    (tmp_path / "ids.json").write_text(json.dumps(ids[:64]))
    runs = {}
    for name, source in (("text", ["--text", str(book), "--strip-gutenberg", "no"]),
                         ("ids", ["--token-ids", str(tmp_path / "ids.json")])):
        runs[name] = tmp_path / name
        subprocess.run(["attnspec", "analyze", "--model", str(model), *source, "--ctx", "32", "--max-windows", "2",
                        "--out", str(runs[name]), "--quiet"], check=True)
    assert (runs["text"] / "heads.csv").read_bytes() == (runs["ids"] / "heads.csv").read_bytes()


# --------------------------------------------------------------------------------------------
# Text preparation


def reference_strip(text: str) -> str:
    lines = text.splitlines(keepends=True)
    starts = [i for i, l in enumerate(lines) if l.startswith(("*** START OF THE PROJECT GUTENBERG EBOOK",
                                                              "*** START OF THIS PROJECT GUTENBERG EBOOK"))]
    ends = [i for i, l in enumerate(lines) if l.startswith(("*** END OF THE PROJECT GUTENBERG EBOOK",
                                                            "*** END OF THIS PROJECT GUTENBERG EBOOK"))]
    assert len(starts) == 1 and len(ends) == 1
    return "".join(lines[starts[0] + 1:ends[0]])


def test_gutenberg_stripping_on_the_books():
    wordings = set()
    for book in books():
        raw = book.read_bytes().decode("utf-8")
        unbommed = raw.removeprefix("\ufeff")
        expected = reference_strip(unbommed)
        stripped = _core.read_text_file(str(book))
        assert stripped == expected, book.name
        assert _core.strip_gutenberg(unbommed) == expected
        assert "PROJECT GUTENBERG EBOOK" not in stripped and len(stripped) > 100_000
        assert _core.read_text_file(str(book), strip_gutenberg=0) == raw  # a BOM stays (U+FEFF)
        assert _core.read_text_file(str(book), strip_gutenberg=1) == expected
        wordings.add("THIS PROJECT" if "START OF THIS PROJECT" in raw else "THE PROJECT")
    assert wordings == {"THIS PROJECT", "THE PROJECT"}


def test_crlf_and_bom_book():
    book = shared("corpus", "pg11.txt")
    assert book.read_bytes().startswith(b"\xef\xbb\xbf")
    raw = _core.read_text_file(str(book), strip_gutenberg=0)
    assert raw.startswith("\ufeffProject Gutenberg") and "\r\n" in raw
    stripped = _core.read_text_file(str(book))
    assert stripped.count("\r\n") == stripped.count("\n")  # line endings kept as they are
    assert "ALICE'S ADVENTURES IN WONDERLAND" in stripped[:500] and "START OF THIS" not in stripped


def test_strip_gutenberg_without_markers_is_identity():
    assert _core.strip_gutenberg("just text\n") == "just text\n"
    assert _core.strip_gutenberg("*** START OF THE PROJECT GUTENBERG EBOOK X ***\nno end\n").startswith("***")


@pytest.mark.parametrize("data, offset", [
    (b"abc\xffdef", 3),                 # not UTF-8 at all
    (b"ok \xc0\xaf", 3),                # overlong '/'
    (b"\xe0\x80\xaf", 0),               # overlong, three bytes
    (b"xy\xed\xa0\x80", 2),             # UTF-16 surrogate
    (b"\xf4\x90\x80\x80", 0),           # above U+10FFFF
    (b"ab\xe2\x82", 2),                 # truncated at the end
    (b"ab\xe2\x82x", 2),                # truncated before ASCII
    (b"\x80abc", 0),                    # lone continuation byte
    ("é€𝄞".encode() + b"\xf8", 9),     # valid multi-byte, then invalid
])
def test_invalid_utf8_is_rejected_with_offset(tmp_path, data, offset):
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(InputError, match=rf"bad\.txt.*UTF-8.*\b{offset}\b"):
        _core.read_text_file(str(path))


def test_nul_bytes_empty_text_and_missing_file(tmp_path):
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"text\x00more")
    with pytest.raises(InputError, match=r"nul\.txt.*NUL"):
        _core.read_text_file(str(nul))
    # An empty text is a text (no tokens); so is a lone BOM (one character).
    for name, data, text in [("empty.txt", b"", ""), ("bom.txt", b"\xef\xbb\xbf", "\ufeff"),
                             ("hollow.txt", b"header\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\n"
                                            b"*** END OF THE PROJECT GUTENBERG EBOOK X ***\n", "")]:
        (tmp_path / name).write_bytes(data)
        assert _core.read_text_file(str(tmp_path / name)) == text
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"\xef\xbb\xbfNo markers here.\r\n")
    assert _core.read_text_file(str(plain)) == "\ufeffNo markers here.\r\n"
    with pytest.raises(InputError, match=r"plain\.txt.*marker"):
        _core.read_text_file(str(plain), strip_gutenberg=1)
    with pytest.raises(InputError, match="missing.txt"):
        _core.read_text_file(str(tmp_path / "missing.txt"))


# --------------------------------------------------------------------------------------------
# Bad tokenizer files


def write_json(folder: Path, data) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "tokenizer.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def tiny_tokenizer_json(**model_overrides) -> dict:
    model = {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
    model.update(model_overrides)
    return {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None,
            "post_processor": None, "decoder": None, "model": model}


def test_tiny_hand_made_tokenizer(tmp_path):
    write_json(tmp_path, tiny_tokenizer_json())
    tok = _core.Tokenizer.load(str(tmp_path))
    assert tok.encode("abba") == [2, 1, 0] and tok.encode("") == []
    assert _core.Tokenizer.present(str(tmp_path))
    assert not _core.Tokenizer.present(str(tmp_path / "elsewhere"))


@pytest.mark.parametrize("content, message", [
    ("{ not json", r"malformed JSON"),
    ("[1, 2]", r"object"),
    (tiny_tokenizer_json(type="Unigram"), r"unsupported model type 'Unigram' \(supported: BPE, WordPiece\)"),
    ({**tiny_tokenizer_json(), "model": {"type": "WordPiece"}}, r"WordPiece model lacks 'vocab'"),
    ({**tiny_tokenizer_json(), "model": {"type": "WordPiece", "vocab": {"a": 0}, "max_input_chars_per_word": -1}},
     r"max_input_chars_per_word"),
    (tiny_tokenizer_json(merges=["a c"]), r"merge 1 .*'c'.*not in the vocabulary"),
    (tiny_tokenizer_json(merges=[["a", "zz"]]), r"'zz'"),
    (tiny_tokenizer_json(merges=["b a"]), r"'ba'"),
    (tiny_tokenizer_json(merges=["ab"]), r"merge 1"),
    ({**tiny_tokenizer_json(), "pre_tokenizer": {"type": "Fancy"}}, r"pre-tokenizer type 'Fancy'.*supported: .*ByteLevel"),
    ({**tiny_tokenizer_json(), "normalizer": {"type": "Precompiled"}}, r"normalizer type 'Precompiled'.*supported: .*NFC"),
    ({**tiny_tokenizer_json(), "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}}, r"regex"),
    ({**tiny_tokenizer_json(), "model": {"type": "BPE", "vocab": {"a": 0}}}, r"merges"),
])
def test_bad_tokenizer_json_names_the_file(tmp_path, content, message):
    path = write_json(tmp_path / "bad", content)
    with pytest.raises(InputError, match=message) as caught:
        _core.Tokenizer.load(str(path.parent))
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_tokenizer_files(tmp_path):
    with pytest.raises(InputError, match="no tokenizer files"):
        _core.Tokenizer.load(str(tmp_path))
    with pytest.raises(InputError, match="not a directory"):
        _core.Tokenizer.load(str(tmp_path / "nowhere"))
    (tmp_path / "vocab.json").write_text('{"a": 0}', encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\na q\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"merges\.txt.*'q'"):
        _core.Tokenizer.load(str(tmp_path))
    (tmp_path / "vocab.json").unlink()
    (tmp_path / "merges.txt").unlink()
    (tmp_path / "tokenizer.model").write_bytes(b"not a model")
    with pytest.raises(InputError, match=r"tokenizer\.model"):
        _core.Tokenizer.load(str(tmp_path))
