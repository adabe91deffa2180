#!/usr/bin/env python3
"""Writes SmolLM2-135M-Instruct in other weight types, for the model benchmarks.

The quick start's file (models/SmolLM2-135M-Instruct.Q4_1.gguf) is the only SmolLM2 checkpoint
the project ships; the benchmarks of docs/performance.md also need the same model at F32, BF16 and
Q8_0. This script dequantizes every tensor of the Q4_1 file with the `gguf` package and writes
it again in the target type (2-D weights in that type, norms kept in F32, as llama.cpp's
converter does), copying the metadata (config, tokenizer, chat template) unchanged. The values
are those of the Q4_1 model, so the variants differ in storage and speed, not in what they say.

  .venv/bin/python benchmarks/make_smollm2_variants.py            # F32, BF16, Q8_0 into models/
  .venv/bin/python benchmarks/make_smollm2_variants.py --types Q8_0
"""

import argparse
import pathlib
import sys

import numpy as np

import gguf

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
TYPES = {
    "F32": gguf.GGMLQuantizationType.F32,
    "BF16": gguf.GGMLQuantizationType.BF16,
    "Q8_0": gguf.GGMLQuantizationType.Q8_0,
}


def copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter) -> None:
    for name, field in reader.fields.items():
        # The writer adds the header fields itself; general.architecture came with its constructor.
        if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type"):
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub_type)


def write_variant(reader: gguf.GGUFReader, qtype: gguf.GGMLQuantizationType,
                  out: pathlib.Path) -> None:
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(out), arch)
    copy_metadata(reader, writer)
    writer.add_file_type({gguf.GGMLQuantizationType.F32: gguf.LlamaFileType.ALL_F32,
                          gguf.GGMLQuantizationType.BF16: gguf.LlamaFileType.MOSTLY_BF16,
                          gguf.GGMLQuantizationType.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0}[qtype])
    for tensor in reader.tensors:
        # GGUF lists dims fastest first; the dequantized array is [rows, cols] row-major.
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        values = values.reshape([int(d) for d in reversed(tensor.shape)])
        target = qtype if values.ndim == 2 else gguf.GGMLQuantizationType.F32
        if target == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(tensor.name, values)
        else:
            data = gguf.quants.quantize(values, target)
            writer.add_tensor(tensor.name, data, raw_dtype=target)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=pathlib.Path, default=SOURCE)
    parser.add_argument("--out-dir", type=pathlib.Path, default=ROOT / "models")
    parser.add_argument("--types", nargs="+", choices=sorted(TYPES), default=sorted(TYPES))
    args = parser.parse_args()
    if not args.source.is_file():
        print(f"{args.source}: not found (scripts/install-deps.sh fetches it)", file=sys.stderr)
        return 1
    reader = gguf.GGUFReader(str(args.source))
    for name in args.types:
        out = args.out_dir / f"SmolLM2-135M-Instruct.{name}.gguf"
        write_variant(reader, TYPES[name], out)
        print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
