#!/usr/bin/env python3
"""Writes tiny random Qwen3 (dense) models and a float64 NumPy reference of Hugging Face's Qwen3
forward, for tests/worker/models/gguf_model_test.cc.

For each model NAME it writes, into --out DIR (beside make_gguf_model_fixtures.py's models, in the
same format):
  NAME.gguf      a `qwen3` GGUF written by gguf.GGUFWriter as llama.cpp's converter writes Qwen3
                 (Qwen3Model derives from Qwen2Model: attn_q/attn_k rows NOT permuted; q/k norms as
                 blk.N.attn_q_norm / attn_k_norm; head_dim as qwen3.attention.key_length/value_length);
  NAME_hf/       the same model as a Hugging Face directory (config.json, F32 model.safetensors);
  NAME.json      {"dtype", "architecture", "prompt", "greedy", "logits", "min_margin"}
where the reference is transformers' Qwen3ForCausalLM written out in float64 NumPy: per layer
  q, k, v = h Wq^T, h Wk^T, h Wv^T (no bias); q, k = RMSNorm over each head with q_norm / k_norm
  ([head_dim]); rotate-half RoPE; causal GQA attention scaled by 1/sqrt(head_dim); o_proj;
  SwiGLU MLP; pre-norm residuals; final RMSNorm; LM head (tied to the embedding or not).

Odd sizes: hidden 64, 6 query heads of head_dim 16 over 2 KV heads (GQA ratio 3; head_dim * heads
= 96 != hidden, and hidden / heads is not even an integer), FFN 96, 2 layers, vocabulary 96. Tensor
parallel size 2 splits them (3 query heads and 1 KV head per rank); 3 does not (2 KV heads).
Models: qwen3_f32 (F32, tied LM head, as the small Qwen3 checkpoints are) and qwen3_f16 (F16
projections, embedding and LM head, untied). qwen3_no_qnorm(.gguf, _hf) is qwen3_f32 without its
q_norm weights, which must fail to load with an error naming the tensor. Each model's seed is
re-drawn until every greedy step's top-two logits differ by at least 0.05.

Usage: make_qwen3_model_fixtures.py --out DIR   (run by CTest as a gguf_model_fixtures setup)
"""

import argparse
import json
import os

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q
from make_gguf_model_fixtures import (add_test_tokenizer, attention, greedy_decode, stored,
                                      write_out, write_safetensors)

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, LAYERS, VOCAB = 64, 6, 2, 16, 96, 2, 96
EPS, THETA, CONTEXT = 1e-6, 1000000.0, 128
PROMPT, STEPS = [1, 17, 42, 5, 77, 3, 60], 6
MIN_MARGIN = 0.05


