#!/usr/bin/env python3
"""Writes tiny random Gemma 2 and Gemma 3 (text) models and a float64 NumPy reference of Hugging
Face's Gemma2ForCausalLM / Gemma3ForCausalLM forward, for tests/worker/models/gemma_model_test.cc.

For each model NAME it writes, into --out DIR:
  NAME_hf/       a Hugging Face directory (config.json, F32 model.safetensors; norm weights w of
                 Gemma's (1 + w) RMSNorm);
  NAME.gguf      (where GGUF can hold the model) the same model as llama.cpp's converter writes it
                 (conversion/gemma.py): norm weights stored as 1 + w, tied embedding (no
                 output.weight), q/k rows not permuted, metadata gemma2.attn_logit_softcapping /
                 final_logit_softcapping / attention.sliding_window, gemma3.rope.freq_base_swa,
                 gemma3.rope.scaling.type "linear" + factor, no sliding-window pattern key (llama.cpp
                 defaults it: 2 for gemma2, 6 for gemma3), a SentencePiece `llama` vocabulary with
                 add_space_prefix false and BOS added;
  NAME.json      {"architecture", "prompt", "greedy", "logits", "min_margin", "sliding_layers"}
where the reference is transformers' Gemma forward written out in float64 NumPy (which layers
slide comes from transformers' own config classes, not from this script):
  x = embed[tokens] * sqrt(hidden); per layer
    h = rms(x) (1 + w_in); q, k, v = h Wq^T, h Wk^T, h Wv^T
    (Gemma 3: q, k = rms(q) (1 + q_norm), rms(k) (1 + k_norm) per head)
    rotate-half RoPE: sliding layers base rope_local_base_freq (Gemma 3) / rope_theta (Gemma 2),
      global layers rope_theta with linear scaling (positions / factor, Gemma 3)
    scores = q k^T * query_pre_attn_scalar^-0.5, soft-capped cap * tanh(s / cap) (Gemma 2),
      causal, and on sliding layers only keys at positions > q_pos - sliding_window
    x = x + rms(attn Wo^T) (1 + w_post_attn)
    x = x + rms(down(gelu_tanh(h2 Wg^T) * h2 Wu^T)) (1 + w_post_ffn),  h2 = rms(x) (1 + w_pre_ffn)
  logits = rms(x) (1 + w_final) embed^T, soft-capped by final_logit_softcapping (Gemma 2).

Odd sizes, and a window (4) shorter than the prompt (9 tokens) plus 6 decode steps, so the window
matters (the script asserts that dropping it, or a soft-cap, moves the logits):
  gemma2: hidden 48, 6 query heads of head_dim 16 over 2 KV heads (GQA 3; 6 * 16 != 48), FFN 80,
    4 layers (0 and 2 slide), vocabulary 96; attention soft-cap 3, final soft-cap 5 (small, so they
    bite). query_pre_attn_scalar = head_dim, which is what llama.cpp assumes below 27B.
  gemma2_scalar: the same with query_pre_attn_scalar 24 != head_dim (Hugging Face only: GGUF has no
    key for it).
  gemma3: hidden 40, 4 query heads of head_dim 12 over 4 KV heads (GQA 1; 4 * 12 != 40), FFN 64,
    6 layers (layer 5 global, the rest sliding: transformers' default pattern 6), q/k norms,
    rope_theta 1e6 with linear scaling 8, local base 10000, no soft-caps.
gemma2_window_too_large.gguf, gemma2_bad_pattern.gguf and gemma3_yarn.gguf have metadata that must
be refused naming the key. Tensor parallel size 2 splits both (3 + 1 and 2 + 2 heads per rank). Each model's seed is re-drawn
until every greedy step's top-two logits differ by at least 0.05.

Usage: make_gemma_model_fixtures.py --out DIR   (run by CTest as the gemma_model_fixtures setup)
"""

import argparse
import json
import os

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q
from make_gguf_model_fixtures import greedy_decode, stored, write_safetensors
from transformers import Gemma2Config, Gemma3TextConfig

EPS, CONTEXT, WINDOW = 1e-6, 128, 4
PROMPT, STEPS = [2, 17, 42, 5, 77, 3, 60, 11, 29], 6
MIN_MARGIN = 0.05

