#!/usr/bin/env python3
"""Writes the fixture of tests/common/tokenizer/gguf_tokenizer_test.cc (run by CTest at test time).

    make_gguf_tokenizer_fixture.py --out-dir DIR [--smollm2 FILE.gguf]

For each GGUF it reads the tokenizer metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`) with
the `gguf` package -- the C++ test builds its GgufTokenizerData from that, so it does not depend on
Pagoda's GGUF reader -- and records what the Hugging Face reading of the same file
(`AutoTokenizer.from_pretrained(dir, gguf_file=...)`, i.e. transformers + tokenizers) gives:
the ids of many texts with and without special tokens, their decodes, and chat-template renders
(transformers' `apply_chat_template`, i.e. Python's jinja2). transformers ignores
`tokenizer.ggml.pre`; for byte-level files the pre-tokenizer of the model's own tokenizer.json is
put back first (see original_pre_tokenizer), and the fixture counts the texts where that matters.

The GGUFs:
- tiny_llama: a small SentencePiece-style vocabulary (`tokenizer.ggml.model = llama`: scores, byte
  fallback, control / user-defined / unused tokens, an EOT id, a chat template), trained here on an
  embedded corpus and written with gguf.GGUFWriter into DIR;
- smollm2: SmolLM2-135M-Instruct (`gpt2` byte-level BPE, pre-tokenizer `smollm`), when --smollm2
  names an existing file; otherwise the fixture says why it is absent and the test skips.

Writes DIR/gguf_tokenizer_fixture.json. Needs gguf, transformers and tokenizers (no torch).
"""

import argparse
import json
import os
import random
import shutil
import sys

import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
SPACE = "\u2581"  # SentencePiece's space

CORPUS = [
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.",
    "Lily's mom said, \"Let's go home.\" They'll be back tomorrow; we're sure it's fine.",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX! The end.",
    "In 2024 the model served 12345 requests per second at 3.14159 ms p50 latency.",
    "def main(argv):\n    for i in range(10):\n        print(f\"step {i}: {argv[i]!r}\")\n    return 0\n",
    "int main() { std::vector<int> v = {1, 2, 3}; return v.size() > 2 ? 0 : 1; }",
    "Café, naïve, résumé, déjà vu, Straße, façade, jalapeño, São Paulo.",
    "She laughed and said hello, then they walked together to the small house by the river.",
    "The cat sat on the mat. The dog ran after the ball. The bird sang a happy song.",
]

# Texts every model is checked on; the generated ones below add variety.
TEXTS = [
    "", " ", "  ", "   ", "\n", "\n\n", "\t", " \n ", "\r\n",
    "Hello", "Hello world", " Hello world", "Hello  world", "Hello   world   ", "hello\nworld",
    "Once upon a time", "Once upon a time, in a small village,", "import numpy as np\n",
    "It's a test. They'll see; we've done it, I'm sure you'd agree.", "IT'S LOUD! They'LL shout.",
    "don't can't won't isn't", "line one\nline two\n\nline four\n", "\t\tindented\n\t\tcode\n",
    "trailing spaces   \n   leading spaces", "windows\r\nline\r\nendings", "a\u00a0non-breaking space",
    "0", "7", "42", "123", "1234", "12345678901234567890", "3.14159 2.71828 1,000,000 42",
    "x=1+2*3-4/5", "v1.2.3-rc4", "2024-01-31T12:34:56Z", "$100.00 or €85,50 or ¥1000",
    "phone: +1 (555) 123-4567", "1st 2nd 3rd 4th", "0x1F 0b1010 0o777 1e-9 6.02e23",
    "café naïve résumé Straße", "ÀÉÎÕÜ àéîõü", "Ελληνικά και Русский текст", "עברית ועربية",
    "我喜欢学习中文。", "東京は大きな都市です。", "안녕하세요", "ไทย ภาษา", "हिन्दी भाषा",
    "😀", "😀😀😀", "👨‍👩‍👧‍👦 family", "👍🏽👍🏿", "🇫🇷🇩🇪", "❤️ love", "∑ x² ≤ ∞, α β γ",
    "mixed 中文 and English and 😀 emoji", "a\u2003em\u2009thin\u200bzero width",
    "def f(x):\n    return x ** 2\n", "    four leading spaces", "ends with newline\n",
    "ends with spaces   ", "if (a && b || !c) { return a->b[c]; }", "<div class=\"x\">&amp;</div>",
    "SELECT * FROM t WHERE id = 42;", "#include <vector>\nint main() {}\n",
    "special chars: ~!@#$%^&*()_+`-={}|[]\\:\";'<>?,./", "... --- ___ *** ===",
    "Ġ Ċ ▁ are just characters here", "\u2581leading lower one eighth block", "▁▁double",
    "<0x41> looks like a byte token", "<s", "s>", "<|im_start", "im_end|>",
]

