#!/usr/bin/env python3
"""Regenerates the tokenizer fixtures under tests/data/ with the Hugging Face `tokenizers` package.

    pip install tokenizers && python3 tests/data/make_tokenizer_fixture.py

Trains three small BPE tokenizers on an embedded corpus and writes, for each, tokenizer.json,
tokenizer_config.json and expected.jsonl (the ids `tokenizers` gives for many texts, with and
without special tokens, and their decodes). tests/common/tokenizer_test.cc checks that Pagoda's
tokenizer reproduces them exactly. Only needed to regenerate the fixtures, never in CI.
"""

import json
import os
import random

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CORPUS = [
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.",
    "Lily's mom said, \"Let's go home.\" They'll be back tomorrow; we're sure it's fine.",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX! The end.",
    "In 2024 the model served 12345 requests per second at 3.14159 ms p50 latency.",
    "def main(argv):\n    for i in range(10):\n        print(f\"step {i}: {argv[i]!r}\")\n    return 0\n",
    "int main() { std::vector<int> v = {1, 2, 3}; return v.size() > 2 ? 0 : 1; }",
    "Café, naïve, résumé, déjà vu, Straße, Ærøskøbing, façade, jalapeño, São Paulo.",
    "Le petit garçon est allé à l'école. Où est la bibliothèque ? Ça va très bien, merci.",
    "Der Bär läuft über die Brücke. Schöne Grüße aus München!",
    "¿Dónde está el baño? ¡Qué día tan bonito! El niño comió una manzana.",
    "我喜欢学习中文。今天天气很好，我们去公园散步吧。",
    "日本語のテキストも少し入れます。東京は大きな都市です。",
    "한국어 문장도 있습니다. 안녕하세요!",
    "Emoji: 😀 🎉 👍🏽 👨‍👩‍👧‍👦 ❤️ 🇫🇷 — and some math: ∑ x² ≤ ∞, α β γ.",
    "Tabs\tand\ttabs,   multiple   spaces,\n\nnew lines\r\nand windows lines.",
    "It's, it'S, IT'S, they'll, THEY'LL, we've, I'm, you'd, she's, don't.",
    "Numbers: 0 1 22 333 4444 55555 666666 7777777 and 3.5e-10, 1,000,000.",
    "http://example.com/path?query=value&other=1 user@example.org #hashtag @mention",
    "She laughed and said hello, then they walked together to the small house by the river.",
    "The cat sat on the mat. The dog ran after the ball. The bird sang a happy song.",
]

TEXTS = [
    "",
    " ",
    "  ",
    "\n",
    "Hello",
    "Hello world",
    " Hello world",
    "Hello  world",
    "Hello   world   ",
    "Once upon a time",
    "Lily and Tom went to the park",
    "It's a test. They'll see; we've done it, I'm sure you'd agree.",
    "IT'S LOUD! They'LL shout.",
    "don't can't won't isn't",
    "line one\nline two\n\nline four\n",
    "\t\tindented\n\t\tcode\n",
    "trailing spaces   \n   leading spaces",
    "windows\r\nline\r\nendings",
    "12345678901234567890",
    "3.14159 2.71828 1,000,000 42",
    "x=1+2*3-4/5",
    "café naïve résumé Straße",
    "ÀÉÎÕÜ àéîõü",
    "我喜欢学习中文。",
    "東京は大きな都市です。",
    "안녕하세요",
    "😀",
    "👨‍👩‍👧‍👦 family",
    "👍🏽👍🏿",
    "🇫🇷🇩🇪",
    "❤️ love",
    "mixed 中文 and English and 😀 emoji",
    "a\u00a0non-breaking\u2003em space",
    "zero\u200bwidth",
    "<|begin_of_text|>",
    "<|begin_of_text|>Hello",
    "Hello<|eot_id|>",
    "before <|eot_id|> after",
    "<|begin_of_text|><|eot_id|>",
    "<|begin_of_text",
    "<|endoftext|> in the middle <|endoftext|>",
    "[TAG]",
    "word [TAG] word",
    "word[TAG]word",
    "   [TAG]   ",
    "special chars: ~!@#$%^&*()_+`-={}|[]\\:\";'<>?,./",
    "def f(x):\n    return x ** 2\n",
    "    four leading spaces",
    "ends with newline\n",
    "ends with spaces   ",
    "Ġ Ċ ▁ are just characters here",
    "\u2581leading lower one eighth block",
]


