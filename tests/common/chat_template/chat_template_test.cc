// Checks the chat-template interpreter on the real SmolLM2 (ChatML), Llama-2-chat, Llama-3,
// Llama-3.1, Phi-3-mini, Phi-3.5-mini, Gemma 2, Gemma 3 and Qwen3 templates
// (tests/data/chat_templates/, verbatim from the models' tokenizer configs) and on each Jinja
// construct. Expected strings were worked out from the template semantics and cross-checked once
// with Python's jinja2 in transformers' environment.
#include "common/chat_template/chat_template.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

using ::nlohmann::json;
using ::testing::HasSubstr;

std::string TemplateSource(const std::string& name) {
  auto text =
      ReadFileToString(std::string(PAGODA_TEST_DATA_DIR) + "/chat_templates/" + name + ".jinja");
  EXPECT_TRUE(text.ok()) << text.status();
  return text.value_or("");
}

json Conversation() {
  return json::array({
      {{"role", "system"}, {"content", "You are a terse assistant."}},
      {{"role", "user"}, {"content", "What is 2+2?"}},
      {{"role", "assistant"}, {"content", " It is 4. "}},
      {{"role", "user"}, {"content", "And 3+3?"}},
  });
}

std::string RenderFile(const std::string& name, bool add_generation_prompt, const json& extra,
                       const json& messages = Conversation()) {
  auto tmpl = ChatTemplate::Parse(TemplateSource(name));
  EXPECT_TRUE(tmpl.ok()) << tmpl.status();
  if (!tmpl.ok()) return "";
  auto out = tmpl->Render(messages, add_generation_prompt, extra);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.value_or("<error>");
}

// Renders an inline template with `vars` as the extra context and no messages.
absl::StatusOr<std::string> Render(const std::string& source, const json& vars = json::object(),
                                   ChatTemplate::Options options = {}) {
  auto tmpl = ChatTemplate::Parse(source, options);
  if (!tmpl.ok()) return tmpl.status();
  return tmpl->Render(json::array(), false, vars);
}

std::string Ok(const std::string& source, const json& vars = json::object()) {
  auto out = Render(source, vars);
  EXPECT_TRUE(out.ok()) << source << ": " << out.status();
  return out.value_or("<error>");
}

TEST(ChatTemplateModels, SmolLM2ChatML) {
  const std::string turns =
      "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n"
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
      "<|im_start|>assistant\n It is 4. <|im_end|>\n"
      "<|im_start|>user\nAnd 3+3?<|im_end|>\n";
  EXPECT_EQ(RenderFile("smollm2", false, json::object()), turns);
  EXPECT_EQ(RenderFile("smollm2", true, json::object()), turns + "<|im_start|>assistant\n");
}

