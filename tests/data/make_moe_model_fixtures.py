#!/usr/bin/env python3
"""Writes tiny random mixture-of-experts models (Qwen3-MoE and Mixtral) and a float64 NumPy
reference of Hugging Face's forward, for tests/worker/models/moe_model_test.cc.

For each model NAME it writes, into --out DIR:
  NAME_hf/       a Hugging Face directory (config.json, F32 model.safetensors) with per-expert
                 tensors (Qwen3-MoE: model.layers.N.mlp.gate / mlp.experts.E.{gate,up,down}_proj;
                 Mixtral: block_sparse_moe.gate / block_sparse_moe.experts.E.w1/w3/w2);
  NAME.gguf      (where GGUF can express the model) the file llama.cpp's converter writes: `qwen3moe`
                 (q/k rows not permuted, {arch}.expert_count / expert_used_count /
                 expert_feed_forward_length) or `llama` with experts for Mixtral (attn_q/attn_k
                 rows permuted for GGML's pairwise RoPE); experts stacked into one 3-D tensor per
                 projection, blk.N.ffn_{gate,up,down}_exps [experts, rows, cols], the router
                 blk.N.ffn_gate_inp in F32 as the converter keeps it;
  NAME.json      {"architecture", "prompts", "greedy", "logits", "min_margin", "min_route_gap",
                  "expert_rows"}
where the reference is transformers' Qwen3MoeForCausalLM / MixtralForCausalLM in float64, written
per token (an independent formulation of the grouped kernel): the Qwen3 / Mistral attention, then
in each sparse layer p = softmax(h Wr^T), the top k experts of each token, weights p (divided by
their sum when norm_topk_prob; always for Mixtral), out = sum of weight * down(silu(gate(h)) *
up(h)) over the chosen experts.

Odd sizes: hidden 64, head_dim 16 (heads * head_dim != hidden); Qwen3-MoE 6 query heads over 2 KV
heads (GQA 3), Mixtral 8 over 2 (GQA 4); 6 experts, top 2; expert widths 32 (Qwen3-MoE) and 64
(Mixtral, whose Q8_0 experts then split on block boundaries at tensor parallel size 2). The router
weights are wide, so routing is uneven: in one step some experts get several tokens and most get
none (expert_rows: the prompt tokens each expert gets in each sparse layer). Models:
  qwen3moe_f32    2 sparse layers, norm_topk_prob true (Qwen3-30B-A3B's), tied; HF and GGUF;
  qwen3moe_mixed  3 layers, mlp_only_layers [1] (a dense MLP between sparse ones),
                  norm_topk_prob false, untied; HF only (GGUF has no dense layers for qwen3moe);
  mixtral_f16     2 layers, F16-exact weights, untied; HF and GGUF (F16 projections);
  mixtral_q8_0    the same shapes with every projection, experts included, in Q8_0 in the GGUF
                  (the reference and the HF twin hold the dequantized values).
qwen3moe_no_router(_hf, .gguf) is qwen3moe_f32 without layer 1's router: loading must fail naming
the tensor; qwen3moe_zero_experts.gguf says qwen3moe.expert_count 0, which must be refused. Each model's seed is re-drawn until every greedy step's top-two logits differ by at
least 0.05 and every token's k-th and (k+1)-th router logits by at least 0.02, so tokens and
routes are well defined in fp32.

Usage: make_moe_model_fixtures.py --out DIR   (run by CTest as a moe_model_fixtures setup)
"""

import argparse
import json
import os

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize, quantize
from make_gguf_model_fixtures import (add_test_tokenizer, attention, greedy_decode, permute,
                                      stored, write_out, write_safetensors)
from make_qwen3_model_fixtures import EPS, HEAD_DIM, THETA, rms_norm, rope

HIDDEN, VOCAB, EXPERTS, TOP_K, DENSE_FFN = 64, 96, 6, 2, 96
CONTEXT = 128
PROMPTS, STEPS = [[1, 17, 42, 5, 77, 3, 60], [2, 9, 88, 31]], 5
MIN_MARGIN, MIN_ROUTE_GAP = 0.05, 0.02
Q8_MIN_MARGIN, Q8_MIN_ROUTE_GAP = 0.3, 0.3


class Spec:
    def __init__(self, arch, heads, kv_heads, moe_ffn, layers, norm_topk, mlp_only, tied):
        self.arch, self.heads, self.kv_heads = arch, heads, kv_heads
        self.moe_ffn, self.layers, self.norm_topk = moe_ffn, layers, norm_topk
        self.mlp_only, self.tied = mlp_only, tied

    @property
    def qwen(self):
        return self.arch == "qwen3moe"

    def sparse(self, layer):
        return layer not in self.mlp_only

    def block(self):
        return "mlp" if self.qwen else "block_sparse_moe"

    def expert_names(self):
        """Hugging Face names of (gate, up, down)."""
        return ("gate_proj", "up_proj", "down_proj") if self.qwen else ("w1", "w3", "w2")