WORDS = (" ".join(CORPUS) + " 中文 日本語 😀 é 👍🏽 0 7 42 1999 3.5").split()
SEPARATORS = [" ", " ", " ", "  ", "   ", "\n", "\t", ", ", ". ", "\n\n", " - ", "\r\n", ""]


def make_texts(seed, count, specials):
    """TEXTS, the corpus, and `count` random mixes of words, separators, numbers and specials."""
    rng = random.Random(seed)
    texts = list(TEXTS) + CORPUS
    for special in specials:
        texts += [special, special + "Hello", "Hello" + special, "before " + special + " after",
                  special + special, special + "\n" + special + " x", " " + special + " "]
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 14)):
            parts.append(rng.choice(WORDS))
            parts.append(rng.choice(SEPARATORS))
        if rng.random() < 0.4:
            parts.insert(rng.randrange(len(parts) + 1), str(rng.randint(0, 10 ** rng.randint(1, 12))))
        if rng.random() < 0.3:
            parts.insert(rng.randrange(len(parts) + 1), " " * rng.randint(2, 9))
        if specials and rng.random() < 0.3:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(specials))
        texts.append("".join(parts))
    return texts


def train_spm_pieces(num_merges):
    """A SentencePiece-like BPE: pieces of the corpus (spaces as ▁, one prepended), best first."""
    words = {}
    for line in CORPUS:
        for word in (SPACE + line.replace(" ", SPACE)).replace("\n", " ").split(" "):
            for i, chunk in enumerate(word.split(SPACE)):
                if chunk or i:
                    key = tuple((SPACE if i else "") + chunk)
                    if key:
                        words[key] = words.get(key, 0) + 1
    chars = sorted({c for w in words for c in w if c not in "\n\t"})
    pieces = []
    for _ in range(num_merges):
        pairs = {}
        for w, n in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + n
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merged = a + b
        pieces.append(merged)
        new_words = {}
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + n
        words = new_words
    return chars, pieces


def write_tiny_llama(path):
    """Writes the tiny SentencePiece-style GGUF; returns the texts that name its own tokens."""
    chars, pieces = train_spm_pieces(300)
    T = gguf.TokenType
    tokens = [("<unk>", 0.0, T.UNKNOWN), ("<s>", 0.0, T.CONTROL), ("</s>", 0.0, T.CONTROL)]
    tokens += [("<0x%02X>" % b, 0.0, T.BYTE) for b in range(256)]
    tokens += [("<|user|>", 0.0, T.CONTROL), ("<|end|>", 0.0, T.CONTROL),
               ("<tag>", 0.0, T.USER_DEFINED), ("<unused0>", 0.0, T.UNUSED)]
    seen = {t[0] for t in tokens}
    for rank, piece in enumerate(pieces):  # merged pieces: best first, distinct scores
        if piece not in seen:
            tokens.append((piece, -float(rank), T.NORMAL))
            seen.add(piece)
    for i, c in enumerate(chars):  # single characters score below every merge
        if c not in seen:
            tokens.append((c, -1000.0 - i, T.NORMAL))
            seen.add(c)
    ids = {t[0]: i for i, t in enumerate(tokens)}
    template_path = os.path.join(HERE, "chat_templates", "llama2_chat.jinja")
    with open(template_path, encoding="utf-8") as f:
        chat_template = f.read()

    write_sentencepiece_gguf(path, "tiny llama tokenizer", tokens, chat_template, {
        "bos_token_id": ids["<s>"], "eos_token_id": ids["</s>"], "unk_token_id": ids["<unk>"],
        "eot_token_id": ids["<|end|>"], "add_bos_token": True, "add_eos_token": False})
    return ["<s>", "</s>", "<|user|>", "<|end|>"]


