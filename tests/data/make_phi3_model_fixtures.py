#!/usr/bin/env python3
"""Writes tiny random Phi-3 models and a float64 NumPy reference of Hugging Face's Phi3 forward,
for tests/worker/models/phi3_model_test.cc.

Models (into --out DIR):
  phi3_partial_hf/   Phi3ForCausalLM as a Hugging Face directory (config.json, F32
                     model.safetensors): hidden 64, 6 query heads of head_dim 16 over 2 KV heads
                     (GQA ratio 3; 6 * 16 = 96 != hidden), partial_rotary_factor 0.75 (RoPE on the
                     first 12 dims of each head), FFN 80, no rope scaling, untied LM head, a
                     sliding window of 5 (Phi-3-mini-4k's is 2047) over 13 positions.
  phi3_longrope_hf/  hidden 128, 8 query heads over 2 KV heads (GQA ratio 4, head_dim 16),
  phi3_longrope.gguf partial_rotary_factor 0.75, FFN 128, LongRoPE with short and long factors
                     that are not all 1, max_position_embeddings 64 over
                     original_max_position_embeddings 16 (attention factor sqrt(1.5)), tied LM head,
                     a sliding window of 9.
                     The GGUF is written by gguf.GGUFWriter as llama.cpp's converter
                     (Phi3MiniModel) writes it: fused blk.N.attn_qkv ([q; k; v] rows) and
                     blk.N.ffn_up ([gate; up] rows), phi3.rope.dimension_count = 12,
                     rope_factors_long/short.weight, phi3.rope.scaling.original_context_length and
                     attn_factor, phi3.attention.sliding_window 9; its tokenizer ends with
                     Phi-3's special tokens (<|endoftext|> the eos, <|end|>) and its
                     tokenizer.chat_template is Phi-3-mini's.
  NAME.json          {"cases": [{"max_model_len", "prompt", "greedy", "logits", "min_margin"}]}
                     phi3_partial: one case. phi3_longrope: "short" (max model length 16 = the
                     original context, prompt and output within it: transformers and Pagoda both
                     use the short factors) and "long" (max model length 64, a 20-token prompt
                     beyond the original context: both use the long factors).
  phi3_bad_qkv_hf/   phi3_partial with a qkv_proj one row short: must fail to load naming it.
  phi3_bad_factors.gguf  phi3_longrope with 5 long factors for 12 rotary dims: must be refused.

The reference is transformers' Phi3ForCausalLM in float64 NumPy: per layer
  qkv = h Wqkv^T split into q, k, v; RoPE (rotate-half) on the first rotary_dim dims of every head
  with inv_freq = 1 / (ext_factor * theta^(2i / rotary_dim)) and cos/sin times the attention
  factor, the factors chosen as transformers does (long iff the sequence length exceeds
  original_max_position_embeddings); causal GQA attention scaled by 1/sqrt(head_dim) over the
  sliding window (key j visible to query i iff i - window < j <= i); o_proj;
  gate, up = h Wgate_up^T halves; silu(gate) * up; down_proj; pre-norm residuals; final RMSNorm;
  LM head. Each model's seed is re-drawn until every greedy step's top-two logits differ by at
  least 0.05.

Usage: make_phi3_model_fixtures.py --out DIR   (run by CTest as the phi3_model_fixtures setup)
"""

import argparse
import json
import math
import os

import numpy as np

import gguf
from make_gguf_model_fixtures import attention, greedy_decode, write_safetensors

EPS, THETA, VOCAB, LAYERS = 1e-5, 10000.0, 96, 2
STEPS, MIN_MARGIN = 6, 0.05

PARTIAL = dict(hidden=64, heads=6, kv_heads=2, head_dim=16, explicit_head_dim=True,
               partial=0.75, ffn=80, tied=False, max_pos=128, window=5, longrope=None)
LONGROPE = dict(hidden=128, heads=8, kv_heads=2, head_dim=16, explicit_head_dim=False,
                partial=0.75, ffn=128, tied=True, max_pos=64, window=9,
                longrope=dict(original=16,
                              short=[1.0, 1.25, 1.5, 2.0, 3.0, 5.0],
                              long=[1.5, 2.5, 4.0, 8.0, 16.0, 40.0]))
# The last ids of the GGUF vocabulary (Phi-3's 32000-32010 in miniature).
SPECIAL = ["<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>", "<|system|>"]
SHORT_PROMPT = [1, 17, 42, 5, 77, 3, 60]
LONG_PROMPT = [1, 9, 33, 70, 4, 58, 21, 88, 13, 47, 6, 91, 30, 62, 15, 84, 27, 50, 11, 73]


def rotary_dim(m):
    return int(m["head_dim"] * m["partial"])


def attention_factor(m):
    r = m["longrope"]
    scale = m["max_pos"] / r["original"]
    return 1.0 if scale <= 1.0 else math.sqrt(1 + math.log(scale) / math.log(r["original"]))


