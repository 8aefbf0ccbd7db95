"""The sweep manifest: the models, the texts or token-id files, the context lengths and the options of
a sweep, read from TOML (YAML with PyYAML, or JSON) and checked before anything runs; and the names
its runs go by (``DIR/<model>/<text>/ctx<N>/``)."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from .options import Invalid, Options, parse_options

#: one-file checkpoints (GGUF, llama2.c): a model path with one of these names a file, never a hub id
_CHECKPOINT_FILE_SUFFIXES = (".gguf", ".bin")


@dataclass
class ModelEntry:
    ref: str  # as the workers resolve it: an absolute folder or checkpoint file, or a hub id
    folder: Path  # resolved here: a checkpoint folder, or a one-file checkpoint (.gguf, llama2.c .bin)
    name: str
    tokenizer: Union[Path, str, None] = None  # a tokenizer folder or file, passed on as given


@dataclass
class InputEntry:
    path: Path
    kind: str  # "text" or "token_ids"
    name: str


@dataclass
class Manifest:
    source: Optional[Path]  # the manifest file (None: built in, as reproduce's)
    models: list
    inputs: list
    ctx: list
    options: Options


def _read_manifest_file(path: Path) -> dict:
    from .._core import InputError

    if not path.is_file():
        raise InputError(f"{path}: no such manifest file")
    suffix = path.suffix.lower()
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: unreadable ({e.strerror})") from None
    try:
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ModuleNotFoundError:
                raise InputError(f"{path}: a YAML manifest needs PyYAML (pip install pyyaml), or write it in TOML") from None
            data = yaml.safe_load(raw.decode("utf-8"))
        elif suffix == ".json":
            data = json.loads(raw.decode("utf-8"))
        else:
            try:
                import tomllib
            except ModuleNotFoundError:  # Python < 3.11
                try:
                    import tomli as tomllib
                except ModuleNotFoundError:
                    raise InputError(f"{path}: a TOML manifest needs Python 3.11 or tomli (pip install tomli), or "
                                     "write it in JSON") from None
            data = tomllib.loads(raw.decode("utf-8"))
    except InputError:
        raise
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 (byte {e.start})") from None
    except Exception as e:  # the parsers' own errors say where
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: not a valid {'YAML' if suffix in ('.yaml', '.yml') else 'JSON' if suffix == '.json' else 'TOML'} "
                         f"manifest ({msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the manifest must be a table of keys (models, texts / token_ids, ctx, options)")
    return data


def _as_list(data: dict, key: str) -> list:
    v = data.get(key, [])
    if isinstance(v, (str, dict)):
        v = [v]
    if not isinstance(v, list):
        raise Invalid(f"'{key}' must be a list")
    return v


def _entry(item, where: str, keys: Sequence[str]) -> dict:
    """A list item: a string (its path) or a table with 'path' and some of ``keys``."""
    if isinstance(item, str):
        return {"path": item}
    if not isinstance(item, dict):
        raise Invalid(f"{where}: must be a string or a table with 'path'")
    unknown = sorted(set(item) - {"path", *keys})
    if unknown:
        raise Invalid(f"{where}: unknown key '{unknown[0]}' (allowed: path, {', '.join(keys)})")
    if not isinstance(item.get("path"), str) or not item["path"]:
        raise Invalid(f"{where}: needs 'path' (a string)")
    for k in keys:
        if k in item and not isinstance(item[k], str):
            raise Invalid(f"{where}: '{k}' must be a string")
    return item


def safe_name(name: str) -> str:
    """``name`` as one folder name: runs of other characters than letters, digits and ``._+-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "x"


def unique_names(items: Sequence, name_of) -> list[str]:
    """:func:`safe_name` of ``name_of(item)`` for each item, a second and later use of a name numbered
    (``name-2``, ``name-3``)."""
    names, used = [], {}
    for p in items:
        base = safe_name(name_of(p))
        n = used.get(base, 0)
        used[base] = n + 1
        names.append(base if n == 0 else f"{base}-{n + 1}")
    return names


def _model_stem(m: ModelEntry) -> str:
    """A model's default name: its folder's name, a hub id's last part, or a checkpoint file's name
    without .gguf / .bin (so that DIR/<model>/ does not look like a file)."""
    base = os.path.basename(os.path.normpath(m.ref))
    if m.folder.is_file() and Path(base).suffix.lower() in _CHECKPOINT_FILE_SUFFIXES:
        return Path(base).stem
    return base


