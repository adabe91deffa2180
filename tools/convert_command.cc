#include "tools/convert_command.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/llama2c_tokenizer.h"
#include "common/status_macros.h"
#include "common/arg_parser.h"
#include "tools/convert_llama2c.h"

namespace pagoda {

absl::Status ConvertLlama2cModel(const std::string& checkpoint_path,
                                 const std::string& tokenizer_path, const std::string& out_dir) {
  ASSIGN_OR_RETURN(Llama2cHeader header, ReadLlama2cHeader(checkpoint_path));
  // Read the tokenizer before writing anything, so a bad tokenizer leaves no half directory.
  ASSIGN_OR_RETURN(Llama2cVocab vocab, ReadLlama2cTokenizer(tokenizer_path, header.vocab_size));
  ASSIGN_OR_RETURN(HfTokenizerFiles files, ConvertLlama2cTokenizer(vocab, header.seq_len));
  RETURN_IF_ERROR(ConvertLlama2cCheckpoint(checkpoint_path, out_dir));
  RETURN_IF_ERROR(WriteStringToFile(out_dir + "/tokenizer.json", files.tokenizer_json));
  return WriteStringToFile(out_dir + "/tokenizer_config.json", files.tokenizer_config_json);
}

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
