// A small command-line parser for `pagoda` and the pagoda-router / pagoda-worker binaries: typed
// flags with defaults and help text, `--flag value` and `--flag=value` forms, and errors that
// name the flag.
//
//   ArgParser parser("pagoda generate", "Generate text offline.");
//   std::string model;
//   int64_t max_tokens = 16;
//   parser.AddString("model", &model, "Model directory", /*required=*/true);
//   parser.AddInt("max-tokens", &max_tokens, "Tokens to generate per prompt");
//   RETURN_IF_ERROR(parser.Parse(argc, argv));   // kCancelled after --help was printed
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace pagoda {

class ArgParser {
 public:
  ArgParser(std::string program, std::string description)
      : program_(std::move(program)), description_(std::move(description)) {}

  void AddString(const std::string& name, std::string* out, const std::string& help,
                 bool required = false);
  void AddInt(const std::string& name, int64_t* out, const std::string& help);
  void AddOptionalInt(const std::string& name, std::optional<int64_t>* out,
                      const std::string& help);
  void AddDouble(const std::string& name, double* out, const std::string& help);
  void AddBool(const std::string& name, bool* out, const std::string& help);  // a switch
  /// A flag that may be repeated; each occurrence appends its value.
  void AddStringList(const std::string& name, std::vector<std::string>* out,
                     const std::string& help);
  /// Positional arguments, in order.
  void AddPositional(const std::string& name, std::string* out, const std::string& help);

  /// Parses argv[0..argc) (argv[0] is NOT the program name). Unknown flags, missing values,
  /// malformed numbers and missing required flags are InvalidArgument naming the flag.
  /// `--help` prints Usage() to stdout and returns kCancelled.
  absl::Status Parse(int argc, const char* const* argv);
  /// True when the flag was given on the command line.
  bool WasSet(const std::string& name) const;
  std::string Usage() const;

 private:
  struct Flag {
    std::string name;
    std::string help;
    std::string default_text;
    bool takes_value = true;
    bool required = false;
    bool set = false;
    std::function<absl::Status(const std::string&)> apply;
  };
  Flag* Find(const std::string& name);

  std::string program_;
  std::string description_;
  std::vector<Flag> flags_;
  std::vector<Flag> positionals_;
};

}  // namespace pagoda