def make_texts(seed):
    rng = random.Random(seed)
    words = " ".join(CORPUS).split()
    separators = [" ", " ", " ", "  ", "\n", "\t", ", ", ". ", "\n\n", " - "]
    texts = list(TEXTS) + CORPUS[:8]
    for _ in range(45):
        n = rng.randint(1, 12)
        parts = []
        for _ in range(n):
            parts.append(rng.choice(words))
            parts.append(rng.choice(separators))
        if rng.random() < 0.3:
            parts.insert(rng.randrange(len(parts) + 1), str(rng.randint(0, 10**8)))
        if rng.random() < 0.2:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(["😀", "中文", "é", "👍🏽", "\u00a0"]))
        texts.append("".join(parts).rstrip(" ") if rng.random() < 0.5 else "".join(parts))
    return texts


def reload(tok):
    """Round-trips through JSON so that the saved file is exactly what the expectations use."""
    return Tokenizer.from_str(tok.to_str())


def write_fixture(name, tok, config, texts):
    folder = os.path.join(HERE, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(json.loads(tok.to_str()), ensure_ascii=False, separators=(",", ":")))
        f.write("\n")
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
        f.write("\n")
    with open(os.path.join(folder, "expected.jsonl"), "w", encoding="utf-8") as f:
        for text in texts:
            with_special = tok.encode(text, add_special_tokens=True).ids
            without_special = tok.encode(text, add_special_tokens=False).ids
            record = {
                "text": text,
                "ids": with_special,
                "ids_no_special": without_special,
                "decoded": tok.decode(without_special, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True),
            }
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def train(pre_tokenizer, vocab_size, special_tokens, alphabet, limit_alphabet=None):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    kwargs = {"limit_alphabet": limit_alphabet} if limit_alphabet else {}
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens,
                                  initial_alphabet=alphabet, show_progress=False, **kwargs)
    tok.train_from_iterator(CORPUS * 3, trainer=trainer)
    return tok


def llama3_style():
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok = train(pre, 1200, ["<|begin_of_text|>", "<|eot_id|>"], pre_tokenizers.ByteLevel.alphabet())
    tok.decoder = decoders.ByteLevel()
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)])
    data = json.loads(tok.to_str())
    data["model"]["ignore_merges"] = True  # as Llama-3 ships
    tok = Tokenizer.from_str(json.dumps(data))
    config = {
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "model_max_length": 8192,
        "chat_template": "{% for message in messages %}{{ message['content'] }}<|eot_id|>{% endfor %}",
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    write_fixture("bytelevel_tokenizer", reload(tok), config, make_texts(1))


def gpt2_style():
    tok = train(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), 800,
                ["<|endoftext|>"], pre_tokenizers.ByteLevel.alphabet())
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_tokens([AddedToken("[TAG]", lstrip=True, rstrip=True, normalized=False)])
    config = {
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "add_bos_token": False,
        "chat_template": [{"name": "default", "template": "{{ messages }}"},
                          {"name": "tool_use", "template": "tools"}],
    }
    write_fixture("gpt2_tokenizer", reload(tok), config, make_texts(2))


def sentencepiece_style():
    metaspace = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    tok = train(metaspace, 700, ["<unk>", "<s>", "</s>"], [], limit_alphabet=80)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for b in range(256):
        vocab.setdefault("<0x%02X>" % b, len(vocab))
    data["model"].update({"byte_fallback": True, "unk_token": "<unk>", "fuse_unk": True})
    data["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                       "split": True}
    tok = Tokenizer.from_str(json.dumps(data))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    config = {"bos_token": {"content": "<s>", "lstrip": False}, "eos_token": "</s>",
              "unk_token": "<unk>"}
    write_fixture("metaspace_tokenizer", reload(tok), config, make_texts(3))

    # The same model the Llama-2 way: Prepend/Replace normalizer, no pre-tokenizer, and the
    # Replace/ByteFallback/Fuse/Strip decoder; add_bos_token in the config adds <s>.
    data = json.loads(tok.to_str())
    data["pre_tokenizer"] = None
    data["post_processor"] = None
    data["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    data["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    tok = Tokenizer.from_str(json.dumps(data))
    # `tokenizers` does not read tokenizer_config.json: the expectations add <s> by a template
    # equal to what add_bos_token=true means.
    with_bos = Tokenizer.from_str(json.dumps(data))
    with_bos.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
              "eos_token": "</s>", "unk_token": "<unk>"}
    folder = "llama2_tokenizer"
    write_fixture(folder, with_bos, config, make_texts(4))
    with open(os.path.join(HERE, folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(json.loads(tok.to_str()), ensure_ascii=False, separators=(",", ":")))
        f.write("\n")


if __name__ == "__main__":
    llama3_style()
    gpt2_style()
    sentencepiece_style()
