#!/usr/bin/env python3
"""Writes the GGUF fixtures of tests/common/formats/gguf_test.cc with the `gguf` PyPI package.

For each file NAME.gguf (written by gguf.GGUFWriter) it also writes NAME.json: every metadata
entry and every tensor exactly as the writer was given them, so the C++ reader can be checked
against an independent writer:
  {"metadata": [{"key": k, "type": "u32", "value": 7} |
                {"key": k, "type": "array", "element_type": "i32", "elements": [VALUE...]}],
   "tensors": [{"name": n, "ggml_type": 8, "shape": [rows, cols], "data_hex": "..."}]}
where an array element is {"type": ..., "value": ...} (or an array object without "key"), and
"shape" is NumPy order (slowest dim first), the reverse of GGUF's dims.

  tiny_llama.gguf   llama: hidden 256, 4 heads, 2 KV heads, 2 layers, vocab 32, tied embeddings;
                    block tensors in every supported dtype; test.* keys of every value type
  tiny_qwen2.gguf   qwen2: hidden 64, 2 heads, 1 KV head, 1 layer, vocab 16, q/k/v biases,
                    output.weight; general.alignment 64
  tiny_llama3.gguf  llama with Llama 3 RoPE scaling as rope_freqs.weight (factor 8, low 2,
                    high 8, original context 8192); no tokenizer (vocab from token_embd)

Usage: make_gguf_fixtures.py --out DIR   (run by CTest as the gguf_fixtures setup test)
"""

import argparse
import json
import math
import os
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

TYPE_NAMES = {
    V.UINT8: "u8", V.INT8: "i8", V.UINT16: "u16", V.INT16: "i16", V.UINT32: "u32",
    V.INT32: "i32", V.FLOAT32: "f32", V.BOOL: "bool", V.STRING: "string", V.ARRAY: "array",
    V.UINT64: "u64", V.INT64: "i64", V.FLOAT64: "f64",
}


def describe(value, vtype, sub_type=None):
    """The JSON form of a metadata value, following GGUFWriter._pack_val's type choices."""
    if vtype == V.ARRAY:
        if sub_type is not None:
            ltype = sub_type
        elif isinstance(value, bytes):
            ltype = V.UINT8
        else:
            ltype = V.get_type(value[0])
        return {"type": "array", "element_type": TYPE_NAMES[ltype],
                "elements": [describe(item, ltype) for item in value]}
    if vtype == V.STRING:
        return {"type": "string", "value": value}
    if vtype == V.FLOAT32:
        return {"type": "f32", "value": float(np.float32(value))}
    if vtype == V.BOOL:
        return {"type": "bool", "value": bool(value)}
    return {"type": TYPE_NAMES[vtype], "value": value}


