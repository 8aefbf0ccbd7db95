"""Every GGML element type attnspec reads, against gguf-py (PyPI `gguf`, llama.cpp's own Python
package) as the oracle: the block layouts (values and bytes per block) and the dequantized values,
bit for bit in float32, on random blocks (every bit pattern of scales and values) and on blocks
gguf-py quantized from real-looking data."""
from __future__ import annotations

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T, quants

from attnspec import _core

READ = _core.tensor_types()  # name -> (type number, values per block, bytes per block)
PLAIN = {T.F64: np.float64, T.I8: np.int8, T.I16: np.int16, T.I32: np.int32, T.I64: np.int64}


def gguf_py_dequantizes(t: T) -> bool:
    return t in (T.F32, T.F16) or t in quants._type_traits


def oracle(t: T, blocks: np.ndarray) -> np.ndarray:
    """gguf-py's values for rows of raw blocks (uint8, [n, bytes]); numpy's cast for the plain
    types gguf-py leaves to numpy (F64 and the integers)."""
    if t in PLAIN:
        return blocks.copy().view(PLAIN[t]).astype(np.float32).reshape(-1)
    with np.errstate(all="ignore"):  # random scales include Inf and NaN: 0 * Inf is NaN for both
        return quants.dequantize(blocks, t).astype(np.float32, copy=False).reshape(-1)


def assert_bit_equal(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    assert ours.dtype == np.float32 and ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    nan = np.isnan(theirs)
    assert np.array_equal(np.isnan(ours), nan), f"{what}: NaN at different places"
    diff = np.flatnonzero(ours.view(np.uint32)[~nan] != theirs.view(np.uint32)[~nan])
    assert diff.size == 0, (f"{what}: {diff.size} of {theirs.size} values differ, first at {diff[0]}: "
                            f"{ours[~nan][diff[0]]!r} vs {theirs[~nan][diff[0]]!r}")


def test_every_type_gguf_py_dequantizes_is_read_with_its_layout():
    missing = [t.name for t in T if gguf_py_dequantizes(t) and t.name not in READ]
    assert not missing, f"types gguf-py dequantizes that attnspec does not read: {missing}"
    for name, (number, block, nbytes) in READ.items():
        assert T(number).name == name
        assert GGML_QUANT_SIZES[T(number)] == (block, nbytes), name


@pytest.mark.parametrize("name", sorted(READ))
def test_random_blocks_bit_exact(name):
    number, _, nbytes = READ[name]
    t = T(number)
    rng = np.random.default_rng(number)
    blocks = rng.integers(0, 256, size=(4096 if nbytes < 64 else 1024, nbytes), dtype=np.uint8)
    assert_bit_equal(_core.dequantize(number, blocks.tobytes()), oracle(t, blocks), f"{name} random blocks")


def gguf_py_quantizes(t: T) -> bool:
    try:
        quants.quantize(np.zeros((1, GGML_QUANT_SIZES[t][0]), dtype=np.float32), t)
        return True
    except NotImplementedError:
        return False


QUANTIZED = sorted(name for name, (number, block, _) in READ.items() if block > 1 and gguf_py_quantizes(T(number)))


def test_gguf_py_quantizes_the_common_formats():
    assert {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"} <= set(QUANTIZED), QUANTIZED


@pytest.mark.parametrize("name", QUANTIZED)
def test_quantized_blocks_bit_exact(name):
    """Blocks as llama.cpp's quantizer writes them (for every type gguf-py quantizes) from
    weight-like values: heavy-tailed, with outliers and exact zeros."""
    number, block, nbytes = READ[name]
    t = T(number)
    rng = np.random.default_rng(100 + number)
    x = (rng.standard_t(4, size=(64, 8 * block)) * 0.02).astype(np.float32)
    x[:, ::97] *= 30.0
    x[3] = 0.0
    blocks = quants.quantize(x, t).reshape(-1, nbytes)
    assert_bit_equal(_core.dequantize(number, blocks.tobytes()), oracle(t, blocks), f"{name} quantized blocks")
    assert np.abs(oracle(t, blocks) - x.reshape(-1)).max() < 0.5 * np.abs(x).max()  # it is a quantization of x


def test_bad_requests_are_clear():
    with pytest.raises(_core.InputError, match="Q8_1 is not one attnspec reads"):
        _core.dequantize(int(T.Q8_1), b"\0" * 36)
    with pytest.raises(_core.InputError, match="not whole Q4_K blocks of 144 bytes"):
        _core.dequantize(int(T.Q4_K), b"\0" * 145)
