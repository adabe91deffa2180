#!/usr/bin/env python3
"""Writes the fixtures of tests/kernels/dequantize_test.cc: blocks of every DType Pagoda reads,
with the fp32 values the `gguf` package (gguf==0.19.0, the reference) dequantizes them to, and
fp32 inputs with what gguf / numpy convert them to (F32, F16, BF16, Q8_0).

For each type NAME (GGML's spelling: f32, f16, bf16, q8_0, ..., q6_K) it writes into --out:
  dequantize_NAME.bin   the raw blocks, back to back
  dequantize_NAME.f32   gguf.quants.dequantize of them (little-endian float32)
and for f32, f16, bf16 and q8_0:
  quantize_NAME.f32     fp32 inputs
  quantize_NAME.bin     gguf.quants.quantize of them (numpy's astype(float16) for f16)

The blocks are random bytes plus the extremes: every f16 scale field (d, and m/dmin where the
format has one) set to +-0, +-1, +-max, the smallest and largest subnormals, the smallest normal,
+-Inf and quiet and signalling NaNs, crossed with all-zero, all-one-bits and random quants (and
sub-block scales). F16 and BF16 cover all 65536 bit patterns. Run by CTest as a fixture setup
(tests/CMakeLists.txt) with the tests' venv python:
  .venv/bin/python tests/data/make_quant_fixtures.py --out build/tests/quant_fixtures
"""

import argparse
import itertools
import pathlib
import sys

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf import quants

T = GGMLQuantizationType

# Byte offsets of the float16 fields in each block (ggml-common.h).
HALF_FIELDS = {
    T.Q8_0: [0],
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}

EXTREME_HALVES = [
    0x0000, 0x8000,  # +-0
    0x3C00, 0xBC00,  # +-1
    0x2E66,  # 0.1
    0x7BFF, 0xFBFF,  # +-65504, the largest finite
    0x0001, 0x8001,  # +-2^-24, the smallest subnormal
    0x03FF,  # the largest subnormal
    0x0400,  # the smallest normal
    0x7C00, 0xFC00,  # +-Inf
    0x7E00, 0xFE00,  # quiet NaNs
    0x7C01, 0x7D55,  # signalling NaNs with payloads
]

RANDOM_BLOCKS = 512


def quant_blocks(qtype: GGMLQuantizationType, rng: np.random.Generator) -> np.ndarray:
    _, block_bytes = GGML_QUANT_SIZES[qtype]
    fields = HALF_FIELDS[qtype]
    blocks = [rng.integers(0, 256, size=(RANDOM_BLOCKS, block_bytes), dtype=np.uint8)]
    fills = [
        np.zeros(block_bytes, np.uint8),
        np.full(block_bytes, 0xFF, np.uint8),
        rng.integers(0, 256, size=block_bytes, dtype=np.uint8),
    ]
    for values in itertools.product(EXTREME_HALVES, repeat=len(fields)):
        for fill in fills:
            block = fill.copy()
            for offset, value in zip(fields, values):
                block[offset:offset + 2] = np.array([value], dtype="<u2").view(np.uint8)
            blocks.append(block.reshape(1, -1))
    return np.concatenate(blocks, axis=0)


def dequantize_inputs(qtype: GGMLQuantizationType, rng: np.random.Generator) -> np.ndarray:
    if qtype in (T.F16, T.BF16):
        return np.arange(1 << 16, dtype="<u2").view(np.uint8)
    if qtype == T.F32:
        special = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001,
                            0x00000001, 0x007FFFFF, 0x7F7FFFFF], dtype="<u4")
        random = rng.integers(0, 1 << 32, size=4096, dtype=np.uint64).astype("<u4")
        return np.concatenate([special, random]).view(np.uint8)
    return quant_blocks(qtype, rng).reshape(-1)


