#!/usr/bin/env python3
"""Writes tiny random GGUF models and their float64 NumPy reference outputs, for
tests/worker/models/gguf_model_test.cc.

For each model NAME it writes, into --out DIR:
  NAME.gguf      a GGUF file written by gguf.GGUFWriter (llama.cpp's own writer);
  NAME_hf/       the same model as a Hugging Face directory (config.json, F32 model.safetensors);
  NAME.json      {"dtype", "architecture", "prompt": [ids], "greedy": [ids],
                  "logits": [[vocab floats] per greedy step], "min_margin"}
where the reference is a float64 forward pass over the dequantized weights (gguf.quants.dequantize)
in GGML's own layout: the `llama` files store their attn_q/attn_k rows permuted as llama.cpp's
converter does (convert_hf_to_gguf.py LlamaModel.permute), and the reference rotates them with
GGML's pairwise RoPE on that layout, so Pagoda's un-permute + rotate-half RoPE is checked against
an independent formulation. The Hugging Face directory holds the un-permuted weights.

Models: llama_<type> for every weight type Pagoda reads (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): every projection, the embedding and the LM head in that type,
norms in F32; hidden 256 (K-quants need rows of whole 256-element blocks), 4 heads of 64, 2 KV
heads, FFN 512, 2 layers, vocabulary 96; odd types tie the LM head to the embedding. llama_mixed
mixes types as a Q4_K_M file does (attn_v and ffn_down in Q6_K beside Q4_K/Q5_K). qwen2_q8_0 is a
qwen2 model (q/k/v biases, rows not permuted, NEOX RoPE). The formats gguf cannot quantize
(the K-quants) get random block bytes whose float16 scale fields are set so that weights are
centred and of the size a trained model's are. Each model's seed is re-drawn until every greedy
step's top-two logits differ by at least 0.05, so the greedy tokens are well defined.

Usage: make_gguf_model_fixtures.py --out DIR   (run by CTest as the gguf_model_fixtures setup)
"""

import argparse
import json
import os
import struct

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize, quantize

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, LAYERS, VOCAB = 256, 4, 2, 64, 512, 2, 96
EPS, THETA, CONTEXT = 1e-5, 10000.0, 128
PROMPT, STEPS = [1, 17, 42, 5, 77], 6
MIN_MARGIN = 0.05

# Offsets of the float16 (d, dmin) fields in a K-quant block (ggml-common.h) and the dmin/d ratio
# that centres the weights (the mean of d * scale * q equals that of dmin * min).
K_FIELDS = {Q.Q2_K: (80, 82, 1.5), Q.Q3_K: (108, None, 0.0), Q.Q4_K: (0, 2, 7.5),
            Q.Q5_K: (0, 2, 15.5), Q.Q6_K: (208, None, 0.0)}
TYPES = [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q4_K,
         Q.Q5_K, Q.Q6_K]


def stored(values, qtype):
    """fp32 values -> what GGUFWriter.add_tensor takes for `qtype`."""
    if qtype == Q.F32:
        return values.astype(np.float32)
    if qtype == Q.F16:
        return values.astype(np.float16)
    return quantize(values.astype(np.float32), qtype)