def draw(rng, spec, qtype):
    """Random Hugging Face tensors (float64, the values the file's type stores exactly)."""
    t = {}

    def add(name, shape, std, q=qtype):
        values = rng.standard_normal(shape) * std
        if q == Q.F16:
            values = values.astype(np.float16)
        elif q == Q.Q8_0:
            values = dequantize(quantize(values.astype(np.float32), Q.Q8_0), Q.Q8_0)
        t[name] = np.asarray(values, dtype=np.float64).reshape(shape)

    def add_norm(name, size, std):
        t[name] = (1.0 + rng.standard_normal(size) * std).astype(np.float32).astype(np.float64)

    q, kv = spec.heads * HEAD_DIM, spec.kv_heads * HEAD_DIM
    add("model.embed_tokens.weight", (VOCAB, HIDDEN), 0.1)
    gate, up, down = spec.expert_names()
    for layer in range(spec.layers):
        p = f"model.layers.{layer}."
        add_norm(p + "input_layernorm.weight", HIDDEN, 0.1)
        add(p + "self_attn.q_proj.weight", (q, HIDDEN), HIDDEN ** -0.5)
        add(p + "self_attn.k_proj.weight", (kv, HIDDEN), HIDDEN ** -0.5)
        add(p + "self_attn.v_proj.weight", (kv, HIDDEN), HIDDEN ** -0.5)
        if spec.qwen:
            add_norm(p + "self_attn.q_norm.weight", HEAD_DIM, 0.5)
            add_norm(p + "self_attn.k_norm.weight", HEAD_DIM, 0.5)
        add(p + "self_attn.o_proj.weight", (HIDDEN, q), q ** -0.5)
        add_norm(p + "post_attention_layernorm.weight", HIDDEN, 0.1)
        if not spec.sparse(layer):
            add(p + "mlp.gate_proj.weight", (DENSE_FFN, HIDDEN), HIDDEN ** -0.5)
            add(p + "mlp.up_proj.weight", (DENSE_FFN, HIDDEN), HIDDEN ** -0.5)
            add(p + "mlp.down_proj.weight", (HIDDEN, DENSE_FFN), DENSE_FFN ** -0.5)
            continue
        b = p + spec.block() + "."
        # A wide router (the converter keeps it F32): decisive, uneven routes.
        add(b + "gate.weight", (EXPERTS, HIDDEN), 6.0 * HIDDEN ** -0.5,
            Q.F32 if qtype == Q.Q8_0 else qtype)
        for e in range(EXPERTS):
            add(b + f"experts.{e}.{gate}.weight", (spec.moe_ffn, HIDDEN), HIDDEN ** -0.5)
            add(b + f"experts.{e}.{up}.weight", (spec.moe_ffn, HIDDEN), HIDDEN ** -0.5)
            add(b + f"experts.{e}.{down}.weight", (HIDDEN, spec.moe_ffn), spec.moe_ffn ** -0.5)
    add_norm("model.norm.weight", HIDDEN, 0.1)
    if not spec.tied:
        add("lm_head.weight", (VOCAB, HIDDEN), 0.5)
    return t


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def moe(t, spec, b, h, stats):
    """The sparse block of transformers' Qwen3MoeSparseMoeBlock / MixtralSparseMoeBlock, token by
    token; records the gap between each token's k-th and (k+1)-th router logit and its experts."""
    gate, up, down = spec.expert_names()
    logits = h @ t[b + "gate.weight"].T
    probs = softmax(logits)
    out = np.zeros_like(h)
    for i in range(h.shape[0]):
        order = np.argsort(-probs[i], kind="stable")
        chosen = order[:TOP_K]
        ranked = np.sort(logits[i])[::-1]
        stats["gap"] = min(stats["gap"], ranked[TOP_K - 1] - ranked[TOP_K])
        stats["experts"].append(chosen.tolist())
        weights = probs[i, chosen]
        if spec.norm_topk:
            weights = weights / weights.sum()
        for e, w in zip(chosen, weights):
            x = f"experts.{e}."
            g = t[b + x + gate + ".weight"] @ h[i]
            u = t[b + x + up + ".weight"] @ h[i]
            out[i] += w * (t[b + x + down + ".weight"] @ (g / (1 + np.exp(-g)) * u))
    return out