def draw(rng, m):
    """Random Hugging Face tensors (float64 holding float32 values)."""
    t = {}
    hidden, hd, ffn = m["hidden"], m["head_dim"], m["ffn"]
    q, kv = m["heads"] * hd, m["kv_heads"] * hd

    def add(name, shape, std):
        t[name] = (rng.standard_normal(shape) * std).astype(np.float32).astype(np.float64)

    def add_norm(name, size):
        t[name] = (1.0 + rng.standard_normal(size) * 0.1).astype(np.float32).astype(np.float64)

    add("model.embed_tokens.weight", (VOCAB, hidden), 0.1)
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        add_norm(p + "input_layernorm.weight", hidden)
        add(p + "self_attn.qkv_proj.weight", (q + 2 * kv, hidden), hidden ** -0.5)
        add(p + "self_attn.o_proj.weight", (hidden, q), q ** -0.5)
        add_norm(p + "post_attention_layernorm.weight", hidden)
        add(p + "mlp.gate_up_proj.weight", (2 * ffn, hidden), hidden ** -0.5)
        add(p + "mlp.down_proj.weight", (hidden, ffn), ffn ** -0.5)
    add_norm("model.norm.weight", hidden)
    if not m["tied"]:
        add("lm_head.weight", (VOCAB, hidden), 0.5)
    return t