def finish(writer, out_dir, name):
    """Writes NAME.gguf and NAME.json (from what the writer holds before it writes)."""
    metadata = []
    for key, val in writer.kv_data[0].items():
        entry = describe(val.value, val.type, val.sub_type)
        metadata.append({"key": key, **entry})
    tensors = []
    for tname, info in writer.tensors[0].items():
        raw = info.tensor
        tensors.append({"name": tname, "ggml_type": int(info.dtype),
                        "shape": [int(d) for d in info.shape],
                        "data_hex": raw.tobytes().hex()})
    path = os.path.join(out_dir, name + ".gguf")
    writer.write_header_to_file(path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump({"metadata": metadata, "tensors": tensors}, f, indent=1)


def add_tensor(writer, rng, name, qtype, shape):
    """A tensor of `shape` (NumPy order) in `qtype`: random values, or random block bytes."""
    if qtype == Q.F32:
        writer.add_tensor(name, rng.standard_normal(shape).astype(np.float32))
    elif qtype == Q.F16:
        writer.add_tensor(name, rng.standard_normal(shape).astype(np.float16))
    else:
        block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        assert shape[-1] % block_elems == 0, (name, shape)
        byte_shape = (*shape[:-1], shape[-1] // block_elems * block_bytes)
        raw = rng.integers(0, 256, size=byte_shape, dtype=np.uint8)
        writer.add_tensor(name, raw, raw_dtype=qtype)


def add_tokenizer(writer, vocab, bos, eos):
    tokens = ["<unk>", "<s>", "</s>"] + [f"tok{i}" for i in range(3, vocab - 2)] + ["\u2581h\u00e9", ""]
    assert len(tokens) == vocab
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([float(-i) for i in range(vocab)])
    writer.add_token_types([2, 3, 3] + [1] * (vocab - 3))
    writer.add_bos_token_id(bos)
    writer.add_eos_token_id(eos)
    writer.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")


def tiny_llama(out_dir):
    rng = np.random.default_rng(1)
    hidden, heads, kv_heads, ffn, vocab = 256, 4, 2, 256, 32
    head_dim = hidden // heads
    w = gguf.GGUFWriter(path=None, arch="llama")
    w.add_name("tiny llama")
    w.add_context_length(512)
    w.add_embedding_length(hidden)
    w.add_block_count(2)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(head_dim)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    add_tokenizer(w, vocab, bos=1, eos=2)
    # One key of every value type, at its extremes, and arrays of each (nested too).
    w.add_key_value("test.u8", 255, V.UINT8)
    w.add_key_value("test.i8", -128, V.INT8)
    w.add_key_value("test.u16", 65535, V.UINT16)
    w.add_key_value("test.i16", -32768, V.INT16)
    w.add_key_value("test.u32", 2**32 - 1, V.UINT32)
    w.add_key_value("test.i32", -2**31, V.INT32)
    w.add_key_value("test.f32", -1.5e-3, V.FLOAT32)
    w.add_key_value("test.bool", True, V.BOOL)
    w.add_key_value("test.string", "h\u00e9llo \u2713 \U0001F600", V.STRING)
    w.add_key_value("test.empty_string", "", V.STRING)
    w.add_key_value("test.u64", 2**64 - 1, V.UINT64)
    w.add_key_value("test.i64", -2**63, V.INT64)
    w.add_key_value("test.f64", 1e300, V.FLOAT64)
    w.add_key_value("test.array_u8", [0, 1, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("test.array_i8", [-128, 0, 127], V.ARRAY, sub_type=V.INT8)
    w.add_key_value("test.array_u16", [7, 65535], V.ARRAY, sub_type=V.UINT16)
    w.add_key_value("test.array_i16", [-32768, 32767], V.ARRAY, sub_type=V.INT16)
    w.add_key_value("test.array_u32", [1, 2**32 - 1], V.ARRAY, sub_type=V.UINT32)
    w.add_key_value("test.array_i32", [-2**31, 0, 2**31 - 1], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.array_f32", [0.25, -3.0, 1e-7], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("test.array_bool", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    w.add_key_value("test.array_u64", [2**64 - 1, 0], V.ARRAY, sub_type=V.UINT64)
    w.add_key_value("test.array_i64", [-2**63, 2**63 - 1], V.ARRAY, sub_type=V.INT64)
    w.add_key_value("test.array_f64", [math.pi, -1e-300], V.ARRAY, sub_type=V.FLOAT64)
    w.add_key_value("test.array_string", ["a", "", "\u00fcnic\u00f8de"], V.ARRAY)
    w.add_key_value("test.nested", [[1, 2], [3]], V.ARRAY)
    w.add_key_value("test.nested3", [[["x", "y"]], [["z"]]], V.ARRAY)

    # Two blocks whose matrices cover every supported tensor type; norms in f32.
    layer_types = [
        dict(attn_q=Q.Q4_0, attn_k=Q.Q4_1, attn_v=Q.Q5_0, attn_output=Q.Q5_1,
             ffn_gate=Q.Q2_K, ffn_up=Q.Q3_K, ffn_down=Q.Q4_K),
        dict(attn_q=Q.F16, attn_k=Q.BF16, attn_v=Q.Q5_K, attn_output=Q.Q6_K,
             ffn_gate=Q.F32, ffn_up=Q.Q8_0, ffn_down=Q.Q4_K),
    ]
    add_tensor(w, rng, "token_embd.weight", Q.Q8_0, (vocab, hidden))
    for layer, types in enumerate(layer_types):
        p = f"blk.{layer}."
        add_tensor(w, rng, p + "attn_norm.weight", Q.F32, (hidden,))
        add_tensor(w, rng, p + "attn_q.weight", types["attn_q"], (heads * head_dim, hidden))
        add_tensor(w, rng, p + "attn_k.weight", types["attn_k"], (kv_heads * head_dim, hidden))
        add_tensor(w, rng, p + "attn_v.weight", types["attn_v"], (kv_heads * head_dim, hidden))
        add_tensor(w, rng, p + "attn_output.weight", types["attn_output"], (hidden, hidden))
        add_tensor(w, rng, p + "ffn_norm.weight", Q.F32, (hidden,))
        add_tensor(w, rng, p + "ffn_gate.weight", types["ffn_gate"], (ffn, hidden))
        add_tensor(w, rng, p + "ffn_up.weight", types["ffn_up"], (ffn, hidden))
        add_tensor(w, rng, p + "ffn_down.weight", types["ffn_down"], (hidden, ffn))
    add_tensor(w, rng, "output_norm.weight", Q.F32, (hidden,))
    finish(w, out_dir, "tiny_llama")


def tiny_qwen2(out_dir):
    rng = np.random.default_rng(2)
    hidden, heads, kv_heads, ffn, vocab = 64, 2, 1, 128, 16
    head_dim = hidden // heads
    w = gguf.GGUFWriter(path=None, arch="qwen2")
    w.add_custom_alignment(64)
    w.add_context_length(32768)
    w.add_embedding_length(hidden)
    w.add_block_count(1)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1000000.0)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list([f"t{i}" for i in range(vocab)])
    w.add_token_types([1] * (vocab - 2) + [3, 3])
    w.add_token_merges(["t 1", "t1 0"])
    w.add_eos_token_id(14)
    w.add_eot_token_id(15)
    add_tensor(w, rng, "token_embd.weight", Q.BF16, (vocab, hidden))
    add_tensor(w, rng, "blk.0.attn_norm.weight", Q.F32, (hidden,))
    add_tensor(w, rng, "blk.0.attn_q.weight", Q.Q8_0, (heads * head_dim, hidden))
    add_tensor(w, rng, "blk.0.attn_q.bias", Q.F32, (heads * head_dim,))
    add_tensor(w, rng, "blk.0.attn_k.weight", Q.F16, (kv_heads * head_dim, hidden))
    add_tensor(w, rng, "blk.0.attn_k.bias", Q.F32, (kv_heads * head_dim,))
    add_tensor(w, rng, "blk.0.attn_v.weight", Q.BF16, (kv_heads * head_dim, hidden))
    add_tensor(w, rng, "blk.0.attn_v.bias", Q.F32, (kv_heads * head_dim,))
    add_tensor(w, rng, "blk.0.attn_output.weight", Q.Q8_0, (hidden, hidden))
    add_tensor(w, rng, "blk.0.ffn_norm.weight", Q.F32, (hidden,))
    add_tensor(w, rng, "blk.0.ffn_gate.weight", Q.Q4_0, (ffn, hidden))
    add_tensor(w, rng, "blk.0.ffn_up.weight", Q.Q5_1, (ffn, hidden))
    add_tensor(w, rng, "blk.0.ffn_down.weight", Q.F16, (hidden, ffn))
    add_tensor(w, rng, "output_norm.weight", Q.F32, (hidden,))
    add_tensor(w, rng, "output.weight", Q.Q8_0, (vocab, hidden))
    finish(w, out_dir, "tiny_qwen2")


def llama3_rope_factors(base, dim, factor, low_freq_factor, high_freq_factor, old_context_len):
    """As llama.cpp's convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors) computes them."""
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            factors.append(1)
        elif wavelen > low_freq_wavelen:
            factors.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def tiny_llama3(out_dir):
    rng = np.random.default_rng(3)
    hidden, heads, vocab = 128, 2, 8
    head_dim = hidden // heads
    w = gguf.GGUFWriter(path=None, arch="llama")
    w.add_context_length(131072)
    w.add_embedding_length(hidden)
    w.add_block_count(1)
    w.add_feed_forward_length(256)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(500000.0)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    add_tensor(w, rng, "token_embd.weight", Q.F32, (vocab, hidden))
    w.add_tensor("rope_freqs.weight", llama3_rope_factors(500000.0, head_dim, 8.0, 2.0, 8.0, 8192))
    add_tensor(w, rng, "output.weight", Q.F16, (vocab, hidden))
    finish(w, out_dir, "tiny_llama3")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write the fixtures into")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tiny_llama(args.out)
    tiny_qwen2(args.out)
    tiny_llama3(args.out)
    print(f"make_gguf_fixtures: wrote tiny_llama, tiny_qwen2, tiny_llama3 into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