TEST(ChatTemplateModels, SmolLM2AddsDefaultSystemPrompt) {
  json messages = json::array({{{"role", "user"}, {"content", "Hi"}}});
  EXPECT_EQ(RenderFile("smollm2", true, json::object(), messages),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateModels, Llama2Chat) {
  const json extra = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  const std::string expected =
      "<s>[INST] <<SYS>>\nYou are a terse assistant.\n<</SYS>>\n\nWhat is 2+2? [/INST] It is 4. "
      "</s><s>[INST] And 3+3? [/INST]";
  // The template has no generation prompt: the prompt already ends in [/INST].
  EXPECT_EQ(RenderFile("llama2_chat", false, extra), expected);
  EXPECT_EQ(RenderFile("llama2_chat", true, extra), expected);
}

TEST(ChatTemplateModels, Llama2RaisesOnBadRoleAlternation) {
  auto tmpl = ChatTemplate::Parse(TemplateSource("llama2_chat"));
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  json messages =
      json::array({{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}});
  auto out = tmpl->Render(messages, true, {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(),
            "Conversation roles must alternate user/assistant/user/assistant/...");
}

// Phi-3-mini-4k-instruct and Phi-3.5-mini-instruct: every turn closed by <|end|> (a stop token),
// the EOS only when no generation prompt follows; 3.5 drops an empty system message.
TEST(ChatTemplateModels, Phi3Instruct) {
  const std::string turns =
      "<|system|>\nYou are a terse assistant.<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n"
      "<|assistant|>\n It is 4. <|end|>\n<|user|>\nAnd 3+3?<|end|>\n";
  const json extra = {{"bos_token", "<s>"}, {"eos_token", "<|endoftext|>"}};
  for (const char* name : {"phi3_mini_instruct", "phi3_5_mini_instruct"}) {
    EXPECT_EQ(RenderFile(name, true, extra), turns + "<|assistant|>\n") << name;
    EXPECT_EQ(RenderFile(name, false, extra), turns + "<|endoftext|>") << name;
  }
  const json empty_system =
      json::array({{{"role", "system"}, {"content", ""}}, {{"role", "user"}, {"content", "Hi"}}});
  EXPECT_EQ(RenderFile("phi3_5_mini_instruct", true, extra, empty_system),
            "<|user|>\nHi<|end|>\n<|assistant|>\n");
  EXPECT_EQ(RenderFile("phi3_mini_instruct", true, extra, empty_system),
            "<|system|>\n<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n");
}

TEST(ChatTemplateModels, Llama3Instruct) {
  const std::string turns =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a terse "
      "assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\nIt is 4.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>";
  const json extra = {{"bos_token", "<|begin_of_text|>"}};
  EXPECT_EQ(RenderFile("llama3_instruct", false, extra), turns);
  EXPECT_EQ(RenderFile("llama3_instruct", true, extra),
            turns + "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateModels, Llama31Instruct) {
  const std::string turns =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
      "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
      "You are a terse assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
      "What is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nIt is 4.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>";
  const json extra = {{"bos_token", "<|begin_of_text|>"}};
  EXPECT_EQ(RenderFile("llama3_1_instruct", false, extra), turns);
  EXPECT_EQ(RenderFile("llama3_1_instruct", true, extra),
            turns + "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateModels, Llama31ToolsGoInTheFirstUserMessage) {
  json tools = json::array(
      {{{"type", "function"}, {"function", {{"name", "add"}, {"parameters", json::object()}}}}});
  json messages = json::array({{{"role", "user"}, {"content", "Add."}}});
  std::string out = RenderFile("llama3_1_instruct", true,
                               {{"bos_token", "<|begin_of_text|>"}, {"tools", tools}}, messages);
  EXPECT_EQ(out,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Environment: ipython\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
            "Given the following functions, please respond with a JSON for a function call with "
            "its proper arguments that best answers the given prompt.\n\n"
            "Respond in the format {\"name\": function name, \"parameters\": dictionary of "
            "argument name and its value}.Do not use variables.\n\n{\n    \"function\": {\n"
            "        \"name\": \"add\",\n        \"parameters\": {}\n    },\n"
            "    \"type\": \"function\"\n}\n\nAdd.<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

// Gemma 3 (google/gemma-3-*-it): the system message becomes a prefix of the first user turn,
// "assistant" is "model", contents are trimmed. Expected strings checked with Python's jinja2 as
// transformers runs it (trim_blocks, lstrip_blocks).
TEST(ChatTemplateModels, Gemma3FoldsTheSystemMessageIntoTheFirstUserTurn) {
  const json extra = {{"bos_token", "<bos>"}};
  const std::string turns =
      "<bos><start_of_turn>user\nYou are a terse assistant.\n\nWhat is 2+2?<end_of_turn>\n"
      "<start_of_turn>model\nIt is 4.<end_of_turn>\n"
      "<start_of_turn>user\nAnd 3+3?<end_of_turn>\n";
  EXPECT_EQ(RenderFile("gemma3_it", false, extra), turns);
  EXPECT_EQ(RenderFile("gemma3_it", true, extra), turns + "<start_of_turn>model\n");
  const json no_system = json::array({{{"role", "user"}, {"content", "Hi"}}});
  EXPECT_EQ(RenderFile("gemma3_it", true, extra, no_system),
            "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
}

// Qwen3 (Qwen/Qwen3-0.6B, as llama.cpp ships it in models/templates/): enable_thinking false (a
// chat_template_kwargs variable) opens the answer with an empty think block, and the reasoning of
// assistant turns before the last query is dropped from the history. Expected strings checked
// with Python's jinja2 as transformers runs it (trim_blocks, lstrip_blocks).
TEST(ChatTemplateModels, Qwen3SwitchesThinkingOffAndDropsOldReasoning) {
  json messages = Conversation();
  messages[2]["content"] = "<think>\nEasy.\n</think>\n\nIt is 4.";
  const std::string turns =
      "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n"
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\nIt is 4.<|im_end|>\n"
      "<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(RenderFile("qwen3", true, json::object(), messages), turns);
  EXPECT_EQ(RenderFile("qwen3", true, {{"enable_thinking", false}}, messages),
            turns + "<think>\n\n</think>\n\n");
  EXPECT_EQ(RenderFile("qwen3", true, {{"enable_thinking", true}}, messages), turns);
}

// Gemma 2 (google/gemma-2-*-it): the same turns, but a system message is refused by the template.
TEST(ChatTemplateModels, Gemma2RendersTurnsAndRefusesASystemMessage) {
  const json extra = {{"bos_token", "<bos>"}};
  const json conversation = Conversation();
  const json messages(conversation.begin() + 1, conversation.end());
  EXPECT_EQ(RenderFile("gemma2_it", true, extra, messages),
            "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
            "<start_of_turn>model\nIt is 4.<end_of_turn>\n"
            "<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>model\n");
  auto tmpl = ChatTemplate::Parse(TemplateSource("gemma2_it"));
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  auto out = tmpl->Render(Conversation(), true, extra);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(), "System role not supported");
}

TEST(ChatTemplate, FlattensTextContentParts) {
  json messages =
      json::array({{{"role", "user"},
                    {"content", json::array({{{"type", "text"}, {"text", "a"}},
                                             {{"type", "image_url"}, {"image_url", "x"}},
                                             {{"type", "text"}, {"text", "b"}}})}}});
  auto tmpl = ChatTemplate::Parse("{{ messages[0].content }}");
  ASSERT_TRUE(tmpl.ok());
  EXPECT_EQ(tmpl->Render(messages, false).value_or(""), "a\nb");
}

TEST(ChatTemplate, FromModelDirectory) {
  auto dir =
      std::filesystem::temp_directory_path() / ("chat_template_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const json& config) {
    std::ofstream(dir / "tokenizer_config.json") << config.dump();
  };
  write({{"chat_template", "{{ 'x' }}"}});
  auto t = ChatTemplate::FromModelDirectory(dir.string());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->Render(json::array(), false).value_or(""), "x");

  write({{"chat_template", json::array({{{"name", "tool_use"}, {"template", "T"}},
                                        {{"name", "default"}, {"template", "D"}}})}});
  t = ChatTemplate::FromModelDirectory(dir.string());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->Render(json::array(), false).value_or(""), "D");

  write({{"bos_token", "<s>"}});
  EXPECT_EQ(ChatTemplate::FromModelDirectory(dir.string()).status().code(),
            absl::StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

TEST(JinjaSyntax, OutputAndLiterals) {
  EXPECT_EQ(Ok("a{{ 'b\\n\"' }}c{{ \"d\\te\" }}"), "ab\n\"cd\te");
  EXPECT_EQ(Ok("{{ 1 }} {{ 2.5 }} {{ 1.0 }} {{ true }} {{ None }} {{ none }}"),
            "1 2.5 1.0 True None None");
  EXPECT_EQ(Ok("{{ [1, 'a', [true]] }} {{ {'k': 'v'} }}"), "[1, 'a', [True]] {'k': 'v'}");
  EXPECT_EQ(Ok("{{ undefined_thing }}|{{ x }}", {{"x", "y"}}), "|y");
}

TEST(JinjaSyntax, Arithmetic) {
  EXPECT_EQ(Ok("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }}"),
            "7 9 3 -4 1");
  EXPECT_EQ(Ok("{{ -7 % 3 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 1.5 + 1 }} {{ -(3) }}"),
            "2 3.5 2.0 2.5 -3");
  EXPECT_EQ(Ok("{{ 'a' + 'b' }} {{ 'a' ~ 1 ~ none }} {{ 'ab' * 2 }} {{ [1] + [2] }}"),
            "ab a1None abab [1, 2]");
  EXPECT_THAT(Render("{{ 1 / 0 }}").status().message(), HasSubstr("division by zero"));
  EXPECT_THAT(Render("{{ 'a' + 1 }}").status().message(), HasSubstr("unsupported operand"));
}

TEST(JinjaSyntax, ComparisonsAndLogic) {
  EXPECT_EQ(Ok("{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' == 'a' }} {{ 1 != 1.0 }} {{ 'b' > 'a' }}"),
            "True False True False True");
  EXPECT_EQ(Ok("{{ 1 and 'x' }} {{ 0 or 'y' }} {{ not 0 }} {{ not 1 == 1 }}"), "x y True False");
  EXPECT_EQ(Ok("{{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [3] }}"),
            "True True True False");
  EXPECT_EQ(Ok("{{ 'yes' if x else 'no' }} {{ 'yes' if not x }}", {{"x", false}}), "no yes");
}

TEST(JinjaSyntax, AttributeItemAndSlice) {
  json vars = {{"m", {{"role", "user"}, {"content", "hello"}}}, {"xs", json::array({1, 2, 3, 4})}};
  EXPECT_EQ(Ok("{{ m.role }} {{ m['content'] }} {{ xs[0] }} {{ xs[-1] }} {{ m.missing }}", vars),
            "user hello 1 4 ");
  EXPECT_EQ(Ok("{{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ xs[1:-1] }} {{ xs[::2] }}", vars),
            "[2, 3, 4] [1, 2] [4, 3, 2, 1] [2, 3] [1, 3]");
  EXPECT_EQ(Ok("{{ m.content[1:3] }} {{ m.content[::-1] }} {{ m.content[0] }}", vars),
            "el olleh h");
  EXPECT_THAT(Render("{{ nothing.attr }}").status().message(), HasSubstr("'nothing' is undefined"));
}

TEST(JinjaSyntax, IfElifElse) {
  const std::string t = "{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %}";
  EXPECT_EQ(Ok(t, {{"x", 1}}), "one");
  EXPECT_EQ(Ok(t, {{"x", 2}}), "two");
  EXPECT_EQ(Ok(t, {{"x", 3}}), "many");
}

TEST(JinjaSyntax, ForLoopVariables) {
  json vars = {{"xs", json::array({"a", "b", "c"})}};
  EXPECT_EQ(Ok("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ x }}{{ loop.revindex }}"
               "{{ loop.length }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}"
               ",{% endfor %}",
               vars),
            "10a33F,21b23,32c13L,");
  EXPECT_EQ(Ok("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(
      Ok("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {{"d", {{"a", 1}, {"b", 2}}}}),
      "a=1;b=2;");
  EXPECT_EQ(Ok("{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}", {{"d", {{"a", 1}}}}), "a1");
  EXPECT_EQ(Ok("{% for x in range(5) if x is odd %}{{ x }}{{ loop.index }}{% endfor %}"), "1132");
  EXPECT_EQ(Ok("{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}"
               "{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "02");
  EXPECT_EQ(Ok("{% for i in range(2) %}{% for j in range(2) %}{{ loop.index0 }}{% endfor %}"
               "{{ loop.index0 }}|{% endfor %}"),
            "010|011|");
}

TEST(JinjaSyntax, SetScopesAndNamespaces) {
  EXPECT_EQ(Ok("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(Ok("{% set ns = namespace(found=false, n=0) %}{% for i in [1, 2] %}"
               "{% set ns.found = true %}{% set ns.n = ns.n + i %}{% endfor %}"
               "{{ ns.found }} {{ ns.n }}"),
            "True 3");
  EXPECT_EQ(Ok("{% set t %}a{{ 1 + 1 }}{% endset %}[{{ t }}]"), "[a2]");
  EXPECT_THAT(Render("{% set x = 1 %}{% set x.a = 2 %}").status().message(),
              HasSubstr("non-namespace"));
}

TEST(JinjaSyntax, Macros) {
  EXPECT_EQ(Ok("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
               "{{ greet('Ann') }} {{ greet('Bo', punct='?') }}"),
            "Hi Ann! Hi Bo?");
}

TEST(JinjaSyntax, Tests) {
  json vars = {{"s", "x"}, {"n", nullptr}, {"d", json::object()}, {"l", json::array()}, {"i", 3}};
  EXPECT_EQ(Ok("{{ s is defined }}{{ u is defined }}{{ u is not defined }}{{ n is none }}"
               "{{ s is string }}{{ d is mapping }}{{ l is iterable }}{{ i is number }}"
               "{{ s is not string }}{{ i is odd }}{{ i is equalto 3 }}",
               vars),
            "TrueFalseTrueTrueTrueTrueTrueTrueFalseTrueTrue");
}

TEST(JinjaFilters, StringFilters) {
  EXPECT_EQ(Ok("{{ '  a b  ' | trim }}|{{ 'aB' | upper }}|{{ 'aB' | lower }}"
               "|{{ 'hello wORLD' | title }}|{{ 'hello World' | capitalize }}"
               "|{{ 'aXbX' | replace('X', '-') }}"),
            "a b|AB|ab|Hello World|Hello world|a-b-");
  EXPECT_EQ(Ok("{{ ['a', 'b'] | join(', ') }}|{{ [1, 2] | join }}|{{ 5 | string }}"
               "|{{ '42' | int + 1 }}|{{ 'abc' | length }}|{{ [1, 2, 3] | length }}"),
            "a, b|12|5|43|3|3");
  EXPECT_EQ(Ok("{{ [1, 2] | first }}{{ [1, 2] | last }}{{ 'xy' | first }}{{ [2, 1, 2] | unique }}"
               "{{ {'a': 1} | list }}"),
            "12x[2, 1]['a']");
  EXPECT_EQ(Ok("{{ u | default('d') }}|{{ '' | default('d', true) }}|{{ 'v' | default('d') }}"),
            "d|d|v");
}

TEST(JinjaFilters, ToJson) {
  json vars = {{"v", {{"a", json::array({1, "x\"y", nullptr, true, 1.5})}, {"b", "é"}}}};
  EXPECT_EQ(Ok("{{ v | tojson }}", vars),
            "{\"a\": [1, \"x\\\"y\", null, true, 1.5], \"b\": \"é\"}");
  EXPECT_EQ(Ok("{{ {'k': [1]} | tojson(indent=2) }}"), "{\n  \"k\": [\n    1\n  ]\n}");
  EXPECT_EQ(Ok("{{ [] | tojson(indent=4) }}"), "[]");
}

TEST(JinjaFilters, SelectAndMap) {
  json vars = {{"ms", json::array({{{"role", "system"}, {"content", "s"}},
                                   {{"role", "user"}, {"content", "u"}}})}};
  EXPECT_EQ(Ok("{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') "
               "| list }}",
               vars),
            "['u']");
  EXPECT_EQ(Ok("{{ ms | rejectattr('role', 'equalto', 'user') | map(attribute='role') "
               "| join }}",
               vars),
            "system");
  EXPECT_EQ(Ok("{{ ['a', 'b', 'c'] | reject('equalto', 'b') | join(', ') }}"), "a, c");
  EXPECT_EQ(Ok("{{ ['a', 'B'] | map('upper') | join }}"), "AB");
}

TEST(JinjaFilters, Methods) {
  EXPECT_EQ(Ok("{{ '  x '.strip() }}|{{ '  x '.lstrip() }}|{{ '  x '.rstrip() }}"
               "|{{ 'xxaxx'.strip('x') }}"),
            "x|x |  x|a");
  EXPECT_EQ(Ok("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.endswith('x') }}"),
            "TrueTrueFalse");
  EXPECT_EQ(Ok("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'x</think>y'.split("
               "'</think>')[-1] }}"),
            "['a', 'b', '', 'c'] ['a', 'b'] y");
  EXPECT_EQ(Ok("{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}{{ 'aa'.replace('a', 'b') }}"
               "{{ 'ab cd'.title() }}"),
            "ABabbbAb Cd");
  json vars = {{"d", {{"a", 1}, {"b", 2}}}};
  EXPECT_EQ(Ok("{{ d.get('a') }} {{ d.get('z', 'no') }} {{ d.get('z') }} {{ d.keys() | list }} "
               "{{ d.values() | list }} {{ d.items() | length }}",
               vars),
            "1 no None ['a', 'b'] [1, 2] 2");
}

TEST(JinjaFunctions, RaiseException) {
  auto out = Render("{% if true %}{{ raise_exception('bad input: ' ~ 3) }}{% endif %}");
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(), "bad input: 3");
}

TEST(JinjaFunctions, RangeAndStrftimeNow) {
  EXPECT_EQ(Ok("{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(3, 0, -1) | list }}"),
            "[0, 1, 2] [1, 3, 5] [3, 2, 1]");
  ChatTemplate::Options options;
  options.now = [] {
    return absl::FromCivil(absl::CivilSecond(2025, 3, 5, 14, 30, 0), absl::UTCTimeZone());
  };
  auto out = Render("{% if strftime_now is defined %}{{ strftime_now('%d %b %Y') }}{% endif %}",
                    json::object(), options);
  EXPECT_EQ(out.value_or(""), "05 Mar 2025");
}

TEST(JinjaWhitespace, StripMarkers) {
  EXPECT_EQ(Ok("a  \n  {{- 'b' -}}  \n  c"), "abc");
  EXPECT_EQ(Ok("a \n {%- if true -%} \n b \n {%- endif -%} \n c"), "abc");
  EXPECT_EQ(Ok("a \n {#- comment -#} \n c"), "ac");
  EXPECT_EQ(Ok("{% for x in [1, 2] -%}\n  {{ x }}\n{%- endfor %}"), "12");
}

TEST(JinjaWhitespace, TrimAndLstripBlocks) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(Ok("{% if true %}\n  x\n{% endif %}\ny"), "  x\ny");
  EXPECT_EQ(Ok("<\n    {% if true %}\nA\n    {% endif %}\n>"), "<\nA\n>");
  // Neither applies to {{ }}: its surrounding whitespace stays.
  EXPECT_EQ(Ok("  {{ 'x' }}\ny"), "  x\ny");
  // As in Jinja (keep_trailing_newline off), one final newline of the template is dropped.
  EXPECT_EQ(Ok("x\n\n"), "x\n");
  // Indentation before a tag that does not start its line stays.
  EXPECT_EQ(Ok("a  {% if true %}b{% endif %}"), "a  b");
  // {%+ turns lstrip_blocks off for one tag.
  EXPECT_EQ(Ok("  {%+ if true %}x{% endif %}"), "  x");
  // +%} turns trim_blocks off for one tag.
  EXPECT_EQ(Ok("{% if true +%}\nx{% endif %}"), "\nx");
  EXPECT_EQ(Ok("{# note #}\nx"), "x");
}

TEST(JinjaErrors, SyntaxErrorsNameLineAndColumn) {
  auto status = Render("line1\n{% if x %}\nno end").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("line 3"));
  EXPECT_THAT(status.message(), HasSubstr("endif"));

  status = Render("ok\n  {{ 1 + }}").status();
  EXPECT_THAT(status.message(), HasSubstr("line 2, column 10"));
  EXPECT_THAT(Render("{% frobnicate %}").status().message(), HasSubstr("unknown statement"));
  EXPECT_THAT(Render("{{ 'unterminated }}").status().message(), HasSubstr("unterminated"));
  EXPECT_THAT(Render("{{ x ").status().message(), HasSubstr("unclosed"));
  EXPECT_THAT(Render("{% for x in xs %}{% endif %}").status().message(), HasSubstr("line 1"));
  EXPECT_THAT(Render("{{ x | nosuchfilter }}").status().message(),
              HasSubstr("unknown filter 'nosuchfilter'"));
}

TEST(JinjaLimits, OutputSize) {
  ChatTemplate::Options options;
  options.max_output_bytes = 100;
  auto out = Render("{% for i in range(200) %}x{% endfor %}", json::object(), options);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("limit"));
  EXPECT_FALSE(Render("{{ 'x' * 1000 }}", json::object(), options).ok());
  // Doubling a list of big strings is refused before it multiplies memory.
  out = Render("{% set ns = namespace(l=['" + std::string(50, 'y') +
                   "']) %}{% for i in range(30) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
               json::object(), options);
  EXPECT_THAT(out.status().message(), HasSubstr("size limit"));
  out = Render("{% set s = 'x' * 60 %}{{ [s, s, s] | length }}", json::object(), options);
  EXPECT_THAT(out.status().message(), HasSubstr("size limit"));
}

TEST(JinjaLimits, LoopIterations) {
  ChatTemplate::Options options;
  options.max_loop_iterations = 1000;
  auto out = Render("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}",
                    json::object(), options);
  EXPECT_THAT(out.status().message(), HasSubstr("loop iteration limit"));
}

TEST(JinjaLimits, RecursionDepth) {
  auto out = Render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("depth"));
  std::string deep(100000, '(');
  EXPECT_EQ(Render("{{ " + deep + " }}").status().code(), absl::StatusCode::kInvalidArgument);
  std::string nots;
  for (int i = 0; i < 100000; ++i) nots += "not ";
  EXPECT_EQ(Render("{{ " + nots + "1 }}").status().code(), absl::StatusCode::kInvalidArgument);
  std::string chain = "1";
  for (int i = 0; i < 100000; ++i) chain += " + 1";
  EXPECT_THAT(Render("{{ " + chain + " }}").status().message(), HasSubstr("nested too deeply"));
}

TEST(JinjaLimits, ValueNesting) {
  auto out = Render(
      "{% set ns = namespace(x=[]) %}{% for i in range(1000) %}"
      "{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}");
  EXPECT_THAT(out.status().message(), HasSubstr("nested deeper than"));
  json deep = "leaf";
  for (int i = 0; i < 1000; ++i) {
    json wrapper = json::array();
    wrapper.push_back(std::move(deep));
    deep = std::move(wrapper);
  }
  json message = {{"role", "user"}};
  message["content"] = std::move(deep);
  json messages = json::array();
  messages.push_back(std::move(message));
  auto tmpl = ChatTemplate::Parse("{{ messages }}");
  ASSERT_TRUE(tmpl.ok());
  EXPECT_THAT(tmpl->Render(messages, false).status().message(), HasSubstr("nested deeper"));
}

TEST(JinjaLimits, HostileInputsFailCleanly) {
  for (const char* source :
       {"{{", "{%", "{#", "{{ }}", "{% %}", "{{ [1, }}", "{{ {1: }}", "{% for %}", "{% set %}",
        "{% endfor %}", "{{ a[::0] }}", "{{ x.y.z }}", "{% for a, b in [1] %}{% endfor %}",
        "{{ range(10**9) }}", "{{ 9223372036854775807 + 1 }}", "{{ -(-9223372036854775807 - 1) }}",
        "{{ a[::-9223372036854775807] }}",
        "{{ range(1, 9223372036854775807, 9223372036854775807) | list }}"}) {
    auto out = Render(source, {{"a", json::array({1})}});
    (void)out;  // must not crash; most of these are errors
  }
  EXPECT_FALSE(Render("{{ range(100000000) | length }}").ok());
}

TEST(JinjaLimits, MutatedRealTemplatesNeverCrash) {
  // Deterministic mutations of the real templates: every outcome is fine except a crash.
  std::mt19937 rng(1234);
  const std::string pieces[] = {"{{",    "}}",     "{%",    "%}", "-", "(", ")",
                                "[",     "]",      "'",     "\"", "|", ".", " if ",
                                " for ", "endfor", "endif", "0",  ":", "~"};
  const json extra = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  int rendered = 0;
  for (const char* name : {"smollm2", "llama2_chat", "llama3_1_instruct"}) {
    const std::string original = TemplateSource(name);
    for (int i = 0; i < 300; ++i) {
      std::string source = original;
      for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0; --edits) {
        size_t at = rng() % (source.size() + 1);
        if (rng() % 2 == 0 && at < source.size()) {
          source.erase(at, 1 + rng() % 8);
        } else {
          source.insert(at, pieces[rng() % std::size(pieces)]);
        }
      }
      auto tmpl = ChatTemplate::Parse(source);
      if (!tmpl.ok()) {
        EXPECT_EQ(tmpl.status().code(), absl::StatusCode::kInvalidArgument);
        continue;
      }
      auto out = tmpl->Render(Conversation(), true, extra);
      if (out.ok())
        ++rendered;
      else
        EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  EXPECT_GT(rendered, 0);
}

}  // namespace
}  // namespace pagoda