def write_sentencepiece_gguf(path, name, tokens, chat_template, keys):
    """A `llama` GGUF holding only a SentencePiece vocabulary (token, score, type) and the
    tokenizer keys `keys` (tokenizer.ggml.* without the prefix: GGUFWriter's add_<key>)."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(name)
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([t[0] for t in tokens])
    writer.add_token_scores([t[1] for t in tokens])
    writer.add_token_types([int(t[2]) for t in tokens])
    for key, value in keys.items():
        getattr(writer, "add_" + key)(value)
    writer.add_chat_template(chat_template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_tiny_gemma(path):
    """A Gemma-style SentencePiece GGUF as llama.cpp's converter writes Gemma 2/3 (conversion/
    gemma.py): ids <pad> 0, <eos> 1, <bos> 2, <unk> 3, the turn markers, byte pieces, then the
    pieces; tokenizer.ggml.add_space_prefix false, BOS added, Gemma 3's chat template. Stored
    under the `llama` architecture so that transformers reads it with the same SentencePiece-BPE
    converter as llama.cpp's `llama` tokenizer (its gemma converter builds a Unigram model, which
    llama.cpp does not); the tokenizer keys are the same whatever the architecture."""
    chars, pieces = train_spm_pieces(300)
    T = gguf.TokenType
    tokens = [("<pad>", 0.0, T.CONTROL), ("<eos>", 0.0, T.CONTROL), ("<bos>", 0.0, T.CONTROL),
              ("<unk>", 0.0, T.UNKNOWN), ("<start_of_turn>", 0.0, T.CONTROL),
              ("<end_of_turn>", 0.0, T.CONTROL)]
    tokens += [("<0x%02X>" % b, 0.0, T.BYTE) for b in range(256)]
    seen = {t[0] for t in tokens}
    for rank, piece in enumerate(pieces):
        if piece not in seen:
            tokens.append((piece, -float(rank), T.NORMAL))
            seen.add(piece)
    for i, c in enumerate(chars):
        if c not in seen:
            tokens.append((c, -1000.0 - i, T.NORMAL))
            seen.add(c)
    with open(os.path.join(HERE, "chat_templates", "gemma3_it.jinja"), encoding="utf-8") as f:
        chat_template = f.read()
    write_sentencepiece_gguf(path, "tiny gemma tokenizer", tokens, chat_template, {
        "bos_token_id": 2, "eos_token_id": 1, "unk_token_id": 3, "pad_token_id": 0,
        "add_bos_token": True, "add_eos_token": False, "add_space_prefix": False})
    return ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"]


def field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def read_gguf_inputs(path):
    """The GGUF metadata the C++ GgufTokenizerData holds, as JSON."""
    reader = gguf.GGUFReader(path)
    data = {
        "model": field(reader, "tokenizer.ggml.model"),
        "pre": field(reader, "tokenizer.ggml.pre", ""),
        "tokens": field(reader, "tokenizer.ggml.tokens"),
        "scores": field(reader, "tokenizer.ggml.scores", []),
        "token_types": field(reader, "tokenizer.ggml.token_type", []),
        "merges": field(reader, "tokenizer.ggml.merges", []),
        "chat_template": field(reader, "tokenizer.chat_template", ""),
    }
    for name, key in [("bos", "bos_token_id"), ("eos", "eos_token_id"), ("eot", "eot_token_id"),
                      ("eom", "eom_token_id"), ("unk", "unknown_token_id"),
                      ("pad", "padding_token_id"), ("add_bos", "add_bos_token"),
                      ("add_eos", "add_eos_token"), ("add_space_prefix", "add_space_prefix")]:
        value = field(reader, "tokenizer.ggml." + key)
        if value is not None:
            data[name] = value
    return data


def load_hf(path):
    # transformers refuses GGUF files without torch even when it reads only the metadata
    # (load_gguf_checkpoint(..., return_tensors=False), which is all a tokenizer needs): say it
    # is there; no tensor is read, so torch is never imported.
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    gguf_utils.is_torch_available = lambda: True
    from transformers import AutoTokenizer
    from transformers.utils import logging
    logging.set_verbosity_error()
    return AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))


def original_pre_tokenizer(pre):
    """The pre-tokenizer of the model's own tokenizer.json that `tokenizer.ggml.pre` stands for.

    transformers' GGUF reading ignores tokenizer.ggml.pre: it gives every byte-level file GPT-2's
    ByteLevel regex. For SmolLM2 that differs from the model's tokenizer.json (and llama.cpp),
    which split digits first: "it  2024" is it|ĠĠ|2|0|2|4 there, it|Ġ|Ġ|2|0|2|4 in transformers.
    So the recorded ids come from transformers' reading with this one part put back as the
    original tokenizer.json has it (written independently of Pagoda's regex table).
    """
    from tokenizers import Regex, pre_tokenizers
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                          use_regex=False)
    table = {
        "gpt-2": pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        "smollm": pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)]),
        "llama-bpe": pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
            r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"), "isolated"),
            byte_level]),
    }
    if pre not in table:
        raise SystemExit("make_gguf_tokenizer_fixture: no original pre-tokenizer for '%s'" % pre)
    return table[pre]


def conversations():
    return [
        ([{"role": "user", "content": "Hi"}], True),
        ([{"role": "system", "content": "You are a terse assistant."},
          {"role": "user", "content": "What is 2+2?"},
          {"role": "assistant", "content": " It is 4. "},
          {"role": "user", "content": "And 3+3?"}], True),
        ([{"role": "user", "content": "Write a haiku\nabout tokens."},
          {"role": "assistant", "content": "Bytes become pieces"}], False),
        ([{"role": "user", "content": "多语言 😀 <b>bold</b>"}], False),
    ]


def record_model(path, specials, count, seed, user_text_excluded=()):
    inputs = read_gguf_inputs(path)
    hf = load_hf(path)
    backend = hf.backend_tokenizer
    unpatched = None
    if inputs["model"] == "gpt2":
        from tokenizers import Tokenizer
        unpatched = Tokenizer.from_str(backend.to_str())
        backend.pre_tokenizer = original_pre_tokenizer(inputs["pre"])
    cases = []
    differs_unpatched = 0
    for text in make_texts(seed, count, specials):
        if any(x in text for x in user_text_excluded):
            continue
        ids = backend.encode(text, add_special_tokens=False).ids
        if unpatched is not None and unpatched.encode(text, add_special_tokens=False).ids != ids:
            differs_unpatched += 1
        with_special = backend.encode(text, add_special_tokens=True).ids
        cases.append({
            "text": text,
            "ids": ids,
            "ids_with_special": with_special,
            "decoded": backend.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": backend.decode(with_special, skip_special_tokens=True),
        })
    # What HF puts around a text, against the file's own add_bos/add_eos (transformers' GGUF
    # reading always adds BOS for llama-architecture files, whatever tokenizer.ggml.add_bos_token
    # says): the C++ test compares ids_with_special only where the two agree.
    empty = backend.encode("", add_special_tokens=True).ids
    expected_empty = ([inputs["bos"]] if inputs.get("add_bos", inputs["model"] == "llama") else [])
    expected_empty += [inputs["eos"]] if inputs.get("add_eos", False) else []
    chats = []
    for messages, add_generation_prompt in conversations():
        chats.append({
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": hf.bos_token,
            "eos_token": inputs["tokens"][inputs["eos"]],
            "rendered": hf.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                bos_token=hf.bos_token, eos_token=inputs["tokens"][inputs["eos"]]),
        })
    return {
        "file": path,
        "inputs": inputs,
        "hf_special_tokens_match_file": empty == expected_empty,
        "unpatched_transformers_differs_on": differs_unpatched,
        "cases": cases,
        "chats": chats,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--smollm2", default="")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)

    fixture = {}
    tiny_dir = os.path.join(args.out_dir, "tiny_llama")
    shutil.rmtree(tiny_dir, ignore_errors=True)
    os.makedirs(tiny_dir)
    tiny_path = os.path.join(tiny_dir, "tiny_llama.gguf")
    specials = write_tiny_llama(tiny_path)
    # <tag> (user-defined) and <unk> are tokens of their own in llama.cpp's reading and Pagoda's,
    # plain text in transformers' (it only makes control tokens special): checked in C++ alone.
    fixture["tiny_llama"] = record_model(tiny_path, specials, 150, 1, ("<tag>", "<unk>"))

    gemma_dir = os.path.join(args.out_dir, "tiny_gemma")
    shutil.rmtree(gemma_dir, ignore_errors=True)
    os.makedirs(gemma_dir)
    gemma_path = os.path.join(gemma_dir, "tiny_gemma.gguf")
    fixture["tiny_gemma"] = record_model(gemma_path, write_tiny_gemma(gemma_path), 150, 3,
                                         ("<unk>",))

    if args.smollm2 and os.path.exists(args.smollm2):
        smol_dir = os.path.join(args.out_dir, "smollm2")
        os.makedirs(smol_dir, exist_ok=True)
        link = os.path.join(smol_dir, os.path.basename(args.smollm2))
        if not os.path.exists(link):
            os.symlink(os.path.abspath(args.smollm2), link)
        smol_specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<file_sep>"]
        fixture["smollm2"] = record_model(link, smol_specials, 300, 2)
    else:
        fixture["smollm2_absent"] = "no SmolLM2 GGUF at '%s' (scripts/install-deps.sh fetches it)" % (
            args.smollm2)

    out = os.path.join(args.out_dir, "gguf_tokenizer_fixture.json")
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False)
    os.replace(out + ".tmp", out)
    counts = {k: "%d texts (%d differ in transformers' unpatched reading)" % (
        len(v["cases"]), v["unpatched_transformers_differs_on"])
        for k, v in fixture.items() if isinstance(v, dict)}
    print("wrote %s: %s" % (out, counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
