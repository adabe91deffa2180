// A small command-line parser for `pagoda` and the pagoda-router / pagoda-worker binaries: typed
// flags with defaults and help text, `--flag value` and `--flag=value` forms, `--x` / `--no-x`
// switch pairs, deprecated spellings that still work (with a warning naming the new one), and
// errors that name the flag.
//
//   ArgParser parser("pagoda generate", "Generate text offline.");
//   std::string model;
//   int64_t max_tokens = 16;
//   parser.AddString("model", &model, "Model directory", /*required=*/true);
//   parser.AddInt("max-tokens", &max_tokens, "Tokens to generate per prompt");
//   parser.AddDeprecatedAlias("max-new-tokens", "max-tokens");
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
  /// A switch pair, as Python's BooleanOptionalAction: --name sets *out, --no-name clears it;
  /// the last one given wins. --help shows the default (*out now) on --name.
  void AddBoolPair(const std::string& name, bool* out, const std::string& help);
  /// A flag that may be repeated; each occurrence appends its value.
  void AddStringList(const std::string& name, std::vector<std::string>* out,
                     const std::string& help);
  /// Positional arguments, in order.
  void AddPositional(const std::string& name, std::string* out, const std::string& help);
  /// An old spelling of the (already added) flag `name`, kept for one release: `--old_name`
  /// acts as `--name` does (and counts as `name` for WasSet), after a warning on stderr that
  /// names `--name`. --help lists it among the deprecated spellings.
  void AddDeprecatedAlias(const std::string& old_name, const std::string& name);

  /// Parses argv[0..argc) (argv[0] is NOT the program name). Unknown flags, missing values,
  /// malformed numbers and missing required flags are InvalidArgument naming the flag.
  /// `--help` prints Usage() to stdout and returns kCancelled.
  absl::Status Parse(int argc, const char* const* argv);
  /// True when the flag was given on the command line (under its name or a deprecated alias).
  bool WasSet(const std::string& name) const;
  std::string Usage() const;
  /// The deprecation warnings the last Parse() printed, one per alias used.
  const std::vector<std::string>& warnings() const { return warnings_; }

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
  struct Alias {
    std::string old_name;
    std::string name;
  };
  Flag* Find(const std::string& name);

  std::string program_;
  std::string description_;
  std::vector<Flag> flags_;
  std::vector<Flag> positionals_;
  std::vector<Alias> aliases_;
  std::vector<std::string> warnings_;
};

}  // namespace pagoda
