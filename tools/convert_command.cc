#include "tools/convert_command.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/arg_parser.h"
#include "common/formats/llama2c.h"
#include "common/status_macros.h"

namespace pagoda {

int RunConvertCommand(int argc, const char* const* argv) {
  if (argc < 1 || std::string(argv[0]) != "llama2c") {
    const bool help =
        argc >= 1 && (std::string(argv[0]) == "--help" || std::string(argv[0]) == "-h");
    std::fputs(
        "Usage: pagoda convert llama2c --checkpoint FILE.bin --tokenizer FILE.bin --out DIR\n"
        "\nFormats: llama2c (Karpathy's llama2.c checkpoints and tokenizers).\n",
        help ? stdout : stderr);
    return help ? 0 : 2;
  }
  std::string checkpoint, tokenizer, out;
  ArgParser parser("pagoda convert llama2c",
                   "Write a Hugging Face model directory (config.json, model.safetensors, "
                   "tokenizer.json, tokenizer_config.json) from a llama2.c checkpoint.");
  parser.AddString("checkpoint", &checkpoint, "llama2.c checkpoint (.bin)", /*required=*/true);
  parser.AddString("tokenizer", &tokenizer, "llama2.c tokenizer (.bin)", /*required=*/true);
  parser.AddString("out", &out, "Output directory (created if missing)", /*required=*/true);
  absl::Status status = parser.Parse(argc - 1, argv + 1);
  if (absl::IsCancelled(status)) return 0;
  if (status.ok()) status = ConvertLlama2cModel(checkpoint, tokenizer, out);
  if (!status.ok()) {
    std::fprintf(stderr, "pagoda convert llama2c: %s\n", std::string(status.message()).c_str());
    return absl::IsInvalidArgument(status) ? 2 : 1;
  }
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace pagoda