def rms_norm(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * w


def rope(x, m, seq_len):
    """transformers' Phi3RotaryEmbedding + apply_rotary_pos_emb on [T, heads, head_dim] at
    positions 0..T-1; seq_len picks LongRoPE's factors as longrope_frequency_update does."""
    rot = rotary_dim(m)
    inv_freq = THETA ** (-np.arange(0, rot, 2, dtype=np.float64) / rot)
    scale = 1.0
    if m["longrope"] is not None:
        r = m["longrope"]
        factors = r["long"] if seq_len > r["original"] else r["short"]
        inv_freq = inv_freq / np.array(factors, dtype=np.float64)
        scale = attention_factor(m)
    t = np.arange(x.shape[0], dtype=np.float64)[:, None]
    angle = np.concatenate([t * inv_freq[None, :]] * 2, axis=-1)
    cos, sin = (np.cos(angle) * scale)[:, None, :], (np.sin(angle) * scale)[:, None, :]
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    rotated = np.concatenate([-x_rot[..., rot // 2:], x_rot[..., :rot // 2]], axis=-1)
    return np.concatenate([x_rot * cos + rotated * sin, x_pass], axis=-1)


def forward(t, m, tokens):
    """float64 logits [T, VOCAB]: transformers' Phi3ForCausalLM."""
    hd, ffn = m["head_dim"], m["ffn"]
    q_size, kv_size = m["heads"] * hd, m["kv_heads"] * hd
    x = t["model.embed_tokens.weight"][tokens]
    T = len(tokens)
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        h = rms_norm(x, t[p + "input_layernorm.weight"])
        qkv = h @ t[p + "self_attn.qkv_proj.weight"].T
        q = qkv[:, :q_size].reshape(T, m["heads"], hd)
        k = qkv[:, q_size:q_size + kv_size].reshape(T, m["kv_heads"], hd)
        v = qkv[:, q_size + kv_size:].reshape(T, m["kv_heads"], hd)
        attn = attention(rope(q, m, T), rope(k, m, T), v, m["window"])
        x = x + attn @ t[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, t[p + "post_attention_layernorm.weight"])
        gate_up = h @ t[p + "mlp.gate_up_proj.weight"].T
        g, u = gate_up[:, :ffn], gate_up[:, ffn:]
        x = x + (g / (1 + np.exp(-g)) * u) @ t[p + "mlp.down_proj.weight"].T
    head = t.get("lm_head.weight", t["model.embed_tokens.weight"])
    return rms_norm(x, t["model.norm.weight"]) @ head.T


def hf_config(m):
    config = {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "vocab_size": VOCAB,
              "hidden_size": m["hidden"], "intermediate_size": m["ffn"],
              "num_hidden_layers": LAYERS, "num_attention_heads": m["heads"],
              "num_key_value_heads": m["kv_heads"], "hidden_act": "silu",
              "rms_norm_eps": EPS, "rope_theta": THETA, "rope_scaling": None,
              "partial_rotary_factor": m["partial"], "max_position_embeddings": m["max_pos"],
              "original_max_position_embeddings": m["max_pos"], "sliding_window": m["window"],
              "tie_word_embeddings": m["tied"], "bos_token_id": 1, "eos_token_id": 2,
              "pad_token_id": 2, "attention_dropout": 0.0, "resid_pdrop": 0.0,
              "embd_pdrop": 0.0, "torch_dtype": "float32"}
    if m["explicit_head_dim"]:
        config["head_dim"] = m["head_dim"]
    if m["longrope"] is not None:
        r = m["longrope"]
        config["rope_scaling"] = {"type": "longrope", "short_factor": r["short"],
                                  "long_factor": r["long"]}
        config["original_max_position_embeddings"] = r["original"]
    return config


def write_hf(out_dir, t, m):
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), t)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_config(m), f, indent=1)


def gguf_name(hf_name):
    """The converter's tensor name (gguf-py's TensorNameMap for MODEL_ARCH.PHI3)."""
    fixed = {"model.embed_tokens.weight": "token_embd.weight",
             "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    if hf_name in fixed:
        return fixed[hf_name]
    layer, rest = hf_name[len("model.layers."):].split(".", 1)
    names = {"input_layernorm": "attn_norm", "self_attn.qkv_proj": "attn_qkv",
             "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    return f"blk.{layer}.{names[rest[:-len('.weight')]]}.weight"


def write_gguf(path, t, m, name):
    """What Phi3MiniModel.set_gguf_parameters and generate_extra_tensors write."""
    r = m["longrope"]
    w = gguf.GGUFWriter(path=None, arch="phi3")
    w.add_name(name)
    w.add_context_length(m["max_pos"])
    w.add_rope_scaling_orig_ctx_len(r["original"] if r else m["max_pos"])
    w.add_embedding_length(m["hidden"])
    w.add_feed_forward_length(m["ffn"])
    w.add_block_count(LAYERS)
    w.add_head_count(m["heads"])
    w.add_head_count_kv(m["kv_heads"])
    w.add_layer_norm_rms_eps(EPS)
    w.add_rope_dimension_count(int(m["partial"] * m["hidden"]) // m["heads"])
    w.add_rope_freq_base(THETA)
    w.add_file_type(0)
    w.add_sliding_window(m["window"])
    if r is not None:
        w.add_rope_scaling_attn_factors(attention_factor(m))
    # Phi-3's vocabulary in miniature: SentencePiece pieces, then its added special tokens, which
    # the converter types CONTROL; eos is <|endoftext|> (tokenizer_config.json's eos_token).
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    tokens = ["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(3, VOCAB - len(SPECIAL))]
    w.add_token_list(tokens + SPECIAL)
    w.add_token_scores([float(-i) for i in range(len(tokens))] + [-1000.0] * len(SPECIAL))
    w.add_token_types([2, 3, 3] + [1] * (len(tokens) - 3) + [3] * len(SPECIAL))
    w.add_bos_token_id(1)
    w.add_eos_token_id(VOCAB - len(SPECIAL))
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat_templates",
                           "phi3_mini_instruct.jinja")) as f:
        w.add_chat_template(f.read())
    for hf_name, values in t.items():
        w.add_tensor(gguf_name(hf_name), values.astype(np.float32))
    if r is not None:
        w.add_tensor("rope_factors_long.weight", np.array(r["long"], dtype=np.float32))
        w.add_tensor("rope_factors_short.weight", np.array(r["short"], dtype=np.float32))
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def run_case(t, m, max_model_len, prompt):
    tokens, logits, margin = greedy_decode(lambda ids: forward(t, m, ids)[-1], prompt, STEPS)
    return {"max_model_len": max_model_len, "prompt": prompt, "greedy": tokens,
            "logits": [row.tolist() for row in logits], "min_margin": float(margin)}


def make(out_dir, name, m, cases, seed, gguf_too):
    for attempt in range(200):
        t = draw(np.random.default_rng(seed * 1000 + attempt), m)
        results = [run_case(t, m, *case) for case in cases]
        if all(r["min_margin"] >= MIN_MARGIN and len(set(r["greedy"])) >= 3 for r in results):
            break
    else:
        raise RuntimeError(f"{name}: no seed gives 3 distinct greedy tokens with margins of "
                           f"{MIN_MARGIN}")
    write_hf(os.path.join(out_dir, name + "_hf"), t, m)
    if gguf_too:
        write_gguf(os.path.join(out_dir, name + ".gguf"), t, m, name)
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump({"cases": results}, f)
    return t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t = make(args.out, "phi3_partial", PARTIAL, [(PARTIAL["max_pos"], SHORT_PROMPT)], seed=30,
             gguf_too=False)
    r = LONGROPE["longrope"]
    t_long = make(args.out, "phi3_longrope", LONGROPE,
         [(r["original"], SHORT_PROMPT), (LONGROPE["max_pos"], LONG_PROMPT)], seed=40,
         gguf_too=True)
    bad = dict(t)
    bad["model.layers.0.self_attn.qkv_proj.weight"] = \
        t["model.layers.0.self_attn.qkv_proj.weight"][:-1]
    write_hf(os.path.join(args.out, "phi3_bad_qkv_hf"), bad, PARTIAL)
    short_long = dict(LONGROPE, longrope=dict(r, long=r["long"][:-1]))
    write_gguf(os.path.join(args.out, "phi3_bad_factors.gguf"), t_long, short_long,
               "phi3_bad_factors")


if __name__ == "__main__":
    main()