GEMMA2 = dict(arch="gemma2", hidden=48, heads=6, kv_heads=2, head_dim=16, ffn=80, layers=4,
              vocab=96, scalar=16, attn_cap=3.0, final_cap=5.0, theta=10000.0,
              local_theta=None, linear=None)
GEMMA3 = dict(arch="gemma3", hidden=40, heads=4, kv_heads=4, head_dim=12, ffn=64, layers=6,
              vocab=96, scalar=12, attn_cap=None, final_cap=None, theta=1e6,
              local_theta=10000.0, linear=8.0)


def hf_config(m):
    """config.json of model m, as transformers saves it."""
    common = {"vocab_size": m["vocab"], "hidden_size": m["hidden"],
              "intermediate_size": m["ffn"], "num_hidden_layers": m["layers"],
              "num_attention_heads": m["heads"], "num_key_value_heads": m["kv_heads"],
              "head_dim": m["head_dim"], "hidden_activation": "gelu_pytorch_tanh",
              "max_position_embeddings": CONTEXT, "rms_norm_eps": EPS, "rope_theta": m["theta"],
              "attention_bias": False, "query_pre_attn_scalar": m["scalar"],
              "sliding_window": WINDOW, "attn_logit_softcapping": m["attn_cap"],
              "final_logit_softcapping": m["final_cap"], "tie_word_embeddings": True,
              "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2, "torch_dtype": "float32"}
    if m["arch"] == "gemma2":
        return {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", **common}
    return {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", **common,
            "rope_local_base_freq": m["local_theta"],
            "rope_scaling": {"rope_type": "linear", "factor": m["linear"]}}


def sliding_layers(m):
    """Which layers slide, by transformers' config classes."""
    cls = Gemma2Config if m["arch"] == "gemma2" else Gemma3TextConfig
    config = {k: v for k, v in hf_config(m).items() if k not in ("architectures", "model_type")}
    return [t == "sliding_attention" for t in cls(**config).layer_types]


def draw(rng, m):
    """Random Hugging Face tensors (float64 values that float32 stores exactly)."""
    t = {}
    H, D, L = m["hidden"], m["head_dim"], m["layers"]

    def add(name, shape, std, mean=0.0):
        t[name] = (mean + rng.standard_normal(shape) * std).astype(np.float32).astype(np.float64)

    # Small, as the residual stream starts at sqrt(hidden) times it and the tied LM head would
    # otherwise keep predicting the input token.
    add("model.embed_tokens.weight", (m["vocab"], H), 0.1)
    for layer in range(L):
        p = f"model.layers.{layer}."
        # Norm weights w of (1 + w): wide, so that a missing "1 +" or a swapped norm shows.
        for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm"):
            add(p + norm + ".weight", H, 0.3)
        add(p + "self_attn.q_proj.weight", (m["heads"] * D, H), H ** -0.5)
        add(p + "self_attn.k_proj.weight", (m["kv_heads"] * D, H), H ** -0.5)
        add(p + "self_attn.v_proj.weight", (m["kv_heads"] * D, H), H ** -0.5)
        if m["arch"] == "gemma3":
            add(p + "self_attn.q_norm.weight", D, 0.5)
            add(p + "self_attn.k_norm.weight", D, 0.5)
        add(p + "self_attn.o_proj.weight", (H, m["heads"] * D), (m["heads"] * D) ** -0.5)
        add(p + "mlp.gate_proj.weight", (m["ffn"], H), H ** -0.5)
        add(p + "mlp.up_proj.weight", (m["ffn"], H), H ** -0.5)
        add(p + "mlp.down_proj.weight", (H, m["ffn"]), m["ffn"] ** -0.5)
    add("model.norm.weight", H, 0.3, mean=1.0)  # (1 + w) about 2: logits of a few units
    return t


def rms(x, w):
    """Gemma's RMSNorm: x / rms(x) * (1 + w)."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * (1.0 + w)


def rope(x, theta, factor):
    """transformers' rotate-half RoPE on [T, heads, D] at positions 0..T-1 (linear: / factor)."""
    D = x.shape[-1]
    t = np.arange(x.shape[0], dtype=np.float64)[:, None]
    inv_freq = theta ** (-np.arange(0, D, 2, dtype=np.float64) / D) / (factor or 1.0)
    angle = np.concatenate([t * inv_freq[None, :]] * 2, axis=-1)
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    rotated = np.concatenate([-x[..., D // 2:], x[..., :D // 2]], axis=-1)
    return x * cos + rotated * sin


def attention(q, k, v, scale, cap, window):
    """Causal GQA attention, soft-capped scores, optional sliding window: [T, heads * D]."""
    T, heads, _ = q.shape
    group = heads // k.shape[1]
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    allowed = j <= i
    if window:
        allowed &= j > i - window
    out = np.empty_like(q)
    for head in range(heads):
        kv = head // group
        s = q[:, head] @ k[:, kv].T * scale
        if cap:
            s = cap * np.tanh(s / cap)
        s = np.where(allowed, s, -np.inf)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        out[:, head] = (s / s.sum(axis=1, keepdims=True)) @ v[:, kv]
    return out.reshape(T, -1)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def forward(t, m, tokens, slides, window=WINDOW, caps=True):
    """float64 logits [T, vocab]. `window` / `caps` off: the checks that they matter."""
    H, D, T = m["hidden"], m["head_dim"], len(tokens)
    x = t["model.embed_tokens.weight"][tokens] * np.sqrt(H)
    for layer in range(m["layers"]):
        p = f"model.layers.{layer}."
        h = rms(x, t[p + "input_layernorm.weight"])
        q = (h @ t[p + "self_attn.q_proj.weight"].T).reshape(T, m["heads"], D)
        k = (h @ t[p + "self_attn.k_proj.weight"].T).reshape(T, m["kv_heads"], D)
        v = (h @ t[p + "self_attn.v_proj.weight"].T).reshape(T, m["kv_heads"], D)
        if m["arch"] == "gemma3":
            q = rms(q, t[p + "self_attn.q_norm.weight"])
            k = rms(k, t[p + "self_attn.k_norm.weight"])
        if slides[layer]:
            theta, factor = m["local_theta"] or m["theta"], None
        else:
            theta, factor = m["theta"], m["linear"]
        q, k = rope(q, theta, factor), rope(k, theta, factor)
        a = attention(q, k, v, m["scalar"] ** -0.5, m["attn_cap"] if caps else None,
                      window if slides[layer] else None)
        x = x + rms(a @ t[p + "self_attn.o_proj.weight"].T, t[p + "post_attention_layernorm.weight"])
        h = rms(x, t[p + "pre_feedforward_layernorm.weight"])
        g, u = h @ t[p + "mlp.gate_proj.weight"].T, h @ t[p + "mlp.up_proj.weight"].T
        mlp = (gelu_tanh(g) * u) @ t[p + "mlp.down_proj.weight"].T
        x = x + rms(mlp, t[p + "post_feedforward_layernorm.weight"])
    logits = rms(x, t["model.norm.weight"]) @ t["model.embed_tokens.weight"].T
    if caps and m["final_cap"]:
        logits = m["final_cap"] * np.tanh(logits / m["final_cap"])
    return logits


def gguf_name(hf_name):
    """The converter's tensor name (gguf-py's TensorNameMap for GEMMA2 / GEMMA3)."""
    fixed = {"model.embed_tokens.weight": "token_embd.weight",
             "model.norm.weight": "output_norm.weight"}
    if hf_name in fixed:
        return fixed[hf_name]
    layer, rest = hf_name[len("model.layers."):].split(".", 1)
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
             "self_attn.o_proj": "attn_output", "post_attention_layernorm": "post_attention_norm",
             "pre_feedforward_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
             "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
             "post_feedforward_layernorm": "post_ffw_norm"}
    return f"blk.{layer}.{names[rest[:-len('.weight')]]}.weight"


def vocab_tokens(n):
    """A Gemma-like SentencePiece vocabulary: <pad> <eos> <bos> <unk>, the turn markers, pieces."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    types = [3, 3, 3, 2, 4, 4]  # control, unknown, user-defined (as Gemma's tokenizer.model)
    pieces = ["\u2581", "\u2581the", "user", "model", "\n"] + [
        "\u2581" + chr(ord("a") + i % 26) * (1 + i // 26) for i in range(n)]
    tokens += pieces[: n - len(tokens)]
    assert len(set(tokens)) == n
    types += [1] * (n - len(types))
    return tokens, [0.0] * 6 + [float(-i) for i in range(n - 6)], types


def write_gguf(path, t, m, name, window=WINDOW, extra=None):
    """The model as llama.cpp's converter writes it (conversion/gemma.py); `extra(writer)` adds
    keys (the malformed files)."""
    arch = m["arch"]
    w = gguf.GGUFWriter(path=None, arch=arch)
    w.add_name(name)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(m["hidden"])
    w.add_block_count(m["layers"])
    w.add_feed_forward_length(m["ffn"])
    w.add_head_count(m["heads"])
    w.add_head_count_kv(m["kv_heads"])
    w.add_layer_norm_rms_eps(EPS)
    w.add_key_length(m["head_dim"])
    w.add_value_length(m["head_dim"])
    w.add_file_type(0)
    if arch == "gemma2":  # Gemma2Model.set_gguf_parameters: no rope keys
        w.add_attn_logit_softcapping(m["attn_cap"])
        w.add_final_logit_softcapping(m["final_cap"])
        w.add_sliding_window(window)
    else:  # TextModel.set_gguf_parameters, then Gemma3Model's
        if m["linear"]:
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(m["linear"])
        w.add_rope_freq_base(m["theta"])
        w.add_rope_freq_base_swa(m["local_theta"])
        w.add_sliding_window(window)
    if extra:
        extra(w)
    tokens, scores, types = vocab_tokens(m["vocab"])
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    for hf_name, values in t.items():
        if hf_name.endswith("norm.weight"):
            values = values + 1.0  # the converter's norm shift
        w.add_tensor(gguf_name(hf_name), stored(values, Q.F32))
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_hf(out_dir, t, m):
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), t)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_config(m), f, indent=1)


def max_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def write_malformed(out_dir):
    """GGUF files whose metadata must be refused naming the key: a window beyond the context, a
    per-layer pattern of the wrong length, a RoPE scaling type Gemma 3 does not have."""
    t = draw(np.random.default_rng(0), GEMMA2)
    write_gguf(os.path.join(out_dir, "gemma2_window_too_large.gguf"), t, GEMMA2, "bad",
               window=CONTEXT + 1)
    write_gguf(os.path.join(out_dir, "gemma2_bad_pattern.gguf"), t, GEMMA2, "bad",
               extra=lambda w: w.add_sliding_window_pattern([True, False, True]))
    t = draw(np.random.default_rng(0), GEMMA3)
    # (the writer refuses a second rope.scaling.type: a yarn file is a gemma3 one written anew)
    yarn = dict(GEMMA3, linear=None)

    def add_yarn(w):
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    write_gguf(os.path.join(out_dir, "gemma3_yarn.gguf"), t, yarn, "bad", extra=add_yarn)


def make(out_dir, name, m, seed, gguf_too):
    slides = sliding_layers(m)
    for attempt in range(100):
        t = draw(np.random.default_rng(seed * 1000 + attempt), m)
        tokens, logits, margin = greedy_decode(
            lambda ids: forward(t, m, ids, slides)[-1], PROMPT, STEPS)
        if margin >= MIN_MARGIN and len(set(tokens)) >= 3:
            break
    else:
        raise RuntimeError(f"{name}: no seed gives 3 distinct greedy tokens with margins of "
                           f"{MIN_MARGIN}")
    # The window and the soft-caps must matter, or the tests could not tell them missing.
    full = PROMPT + tokens
    got = forward(t, m, full, slides)
    assert max_diff(got, forward(t, m, full, slides, window=None)) > 0.1, name
    if m["attn_cap"] or m["final_cap"]:
        assert max_diff(got, forward(t, m, full, slides, caps=False)) > 0.1, name
    write_hf(os.path.join(out_dir, name + "_hf"), t, m)
    if gguf_too:
        write_gguf(os.path.join(out_dir, name + ".gguf"), t, m, name)
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump({"architecture": m["arch"], "prompt": PROMPT, "greedy": tokens,
                   "logits": [row.tolist() for row in logits], "min_margin": float(margin),
                   "sliding_layers": slides}, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    make(args.out, "gemma2", GEMMA2, seed=20, gguf_too=True)
    make(args.out, "gemma2_scalar", dict(GEMMA2, scalar=24), seed=21, gguf_too=False)
    make(args.out, "gemma3", GEMMA3, seed=30, gguf_too=True)
    write_malformed(args.out)


if __name__ == "__main__":
    main()