def forward(t, spec, tokens, stats):
    """float64 logits [T, VOCAB] of transformers' Qwen3MoeForCausalLM / MixtralForCausalLM."""
    x = t["model.embed_tokens.weight"][tokens]
    T = len(tokens)
    per_layer = []
    for layer in range(spec.layers):
        p = f"model.layers.{layer}."
        h = rms_norm(x, t[p + "input_layernorm.weight"])
        q = (h @ t[p + "self_attn.q_proj.weight"].T).reshape(T, spec.heads, HEAD_DIM)
        k = (h @ t[p + "self_attn.k_proj.weight"].T).reshape(T, spec.kv_heads, HEAD_DIM)
        v = (h @ t[p + "self_attn.v_proj.weight"].T).reshape(T, spec.kv_heads, HEAD_DIM)
        if spec.qwen:
            q = rms_norm(q, t[p + "self_attn.q_norm.weight"])
            k = rms_norm(k, t[p + "self_attn.k_norm.weight"])
        x = x + attention(rope(q), rope(k), v) @ t[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, t[p + "post_attention_layernorm.weight"])
        if spec.sparse(layer):
            layer_stats = {"gap": stats["gap"], "experts": []}
            x = x + moe(t, spec, p + spec.block() + ".", h, layer_stats)
            stats["gap"] = layer_stats["gap"]
            per_layer.append(layer_stats["experts"])
        else:
            g, u = h @ t[p + "mlp.gate_proj.weight"].T, h @ t[p + "mlp.up_proj.weight"].T
            x = x + (g / (1 + np.exp(-g)) * u) @ t[p + "mlp.down_proj.weight"].T
    stats["layers"] = per_layer
    head = t.get("lm_head.weight", t["model.embed_tokens.weight"])
    return rms_norm(x, t["model.norm.weight"]) @ head.T


def reference(t, spec):
    """Greedy tokens, logits and margins of every prompt; the prompt tokens of each expert."""
    stats = {"gap": np.inf}
    results = [greedy_decode(lambda tokens: forward(t, spec, tokens, stats)[-1], prompt, STEPS)
               for prompt in PROMPTS]
    rows = []
    for prompt in PROMPTS:
        forward(t, spec, prompt, stats)
        rows.append([[sum(e in chosen for chosen in layer) for e in range(EXPERTS)]
                     for layer in stats["layers"]])
    return results, stats["gap"], rows


GGUF_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
              "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
              "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
              "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def gguf_tensors(t, spec):
    """The converter's tensors: GGUF names, llama's q/k rows permuted, experts stacked."""
    out = {"token_embd.weight": t["model.embed_tokens.weight"],
           "output_norm.weight": t["model.norm.weight"]}
    if "lm_head.weight" in t:
        out["output.weight"] = t["lm_head.weight"]
    gate, up, down = spec.expert_names()
    for layer in range(spec.layers):
        p, g = f"model.layers.{layer}.", f"blk.{layer}."
        for hf, name in GGUF_NAMES.items():
            if p + hf + ".weight" in t:
                out[g + name + ".weight"] = t[p + hf + ".weight"]
        if not spec.qwen:
            out[g + "attn_q.weight"] = permute(out[g + "attn_q.weight"], spec.heads)
            out[g + "attn_k.weight"] = permute(out[g + "attn_k.weight"], spec.kv_heads)
        b = p + spec.block() + "."
        if b + "gate.weight" not in t:
            continue
        out[g + "ffn_gate_inp.weight"] = t[b + "gate.weight"]
        for hf, name in ((gate, "ffn_gate_exps"), (up, "ffn_up_exps"), (down, "ffn_down_exps")):
            out[g + name + ".weight"] = np.stack(
                [t[b + f"experts.{e}.{hf}.weight"] for e in range(EXPERTS)])
    return out


def write_gguf(path, t, spec, qtype, name, expert_count=EXPERTS):
    w = gguf.GGUFWriter(path=None, arch=spec.arch)
    w.add_name(name)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(spec.layers)
    # qwen3moe: config.json's intermediate_size (its dense width); Mixtral: the experts' width.
    w.add_feed_forward_length(DENSE_FFN if spec.qwen else spec.moe_ffn)
    w.add_head_count(spec.heads)
    w.add_head_count_kv(spec.kv_heads)
    w.add_key_length(HEAD_DIM)  # the converter writes config.json's head_dim as both
    w.add_value_length(HEAD_DIM)
    if spec.qwen:
        w.add_expert_feed_forward_length(spec.moe_ffn)
    else:
        w.add_rope_dimension_count(HEAD_DIM)  # LlamaModel's rope_dim: head_dim
    w.add_expert_count(expert_count)
    w.add_expert_used_count(TOP_K)
    w.add_layer_norm_rms_eps(EPS)
    w.add_rope_freq_base(THETA)
    w.add_file_type({Q.F32: 0, Q.F16: 1, Q.Q8_0: 7}[qtype])
    add_test_tokenizer(w, VOCAB)
    for tname, values in gguf_tensors(t, spec).items():
        q = qtype if values.ndim >= 2 and "ffn_gate_inp" not in tname else Q.F32
        data = stored(values, q)
        if q == Q.Q8_0:  # the reference's values are exactly the file's
            assert np.array_equal(dequantize(data, q).reshape(values.shape), values), tname
        w.add_tensor(tname, data, raw_dtype=None if q in (Q.F32, Q.F16) else q)
    write_out(w, path)