def f16_inputs(rng: np.random.Generator) -> np.ndarray:
    """Random bit patterns (every class of float32) and the float16 rounding boundaries."""
    random = rng.integers(0, 1 << 32, size=1 << 15, dtype=np.uint64).astype("<u4").view(np.float32)
    halves = np.arange(0, 0x7C00, dtype="<u2").view(np.float16).astype(np.float32)
    halves = np.concatenate([halves, -halves])
    nexts = np.nextafter(halves.astype(np.float16), np.float16(np.copysign(np.inf, halves)))
    ties = (halves.astype(np.float64) + nexts.astype(np.float64)) / 2  # exact in float32
    ties = ties.astype(np.float32)
    above = np.nextafter(ties, np.float32(np.inf))
    below = np.nextafter(ties, np.float32(-np.inf))
    special = np.array([0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA00000,
                        0x7F802000, 0x7FFFFFFF, 0x00000001, 0x80000001, 0x33000000, 0x33000001,
                        0x477FF000, 0x477FEFFF, 0x477FF001], dtype="<u4").view(np.float32)
    return np.concatenate([random, halves, ties, above, below, special]).astype(np.float32)


def bf16_inputs(rng: np.random.Generator) -> np.ndarray:
    """Random bit patterns, and for random upper halves every rounding case of the lower half."""
    random = rng.integers(0, 1 << 32, size=1 << 15, dtype=np.uint64).astype("<u4")
    upper = rng.integers(0, 1 << 16, size=4096, dtype=np.uint64).astype("<u4") << 16
    lowers = np.array([0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF], dtype="<u4")
    rounding = (upper.reshape(-1, 1) | lowers.reshape(1, -1)).reshape(-1)
    special = np.array([0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001,
                        0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000, 0x00000001, 0x00008000, 0x00018000],
                       dtype="<u4")
    return np.concatenate([random, rounding, special]).view(np.float32)


def q8_0_inputs(rng: np.random.Generator) -> np.ndarray:
    """Finite blocks only: the reference casts x / d to int8, undefined for NaN and Inf (and for
    blocks so small that 1 / d overflows)."""
    n = 2048
    magnitudes = 10.0 ** rng.uniform(-30, 30, size=(n, 1))
    random = (rng.standard_normal((n, 32)) * magnitudes).astype(np.float32)
    crafted = [
        np.zeros(32, np.float32),
        np.array([127.0] + [0.0] * 31, np.float32),
        # amax 127 makes d = 1 exactly, so these are ties of the round-half-away rounding.
        np.array([127.0, -127.0] + [k + 0.5 for k in range(-15, 15)], np.float32),
        np.full(32, 3.0e38, np.float32),  # d overflows float16 to Inf
        np.full(32, -1e-3, np.float32),
        np.array([65504.0 * 127] + [1.0] * 31, np.float32),
    ]
    return np.concatenate([random.reshape(-1)] + crafted).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=pathlib.Path, help="folder to write into")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240614)
    dequantized = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q2_K, T.Q3_K,
                   T.Q4_K, T.Q5_K, T.Q6_K]
    with np.errstate(all="ignore"):  # Inf and NaN scales are part of the point
        for qtype in dequantized:
            raw = dequantize_inputs(qtype, rng)
            values = quants.dequantize(raw, qtype).astype("<f4")
            name = qtype.name.lower().replace("_k", "_K")
            (out / f"dequantize_{name}.bin").write_bytes(raw.tobytes())
            (out / f"dequantize_{name}.f32").write_bytes(values.tobytes())
        conversions = {
            "f32": (T.F32, f16_inputs(rng)),
            "f16": (T.F16, f16_inputs(rng)),
            "bf16": (T.BF16, bf16_inputs(rng)),
            "q8_0": (T.Q8_0, q8_0_inputs(rng)),
        }
        for name, (qtype, inputs) in conversions.items():
            converted = quants.quantize(inputs, qtype)
            (out / f"quantize_{name}.f32").write_bytes(inputs.astype("<f4").tobytes())
            (out / f"quantize_{name}.bin").write_bytes(converted.tobytes())
    print(f"make_quant_fixtures: wrote {len(dequantized)} dequantize and {len(conversions)} "
          f"quantize fixtures to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
