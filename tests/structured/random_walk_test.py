#!/usr/bin/env python3
"""Random walks through constrained decoding's token masks, checked by reference validators.

structured_random_walk (tests/structured/structured_random_walk.cc) samples tokens of a toy
vocabulary (single bytes, merged structural tokens, multi-byte characters) among those the mask
allows, until EOS; it fails by itself when a mask is empty before EOS (a dead end). Here each
printed string must satisfy the constraint according to an independent implementation: Python's
json + jsonschema (with its format checker; date-time and time by datetime.fromisoformat, which
needs no extra package), re.fullmatch, the choice list, or a hand-written check of a GBNF grammar.
Usage: random_walk_test.py --tool PATH/structured_random_walk
"""

import argparse
import datetime
import json
import re
import subprocess
import sys
import unittest

import jsonschema

TOOL = None
WALKS = "40"


def walk(kind, grammar, seed=1, budget=30):
    out = subprocess.run(
        [TOOL, "--kind", kind, "--grammar", grammar, "--walks", WALKS, "--seed", str(seed),
         "--budget", str(budget)],
        capture_output=True, check=False)
    if out.returncode != 0:
        raise AssertionError(f"structured_random_walk failed: {out.stderr.decode()}")
    return [bytes.fromhex(line).decode("utf-8") for line in out.stdout.decode().split()]


FORMAT_CHECKER = jsonschema.FormatChecker()


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _date_time(value):
    if not re.search(r"(Z|[+-]\d\d:\d\d)$", value):
        raise ValueError("no offset")
    datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@FORMAT_CHECKER.checks("time", raises=ValueError)
def _time(value):
    return _date_time("2000-01-01T" + value)


SCHEMAS = [
    {"type": "object",
     "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 8},
                    "age": {"type": "integer", "minimum": 0, "maximum": 120},
                    "email": {"type": "string", "format": "email"},
                    "nick": {"type": ["string", "null"]}},
     "required": ["name", "age"]},
    {"type": "array", "items": {"enum": ["red", "green", "日本", 3, None]}, "minItems": 1,
     "maxItems": 4},
    {"$defs": {"node": {"type": "object",
                        "properties": {"v": {"type": "integer", "minimum": -50, "maximum": 50},
                                       "kids": {"type": "array",
                                                "items": {"$ref": "#/$defs/node"},
                                                "maxItems": 2}},
                        "required": ["v"]}},
     "$ref": "#/$defs/node"},
    {"type": "object",
     "properties": {"id": {"type": "string", "format": "uuid"},
                    "day": {"type": "string", "format": "date"},
                    "at": {"type": "string", "format": "date-time"},
                    "t": {"type": "string", "format": "time"},
                    "code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{2,4}$"}},
     "required": ["id", "day", "at", "t", "code"]},
    {"type": "object", "properties": {"a": {"type": "boolean"}},
     "additionalProperties": {"type": "number"}},
    {"type": "array", "prefixItems": [{"type": "string"}, {"const": {"k": [1, "x"]}}],
     "items": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
    {"oneOf": [{"type": "string", "maxLength": 3}, {"type": "number"}]},
    {"type": "object", "properties": {"quote": {"type": "string", "pattern": "a\"b\\\\c.?"}},
     "required": ["quote"]},
]


class RandomWalkTest(unittest.TestCase):
    def test_json_schemas(self):
        for i, schema in enumerate(SCHEMAS):
            with self.subTest(schema=i):
                texts = walk("json_schema", json.dumps(schema), seed=i + 1)
                self.assertEqual(len(texts), int(WALKS))
                for text in texts:
                    value = json.loads(text)
                    jsonschema.validate(value, schema, format_checker=FORMAT_CHECKER)

    def test_free_json_object(self):
        for text in walk("json_object", ""):
            self.assertIsInstance(json.loads(text), dict, text)

    def test_regexes(self):
        # ECMAScript's \s (the converter's) differs from Python's: spelled out for the check.
        es_space = "[\t-\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
        cases = [(p, p) for p in [r"\d{3}-[A-Z]{2,4}", r"(ab|cd)+e?", r"[α-ω日本]{1,5}x",
                                  r"[^a-z ]{2}\.\w+", r"(?:0|[1-9]\d*)(\.\d+)?"]]
        cases.append((r"\s[a-z]\d", es_space + r"[a-z]\d"))
        for pattern, python_pattern in cases:
            with self.subTest(pattern=pattern):
                for text in walk("regex", pattern):
                    self.assertIsNotNone(re.fullmatch(python_pattern, text), text)

    def test_choices(self):
        choices = ["yes", "no", "maybe so", "日本"]
        for text in walk("choice", "\n".join(choices)):
            self.assertIn(text, choices)

    def test_gbnf(self):
        grammar = r'''root ::= expr
expr ::= expr "+" term | term
term ::= [0-9]+ | "(" expr ")"'''
        for text in walk("gbnf", grammar, budget=15):
            self.assertIsNotNone(re.fullmatch(r"[0-9+()]+", text), text)
            self.assertEqual(text.count("("), text.count(")"), text)
            python = re.sub(r"(?<![0-9])0+(?=[0-9])", "", text)  # no leading zeros in Python
            self.assertIsInstance(eval(python, {"__builtins__": {}}), int, text)  # noqa: S307


def main():
    global TOOL
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    args, rest = parser.parse_known_args()
    TOOL = args.tool
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()
