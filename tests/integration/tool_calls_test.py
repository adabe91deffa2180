"""Tool calling end to end: `pagoda serve` with SmolLM2-135M-Instruct (the Q4_1 GGUF in models/;
absent: skipped), 1 replica x TP 1, driven by the official `openai` client. A named tool_choice
and tool_choice "required" always give valid tool_calls whose arguments `jsonschema` validates
(the constrained decoder forces the parser's format); streamed tool-call deltas reassemble to
the non-streamed result at temperature 0; assistant tool_calls and tool messages are accepted on
the way back; bad tool definitions and unknown fields are 400s naming the field, and the server
keeps serving.

Run by ctest: .venv/bin/python tool_calls_test.py --bin-dir B --source-dir S --shared-dir D
"""

import json
import unittest

import jsonschema
import openai

import pagoda_cluster
from pagoda_cluster import PagodaCluster

MODEL = pagoda_cluster.SMOLLM2_NAME

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 16},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
SEARCH = {
    "type": "object",
    "properties": {"query": {"type": "string", "maxLength": 24}},
    "required": ["query"],
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                      "parameters": WEATHER}},
    {"type": "function", "function": {"name": "search", "description": "Search the web",
                                      "parameters": SEARCH}},
]
SCHEMAS = {"get_weather": WEATHER, "search": SEARCH}


class ToolCallsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Prefix caching stays on: the stream is compared with a repeat that prefills from the
        # cache in another step shape, which changes no logit on the integer path
        # (docs/architecture.md, batch invariance).
        cls.cluster = PagodaCluster(replicas=1, tp=1, model=pagoda_cluster.require_smollm2())
        cls.client = openai.OpenAI(base_url=cls.cluster.http_url + "/v1", api_key="none",
                                   max_retries=0, timeout=300)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def chat(self, content, max_tokens=120, temperature=0.0, **kwargs):
        messages = content if isinstance(content, list) else [{"role": "user", "content": content}]
        return self.client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=max_tokens, temperature=temperature,
            seed=1234, **kwargs)

    def assert_valid_calls(self, message, names):
        self.assertTrue(message.tool_calls, message)
        for call in message.tool_calls:
            self.assertEqual(call.type, "function")
            self.assertTrue(call.id.startswith("call_"), call.id)
            self.assertIn(call.function.name, names)
            jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])

    def assert_serves(self):
        out = self.client.completions.create(model=MODEL, prompt="Hello", max_tokens=2)
        self.assertEqual(len(out.choices), 1)

    def test_named_and_required_choices_give_valid_calls(self):
        cases = [("What is the weather in Paris?", 0.0), ("Look up the tallest mountain.", 0.8)]
        for prompt, temperature in cases:
            with self.subTest(prompt=prompt, temperature=temperature, choice="named"):
                out = self.chat(prompt, temperature=temperature, tools=TOOLS,
                                tool_choice={"type": "function",
                                             "function": {"name": "get_weather"}})
                choice = out.choices[0]
                self.assertEqual(choice.finish_reason, "tool_calls", choice.message)
                self.assertEqual(len(choice.message.tool_calls), 1)
                self.assert_valid_calls(choice.message, ["get_weather"])
            with self.subTest(prompt=prompt, temperature=temperature, choice="required"):
                out = self.chat(prompt, temperature=temperature, tools=TOOLS,
                                tool_choice="required", parallel_tool_calls=False)
                choice = out.choices[0]
                self.assertEqual(choice.finish_reason, "tool_calls", choice.message)
                self.assertEqual(len(choice.message.tool_calls), 1)
                self.assert_valid_calls(choice.message, ["get_weather", "search"])

    def test_streamed_deltas_reassemble_to_the_non_streamed_result(self):
        # One call each: a small model given parallel calls repeats them until max_tokens, and a
        # cut-off call is content in the non-streamed answer (docs/api.md).
        for tool_choice in ("required", {"type": "function", "function": {"name": "search"}}):
            with self.subTest(tool_choice=tool_choice):
                kwargs = dict(tools=TOOLS, tool_choice=tool_choice, parallel_tool_calls=False)
                whole = self.chat("Find news about Rome.", **kwargs).choices[0]
                calls, content, finish = {}, "", None
                for chunk in self.chat("Find news about Rome.", stream=True, **kwargs):
                    for choice in chunk.choices:
                        delta = choice.delta
                        content += delta.content or ""
                        for call in delta.tool_calls or []:
                            if call.id is not None:
                                self.assertNotIn(call.index, calls)
                                self.assertEqual(call.function.arguments, "")
                                calls[call.index] = {"name": call.function.name, "arguments": ""}
                            else:
                                self.assertIsNone(call.function.name)
                                calls[call.index]["arguments"] += call.function.arguments
                        finish = choice.finish_reason or finish
                self.assertEqual(finish, whole.finish_reason)
                self.assertEqual(content or None, whole.message.content)
                self.assertEqual([calls[i] for i in sorted(calls)],
                                 [{"name": c.function.name, "arguments": c.function.arguments}
                                  for c in whole.message.tool_calls])

    def test_tool_results_on_the_way_back_and_auto(self):
        messages = [
            {"role": "user", "content": "What is the weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather",
                              "arguments": '{"city": "Oslo", "unit": "celsius"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 4}'},
        ]
        out = self.chat(messages, max_tokens=24, tools=TOOLS)
        choice = out.choices[0]
        self.assertIn(choice.finish_reason, ("stop", "length", "tool_calls"))
        if choice.message.tool_calls:
            self.assert_valid_calls(choice.message, ["get_weather", "search"])
        else:
            self.assertIsInstance(choice.message.content, str)
        out = self.chat("Say hi.", max_tokens=8, tools=TOOLS, tool_choice="none")
        self.assertIsNone(out.choices[0].message.tool_calls)

    def test_bad_tools_and_unknown_fields_are_400_and_the_server_keeps_serving(self):
        bad_tool = [{"type": "function", "function": {
            "name": "bad", "parameters": {"type": "object", "patternProperties": {"x": {}}}}}]
        cases = [
            ({"tools": bad_tool}, "tools", "bad"),
            ({"tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}]},
             "tools", "f"),
            ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "x"}}},
             "tool_choice", "x"),
            ({"tool_choice": "required"}, "tool_choice", None),
            ({"extra_body": {"no_such_field": 1}}, "no_such_field", None),
            ({"logit_bias": {"1": 500}}, "logit_bias", "[-100, 100]"),
        ]
        for kwargs, param, needle in cases:
            with self.subTest(param=param, kwargs=kwargs):
                with self.assertRaises(openai.BadRequestError) as caught:
                    self.chat("Hi", max_tokens=4, **kwargs)
                error = caught.exception.body
                self.assertEqual(error["param"], param, error)
                if needle:
                    self.assertIn(needle, error["message"])
            self.assert_serves()
        with self.assertRaises(openai.BadRequestError) as caught:
            self.client.completions.create(model=MODEL, prompt="Hi", max_tokens=2,
                                           extra_body={"tools": TOOLS})
        self.assertEqual(caught.exception.body["param"], "tools")


if __name__ == "__main__":
    pagoda_cluster.main()
