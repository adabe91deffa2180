// `pagoda generate`: offline batch inference over a model directory.
//
//   pagoda generate --model DIR [--load-format auto|dummy] (--prompt TEXT | --prompts-file F)
//                   [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]
//                   [--ignore-eos] [--output OUT.jsonl]
//
// Input lines are {"prompt": "..."} with optional per-line sampling fields (vLLM names);
// output lines are {"prompt", "prompt_token_ids", "token_ids", "text", "finish_reason"}.
#pragma once

namespace pagoda {

/// Runs the subcommand; argv excludes "pagoda generate". Returns the process exit code.
int RunGenerateCommand(int argc, const char* const* argv);

}  // namespace pagoda