def draw(rng, qtype, tied):
    """Random Hugging Face tensors (float64, the values the file's type stores exactly)."""
    t = {}

    def add(name, shape, std):
        values = rng.standard_normal(shape) * std
        if qtype != Q.F32 and len(shape) == 2:
            values = values.astype(np.float16)
        t[name] = values.astype(np.float64)

    def add_norm(name, size, std):
        t[name] = (1.0 + rng.standard_normal(size) * std).astype(np.float32).astype(np.float64)

    add("model.embed_tokens.weight", (VOCAB, HIDDEN), 0.1)
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        add_norm(p + "input_layernorm.weight", HIDDEN, 0.1)
        add(p + "self_attn.q_proj.weight", (HEADS * HEAD_DIM, HIDDEN), HIDDEN ** -0.5)
        add(p + "self_attn.k_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN), HIDDEN ** -0.5)
        add(p + "self_attn.v_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN), HIDDEN ** -0.5)
        # Wide norms, so that a missing or misapplied q/k norm changes the logits a lot.
        add_norm(p + "self_attn.q_norm.weight", HEAD_DIM, 0.5)
        add_norm(p + "self_attn.k_norm.weight", HEAD_DIM, 0.5)
        add(p + "self_attn.o_proj.weight", (HIDDEN, HEADS * HEAD_DIM), (HEADS * HEAD_DIM) ** -0.5)
        add_norm(p + "post_attention_layernorm.weight", HIDDEN, 0.1)
        add(p + "mlp.gate_proj.weight", (FFN, HIDDEN), HIDDEN ** -0.5)
        add(p + "mlp.up_proj.weight", (FFN, HIDDEN), HIDDEN ** -0.5)
        add(p + "mlp.down_proj.weight", (HIDDEN, FFN), FFN ** -0.5)
    add_norm("model.norm.weight", HIDDEN, 0.1)
    if not tied:
        add("lm_head.weight", (VOCAB, HIDDEN), 0.5)
    return t


def rms_norm(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * w


def rope(x):
    """transformers' rotate-half RoPE on [T, heads, HEAD_DIM] at positions 0..T-1."""
    t = np.arange(x.shape[0], dtype=np.float64)[:, None]
    inv_freq = THETA ** (-np.arange(0, HEAD_DIM, 2, dtype=np.float64) / HEAD_DIM)
    angle = np.concatenate([t * inv_freq[None, :]] * 2, axis=-1)
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    rotated = np.concatenate([-x[..., HEAD_DIM // 2:], x[..., :HEAD_DIM // 2]], axis=-1)
    return x * cos + rotated * sin


def forward(t, tokens):
    """float64 logits [T, VOCAB]: transformers' Qwen3ForCausalLM."""
    x = t["model.embed_tokens.weight"][tokens]
    T = len(tokens)
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        h = rms_norm(x, t[p + "input_layernorm.weight"])
        q = (h @ t[p + "self_attn.q_proj.weight"].T).reshape(T, HEADS, HEAD_DIM)
        k = (h @ t[p + "self_attn.k_proj.weight"].T).reshape(T, KV_HEADS, HEAD_DIM)
        v = (h @ t[p + "self_attn.v_proj.weight"].T).reshape(T, KV_HEADS, HEAD_DIM)
        q = rope(rms_norm(q, t[p + "self_attn.q_norm.weight"]))
        k = rope(rms_norm(k, t[p + "self_attn.k_norm.weight"]))
        x = x + attention(q, k, v) @ t[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, t[p + "post_attention_layernorm.weight"])
        g, u = h @ t[p + "mlp.gate_proj.weight"].T, h @ t[p + "mlp.up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ t[p + "mlp.down_proj.weight"].T
    head = t.get("lm_head.weight", t["model.embed_tokens.weight"])
    return rms_norm(x, t["model.norm.weight"]) @ head.T


def greedy(t):
    return greedy_decode(lambda tokens: forward(t, tokens)[-1], PROMPT, STEPS)


def gguf_name(hf_name):
    """The converter's tensor name (gguf-py's TensorNameMap for MODEL_ARCH.QWEN3)."""
    fixed = {"model.embed_tokens.weight": "token_embd.weight",
             "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    if hf_name in fixed:
        return fixed[hf_name]
    layer, rest = hf_name[len("model.layers."):].split(".", 1)
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
             "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    return f"blk.{layer}.{names[rest[:-len('.weight')]]}.weight"


def write_gguf(path, t, qtype, name):
    w = gguf.GGUFWriter(path=None, arch="qwen3")
    w.add_name(name)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_key_length(HEAD_DIM)  # the converter writes config.json's head_dim as both
    w.add_value_length(HEAD_DIM)
    w.add_layer_norm_rms_eps(EPS)
    w.add_rope_freq_base(THETA)
    w.add_file_type(1 if qtype == Q.F16 else 0)
    add_test_tokenizer(w, VOCAB)
    for hf_name, values in t.items():
        w.add_tensor(gguf_name(hf_name), stored(values, qtype if values.ndim == 2 else Q.F32))
    write_out(w, path)


def write_hf(out_dir, t, tied):
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), t)
    config = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": VOCAB,
              "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": LAYERS,
              "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
              "head_dim": HEAD_DIM, "hidden_act": "silu", "attention_bias": False,
              "rms_norm_eps": EPS, "rope_theta": THETA, "rope_scaling": None,
              "max_position_embeddings": CONTEXT, "use_sliding_window": False,
              "sliding_window": None, "max_window_layers": LAYERS,
              "tie_word_embeddings": tied, "bos_token_id": 1, "eos_token_id": 2,
              "torch_dtype": "float32"}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)


def make(out_dir, name, qtype, tied, seed):
    for attempt in range(100):
        t = draw(np.random.default_rng(seed * 1000 + attempt), qtype, tied)
        tokens, logits, margin = greedy(t)
        if margin >= MIN_MARGIN and len(set(tokens)) >= 3:
            break
    else:
        raise RuntimeError(f"{name}: no seed gives 3 distinct greedy tokens with margins of "
                           f"{MIN_MARGIN}")
    write_gguf(os.path.join(out_dir, name + ".gguf"), t, qtype, name)
    write_hf(os.path.join(out_dir, name + "_hf"), t, tied)
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump({"dtype": qtype.name, "architecture": "qwen3", "prompt": PROMPT,
                   "greedy": tokens, "logits": [row.tolist() for row in logits],
                   "min_margin": float(margin)}, f)
    return t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t = make(args.out, "qwen3_f32", Q.F32, tied=True, seed=70)
    make(args.out, "qwen3_f16", Q.F16, tied=False, seed=80)
    missing = {k: v for k, v in t.items() if not k.endswith("self_attn.q_norm.weight")}
    write_gguf(os.path.join(args.out, "qwen3_no_qnorm.gguf"), missing, Q.F32, "qwen3_no_qnorm")
    write_hf(os.path.join(args.out, "qwen3_no_qnorm_hf"), missing, tied=True)


if __name__ == "__main__":
    main()