def write_hf(out_dir, t, spec):
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), t)
    config = {"vocab_size": VOCAB, "hidden_size": HIDDEN, "num_hidden_layers": spec.layers,
              "num_attention_heads": spec.heads, "num_key_value_heads": spec.kv_heads,
              "head_dim": HEAD_DIM, "hidden_act": "silu", "rms_norm_eps": EPS,
              "rope_theta": THETA, "rope_scaling": None, "max_position_embeddings": CONTEXT,
              "tie_word_embeddings": spec.tied, "bos_token_id": 1, "eos_token_id": 2,
              "torch_dtype": "float32", "num_experts_per_tok": TOP_K}
    if spec.qwen:
        config.update({"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
                       "intermediate_size": DENSE_FFN, "moe_intermediate_size": spec.moe_ffn,
                       "num_experts": EXPERTS, "norm_topk_prob": spec.norm_topk,
                       "decoder_sparse_step": 1, "mlp_only_layers": spec.mlp_only,
                       "attention_bias": False, "use_sliding_window": False,
                       "sliding_window": None, "router_aux_loss_coef": 0.001})
    else:
        config.update({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
                       "intermediate_size": spec.moe_ffn, "num_local_experts": EXPERTS,
                       "sliding_window": None, "router_jitter_noise": 0.0})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)


def make(out_dir, name, spec, qtype, seed, gguf_too, min_margin=MIN_MARGIN,
         min_route_gap=MIN_ROUTE_GAP):
    for attempt in range(400):
        t = draw(np.random.default_rng(seed * 1000 + attempt), spec, qtype)
        results, gap, rows = reference(t, spec)
        margin = min(r[2] for r in results)
        distinct = min(len(set(r[0])) for r in results)
        if margin >= min_margin and gap >= min_route_gap and distinct >= 2:
            break
    else:
        raise RuntimeError(f"{name}: no seed gives greedy margins of {min_margin} and router "
                           f"gaps of {min_route_gap}")
    write_hf(os.path.join(out_dir, name + "_hf"), t, spec)
    if gguf_too:
        write_gguf(os.path.join(out_dir, name + ".gguf"), t, spec, qtype, name)
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump({"architecture": spec.arch, "prompts": PROMPTS,
                   "greedy": [r[0] for r in results],
                   "logits": [[row.tolist() for row in r[1]] for r in results],
                   "min_margin": float(margin), "min_route_gap": float(gap),
                   "expert_rows": rows}, f)
    return t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    qwen = Spec("qwen3moe", 6, 2, 32, 2, norm_topk=True, mlp_only=[], tied=True)
    t = make(args.out, "qwen3moe_f32", qwen, Q.F32, seed=11, gguf_too=True)
    make(args.out, "qwen3moe_mixed",
         Spec("qwen3moe", 6, 2, 32, 3, norm_topk=False, mlp_only=[1], tied=False), Q.F32,
         seed=12, gguf_too=False)
    mixtral = Spec("llama", 8, 2, 64, 2, norm_topk=True, mlp_only=[], tied=False)
    make(args.out, "mixtral_f16", mixtral, Q.F16, seed=13, gguf_too=True)
    # Wider margins: Pagoda's integer path rounds the activations of Q8_0 GEMMs to 8 bits.
    make(args.out, "mixtral_q8_0", mixtral, Q.Q8_0, seed=14, gguf_too=True,
         min_margin=Q8_MIN_MARGIN, min_route_gap=Q8_MIN_ROUTE_GAP)
    missing = {k: v for k, v in t.items() if k != "model.layers.1.mlp.gate.weight"}
    write_hf(os.path.join(args.out, "qwen3moe_no_router_hf"), missing, qwen)
    write_gguf(os.path.join(args.out, "qwen3moe_no_router.gguf"), missing, qwen, Q.F32,
               "qwen3moe_no_router")
    write_gguf(os.path.join(args.out, "qwen3moe_zero_experts.gguf"), t, qwen, Q.F32,
               "qwen3moe_zero_experts", expert_count=0)


if __name__ == "__main__":
    main()