def random_kquant(rng, shape, qtype, std):
    """Random block bytes of a K-quant with centred weights of about `std`."""
    block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    rows, cols = shape
    raw = rng.integers(0, 256, size=(rows, cols // block_elems, block_bytes), dtype=np.uint8)
    d_at, dmin_at, ratio = K_FIELDS[qtype]

    def set_fields(d):
        raw[:, :, d_at:d_at + 2] = np.frombuffer(np.float16(d).tobytes(), np.uint8)
        if dmin_at is not None:
            dmin = np.float16(d * ratio)
            raw[:, :, dmin_at:dmin_at + 2] = np.frombuffer(dmin.tobytes(), np.uint8)

    set_fields(1.0)
    unit = dequantize(raw.reshape(rows, -1), qtype).std()
    set_fields(std / unit)
    return raw.reshape(rows, -1)


class Builder:
    """Draws a model's tensors: `ggml` holds what the file stores, `values` their float64 values
    in the file's layout."""

    def __init__(self, rng):
        self.rng = rng
        self.ggml = {}
        self.values = {}

    def add(self, name, shape, qtype, std, permute_heads=0):
        if qtype in K_FIELDS:
            data = random_kquant(self.rng, shape, qtype, std)
        else:
            values = self.rng.standard_normal(shape) * std
            if permute_heads:
                values = permute(values, permute_heads)  # as llama.cpp's converter writes them
            data = stored(values, qtype)
        self.ggml[name] = (data, qtype)
        self.values[name] = dequantize(data, qtype).astype(np.float64).reshape(shape)

    def add_norm(self, name):
        self.add(name, (HIDDEN,), Q.F32, 0.1)
        self.values[name] += 1.0
        self.ggml[name] = (self.values[name].astype(np.float32), Q.F32)


def permute(w, n_head):
    """llama.cpp's convert_hf_to_gguf.py LlamaModel.permute: HF rows -> GGML's pairwise layout."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def unpermute(w, n_head):
    """The inverse of permute: GGUF rows -> Hugging Face rows."""
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def build(rng, arch, types, tied):
    """The tensors of one model; `types` maps a tensor kind to its GGML type."""
    b = Builder(rng)
    llama = arch == "llama"
    b.add("token_embd.weight", (VOCAB, HIDDEN), types["embd"], 0.1)
    for layer in range(LAYERS):
        p = f"blk.{layer}."
        b.add_norm(p + "attn_norm.weight")
        b.add(p + "attn_q.weight", (HEADS * HEAD_DIM, HIDDEN), types["attn_q"], HIDDEN ** -0.5,
              HEADS if llama else 0)
        b.add(p + "attn_k.weight", (KV_HEADS * HEAD_DIM, HIDDEN), types["attn_k"], HIDDEN ** -0.5,
              KV_HEADS if llama else 0)
        b.add(p + "attn_v.weight", (KV_HEADS * HEAD_DIM, HIDDEN), types["attn_v"], HIDDEN ** -0.5)
        if not llama:
            for n, rows in (("q", HEADS), ("k", KV_HEADS), ("v", KV_HEADS)):
                b.add(p + f"attn_{n}.bias", (rows * HEAD_DIM,), Q.F32, 0.2)
        b.add(p + "attn_output.weight", (HIDDEN, HEADS * HEAD_DIM), types["attn_output"],
              HIDDEN ** -0.5)
        b.add_norm(p + "ffn_norm.weight")
        b.add(p + "ffn_gate.weight", (FFN, HIDDEN), types["ffn_gate"], HIDDEN ** -0.5)
        b.add(p + "ffn_up.weight", (FFN, HIDDEN), types["ffn_up"], HIDDEN ** -0.5)
        b.add(p + "ffn_down.weight", (HIDDEN, FFN), types["ffn_down"], FFN ** -0.5)
    b.add_norm("output_norm.weight")
    if not tied:
        b.add("output.weight", (VOCAB, HIDDEN), types["output"], 0.1)
    return b


def rms_norm(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * w


def rope(x, n_heads, pairwise):
    """RoPE on [T, n_heads * HEAD_DIM]: GGML's pairwise (2i, 2i+1) or NEOX's (i, i + d/2)."""
    t = np.arange(x.shape[0], dtype=np.float64)[:, None]
    inv_freq = THETA ** (-np.arange(0, HEAD_DIM, 2, dtype=np.float64) / HEAD_DIM)
    angle = t * inv_freq[None, :]
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    x = x.reshape(x.shape[0], n_heads, HEAD_DIM)
    if pairwise:
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = b * cos + a * sin
    else:
        a, b = x[..., :HEAD_DIM // 2], x[..., HEAD_DIM // 2:]
        out = np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)
    return out.reshape(x.shape[0], -1)


def attention(q, k, v, window=0):
    """Causal GQA attention in float64: q [T, heads, d], k and v [T, kv_heads, d] -> [T, heads*d].
    window > 0: query i sees keys j > i - window only (transformers' sliding-window mask)."""
    T, heads, head_dim = q.shape
    group = heads // k.shape[1]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    if window > 0:
        mask += np.tril(np.full((T, T), -np.inf), -window)
    out = np.empty_like(q)
    for head in range(heads):
        kv = head // group
        s = q[:, head] @ k[:, kv].T / np.sqrt(head_dim) + mask
        s = np.exp(s - s.max(axis=1, keepdims=True))
        out[:, head] = (s / s.sum(axis=1, keepdims=True)) @ v[:, kv]
    return out.reshape(T, -1)


def forward(v, arch, tokens):
    """float64 logits [T, VOCAB] of the model with tensor values `v` (GGUF layout)."""
    llama = arch == "llama"
    x = v["token_embd.weight"][tokens]
    T = len(tokens)
    for layer in range(LAYERS):
        p = f"blk.{layer}."
        h = rms_norm(x, v[p + "attn_norm.weight"])
        q = h @ v[p + "attn_q.weight"].T
        k = h @ v[p + "attn_k.weight"].T
        val = h @ v[p + "attn_v.weight"].T
        if not llama:
            q, k, val = q + v[p + "attn_q.bias"], k + v[p + "attn_k.bias"], val + v[p + "attn_v.bias"]
        q, k = rope(q, HEADS, llama), rope(k, KV_HEADS, llama)
        q = q.reshape(T, HEADS, HEAD_DIM)
        k = k.reshape(T, KV_HEADS, HEAD_DIM)
        val = val.reshape(T, KV_HEADS, HEAD_DIM)
        x = x + attention(q, k, val) @ v[p + "attn_output.weight"].T
        h = rms_norm(x, v[p + "ffn_norm.weight"])
        g, u = h @ v[p + "ffn_gate.weight"].T, h @ v[p + "ffn_up.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ v[p + "ffn_down.weight"].T
    head = v.get("output.weight", v["token_embd.weight"])
    return rms_norm(x, v["output_norm.weight"]) @ head.T


def greedy_decode(last_logits, prompt, steps):
    """Greedy ids, their logit rows and the smallest top-two margin; last_logits(tokens) is the
    reference forward's last row."""
    tokens, logits, margin = list(prompt), [], np.inf
    for _ in range(steps):
        row = last_logits(tokens)
        top2 = np.sort(row)[-2:]
        margin = min(margin, top2[1] - top2[0])
        logits.append(row)
        tokens.append(int(np.argmax(row)))
    return tokens[len(prompt):], logits, margin


def greedy(v, arch):
    return greedy_decode(lambda tokens: forward(v, arch, tokens)[-1], PROMPT, STEPS)


def add_test_tokenizer(w, vocab):
    """A SentencePiece-style `llama` vocabulary of `vocab` tokens: <unk>, <s> (BOS), </s> (EOS)."""
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(3, vocab)])
    w.add_token_scores([float(-i) for i in range(vocab)])
    w.add_token_types([2, 3, 3] + [1] * (vocab - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)


def write_out(w, path):
    """Writes a GGUFWriter's header, metadata and tensors to `path`."""
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_gguf(path, b, arch, name):
    w = gguf.GGUFWriter(path=None, arch=arch)
    w.add_name(name)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(EPS)
    w.add_rope_freq_base(THETA)
    w.add_rope_dimension_count(HEAD_DIM)
    add_test_tokenizer(w, VOCAB)
    for tname, (data, qtype) in b.ggml.items():
        if qtype in (Q.F32, Q.F16):
            w.add_tensor(tname, data)
        else:
            w.add_tensor(tname, data, raw_dtype=qtype)
    write_out(w, path)


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for tname, values in tensors.items():
        blob = np.ascontiguousarray(values, dtype="<f4").tobytes()
        header[tname] = {"dtype": "F32", "shape": list(values.shape),
                         "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def write_hf(out_dir, v, arch, tied):
    """The model as a Hugging Face directory (un-permuted F32 weights)."""
    os.makedirs(out_dir, exist_ok=True)
    llama = arch == "llama"
    t = {"model.embed_tokens.weight": v["token_embd.weight"],
         "model.norm.weight": v["output_norm.weight"]}
    if not tied:
        t["lm_head.weight"] = v["output.weight"]
    for layer in range(LAYERS):
        g, h = f"blk.{layer}.", f"model.layers.{layer}."
        t[h + "input_layernorm.weight"] = v[g + "attn_norm.weight"]
        t[h + "post_attention_layernorm.weight"] = v[g + "ffn_norm.weight"]
        q, k = v[g + "attn_q.weight"], v[g + "attn_k.weight"]
        t[h + "self_attn.q_proj.weight"] = unpermute(q, HEADS) if llama else q
        t[h + "self_attn.k_proj.weight"] = unpermute(k, KV_HEADS) if llama else k
        t[h + "self_attn.v_proj.weight"] = v[g + "attn_v.weight"]
        t[h + "self_attn.o_proj.weight"] = v[g + "attn_output.weight"]
        if not llama:
            for n in "qkv":
                t[h + f"self_attn.{n}_proj.bias"] = v[g + f"attn_{n}.bias"]
        t[h + "mlp.gate_proj.weight"] = v[g + "ffn_gate.weight"]
        t[h + "mlp.up_proj.weight"] = v[g + "ffn_up.weight"]
        t[h + "mlp.down_proj.weight"] = v[g + "ffn_down.weight"]
    write_safetensors(os.path.join(out_dir, "model.safetensors"), t)
    config = {"architectures": ["LlamaForCausalLM" if llama else "Qwen2ForCausalLM"],
              "model_type": arch, "vocab_size": VOCAB, "hidden_size": HIDDEN,
              "intermediate_size": FFN, "num_hidden_layers": LAYERS,
              "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
              "rms_norm_eps": EPS, "rope_theta": THETA, "max_position_embeddings": CONTEXT,
              "tie_word_embeddings": tied, "bos_token_id": 1, "eos_token_id": 2,
              "torch_dtype": "float32"}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)


def make(out_dir, name, arch, types, tied, seed):
    for attempt in range(100):
        rng = np.random.default_rng(seed * 1000 + attempt)
        b = build(rng, arch, types, tied)
        tokens, logits, margin = greedy(b.values, arch)
        if margin >= MIN_MARGIN:
            break
    else:
        raise RuntimeError(f"{name}: no seed gives greedy margins of {MIN_MARGIN}")
    write_gguf(os.path.join(out_dir, name + ".gguf"), b, arch, name)
    write_hf(os.path.join(out_dir, name + "_hf"), b.values, arch, tied)
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump({"dtype": types["attn_q"].name, "architecture": arch, "prompt": PROMPT,
                   "greedy": tokens, "logits": [row.tolist() for row in logits],
                   "min_margin": float(margin)}, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    kinds = ["embd", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
             "ffn_down", "output"]
    for i, qtype in enumerate(TYPES):
        make(args.out, f"llama_{qtype.name.lower()}", "llama", {k: qtype for k in kinds},
             tied=i % 2 == 1, seed=i + 1)
    mixed = dict(embd=Q.Q8_0, attn_q=Q.Q4_K, attn_k=Q.Q4_K, attn_v=Q.Q6_K, attn_output=Q.Q4_K,
                 ffn_gate=Q.Q5_K, ffn_up=Q.Q4_K, ffn_down=Q.Q6_K, output=Q.Q6_K)
    make(args.out, "llama_mixed", "llama", mixed, tied=False, seed=50)
    make(args.out, "qwen2_q8_0", "qwen2", {k: Q.Q8_0 for k in kinds}, tied=False, seed=60)


if __name__ == "__main__":
    main()
