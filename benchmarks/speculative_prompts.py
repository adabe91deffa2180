#!/usr/bin/env python3
"""Writes the three workloads of benchmarks/speculative.sh as JSONL ({"prompt", "max_tokens"}):

  repetitive  code editing: a chat turn holding a short Python function and asking for it back
              with a comment added (the answer quotes the prompt);
  chat        ordinary questions;
  wordlist    continue a list of random words (a small model repeats the list's words);
  random      open-ended writing, meant to be sampled at temperature 1 (benchmarks/
              speculative.sh does): high-entropy text with little to look up.

SmolLM2's ChatML turns are written out, since `pagoda generate` takes raw prompts. Seeded, so
every run sees the same prompts.
"""
import json
import random
import sys

CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"

FUNCTIONS = [
    ("total_price", "cart", "price", "quantity"),
    ("average_score", "scores", "value", "count"),
    ("count_words", "text", "word", "counts"),
    ("find_largest", "numbers", "item", "best"),
    ("merge_names", "people", "first", "last"),
    ("filter_even", "values", "number", "kept"),
    ("scale_points", "points", "factor", "scaled"),
    ("join_lines", "lines", "line", "result"),
]

QUESTIONS = [
    "What are three tips for staying healthy?",
    "Explain why the sky is blue in a few sentences.",
    "Write a short story about a cat who learns to swim.",
    "What is the difference between a virus and a bacterium?",
    "Give me a recipe for a simple tomato soup.",
    "How does a bicycle stay upright when it moves?",
    "Describe the water cycle to a ten-year-old.",
    "What should I pack for a weekend camping trip?",
]

WORDS = ("apple river stone lamp orange cloud hammer violet garden pencil window thunder "
         "bridge candle forest mirror ladder rocket silver basket jungle marble velvet "
         "anchor puzzle saddle tunnel walnut zebra oyster falcon ginger harbor").split()


def code(name, arg, a, b):
    return (f"def {name}({arg}, limit=None):\n"
            f"    \"\"\"Adds up the entries of {arg}, skipping the missing ones.\"\"\"\n"
            f"    {b} = 0\n"
            f"    seen = 0\n"
            f"    for {a} in {arg}:\n"
            f"        if {a} is None:\n"
            f"            continue\n"
            f"        if limit is not None and seen >= limit:\n"
            f"            break\n"
            f"        {b} = {b} + {a}\n"
            f"        seen = seen + 1\n"
            f"    if seen == 0:\n"
            f"        print(\"no entries in\", {arg})\n"
            f"        return None\n"
            f"    print(\"done with\", seen, \"entries\")\n"
            f"    return {b}\n")


def main():
    kind, max_tokens = sys.argv[1], int(sys.argv[2])
    rng = random.Random(7)
    for i in range(8):
        if kind == "repetitive":
            name, arg, a, b = FUNCTIONS[i]
            text = ("Copy the following Python code exactly, then add one comment line at the "
                    f"top.\n```python\n{code(name, arg, a, b)}```")
        elif kind == "chat":
            text = QUESTIONS[i]
        elif kind == "random":
            text = f"Write a few sentences about {rng.choice(WORDS)}s and {rng.choice(WORDS)}s."
        else:
            text = ("Continue this list of random words: " +
                    " ".join(rng.choice(WORDS) for _ in range(24)))
        print(json.dumps({"prompt": CHAT.format(text), "max_tokens": max_tokens}))


if __name__ == "__main__":
    main()