def load_manifest(path: Path) -> Manifest:
    """Reads and checks a manifest; :class:`InputError` (one line naming the file) when it is wrong.
    Relative paths are relative to the manifest's folder. A model is a checkpoint folder, a one-file
    checkpoint (a GGUF file or a llama2.c .bin, read and checked by the engine when the runs are
    planned), or else a Hugging Face hub id."""
    from .. import resolve_model
    from .._core import InputError

    path = Path(path)
    data = _read_manifest_file(path)
    base = path.resolve().parent
    here = lambda p: Path(p) if Path(p).is_absolute() else base / p
    try:
        unknown = sorted(set(data) - {"models", "texts", "token_ids", "ctx", "options"})
        if unknown:
            raise Invalid(f"unknown key '{unknown[0]}' (allowed: models, texts, token_ids, ctx, options)")
        models_raw = [_entry(m, f"models[{i}]", ("name", "tokenizer")) for i, m in enumerate(_as_list(data, "models"))]
        if not models_raw:
            raise Invalid("'models' must name at least one model (a checkpoint folder or file, or a hub id)")
        inputs_raw = [(_entry(t, f"texts[{i}]", ("name",)), "text") for i, t in enumerate(_as_list(data, "texts"))]
        inputs_raw += [(_entry(t, f"token_ids[{i}]", ("name",)), "token_ids")
                       for i, t in enumerate(_as_list(data, "token_ids"))]
        if not inputs_raw:
            raise Invalid("needs at least one of 'texts' (UTF-8 files) and 'token_ids' (token-id files)")
        ctx = _as_list(data, "ctx") if not isinstance(data.get("ctx"), int) else [data["ctx"]]
        if not ctx:
            raise Invalid("'ctx' must list at least one context length")
        for c in ctx:
            if isinstance(c, bool) or not isinstance(c, int) or c <= 0:
                raise Invalid(f"ctx: {c!r} is not a positive number of tokens")
        options = parse_options(data.get("options"))
    except Invalid as e:
        raise InputError(f"{path}: {e}") from None

    models = []
    for i, m in enumerate(models_raw):
        ref = m["path"]
        local = here(ref)
        if local.is_file():  # a GGUF file or a llama2.c .bin: the engine reads and checks it in plan()
            folder, ref = local, os.fspath(local)
        elif local.suffix.lower() in _CHECKPOINT_FILE_SUFFIXES and not local.is_dir():
            raise InputError(f"{path}: models[{i}]: no such checkpoint file {local}")
        elif local.exists() or ref.startswith((".", "/", "~")):
            if not local.is_dir():
                raise InputError(f"{path}: models[{i}]: {local} is not a folder")
            if not (local / "config.json").is_file():
                raise InputError(f"{path}: models[{i}]: {local} has no config.json (not a Hugging Face checkpoint folder)")
            folder, ref = local, os.fspath(local)
        else:
            folder = resolve_model(ref)  # a hub id: the local hub cache, or a download
        tok = m.get("tokenizer")
        if tok is not None and not (here(tok).is_dir() or here(tok).is_file()):
            raise InputError(f"{path}: models[{i}]: tokenizer {here(tok)}: no such folder or file (a tokenizer folder, "
                             "a .gguf or a llama2.c tok*.bin)")
        models.append(ModelEntry(ref=ref, folder=folder, name=m.get("name") or "",
                                 tokenizer=None if tok is None else here(tok)))
    inputs = []
    for i, (t, kind) in enumerate(inputs_raw):
        f = here(t["path"])
        if not f.is_file():
            raise InputError(f"{path}: {'texts' if kind == 'text' else 'token_ids'}: no such file {f}")
        inputs.append(InputEntry(path=f, kind=kind, name=t.get("name") or ""))
    model_names = unique_names(models, lambda m: m.name or _model_stem(m))
    for m, n in zip(models, model_names):
        m.name = n
    input_names = unique_names(inputs, lambda t: t.name or t.path.stem)
    for t, n in zip(inputs, input_names):
        t.name = safe_name(n)
    return Manifest(source=path, models=models, inputs=inputs, ctx=list(dict.fromkeys(ctx)), options=options)
