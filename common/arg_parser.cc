#include "common/arg_parser.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pagoda {

void ArgParser::AddString(const std::string& name, std::string* out, const std::string& help,
                          bool required) {
  flags_.push_back({.name = name,
                    .help = help,
                    .default_text = out->empty() ? "" : *out,
                    .required = required,
                    .apply = [out](const std::string& v) {
                      *out = v;
                      return absl::OkStatus();
                    }});
}

void ArgParser::AddStringList(const std::string& name, std::vector<std::string>* out,
                              const std::string& help) {
  flags_.push_back(
      {.name = name, .help = help + " (repeatable)", .apply = [out](const std::string& v) {
         out->push_back(v);
         return absl::OkStatus();
       }});
}

void ArgParser::AddInt(const std::string& name, int64_t* out, const std::string& help) {
  flags_.push_back({.name = name,
                    .help = help,
                    .default_text = absl::StrCat(*out),
                    .apply = [out, name](const std::string& v) {
                      if (!absl::SimpleAtoi(v, out)) {
                        return absl::InvalidArgumentError(
                            absl::StrCat("--", name, " expects an integer, got '", v, "'"));
                      }
                      return absl::OkStatus();
                    }});
}

void ArgParser::AddOptionalInt(const std::string& name, std::optional<int64_t>* out,
                               const std::string& help) {
  flags_.push_back(
      {.name = name, .help = help, .default_text = "", .apply = [out, name](const std::string& v) {
         int64_t value = 0;
         if (!absl::SimpleAtoi(v, &value)) {
           return absl::InvalidArgumentError(
               absl::StrCat("--", name, " expects an integer, got '", v, "'"));
         }
         *out = value;
         return absl::OkStatus();
       }});
}

void ArgParser::AddDouble(const std::string& name, double* out, const std::string& help) {
  flags_.push_back({.name = name,
                    .help = help,
                    .default_text = absl::StrFormat("%g", *out),
                    .apply = [out, name](const std::string& v) {
                      if (!absl::SimpleAtod(v, out) || !std::isfinite(*out)) {
                        return absl::InvalidArgumentError(
                            absl::StrCat("--", name, " expects a number, got '", v, "'"));
                      }
                      return absl::OkStatus();
                    }});
}

void ArgParser::AddBool(const std::string& name, bool* out, const std::string& help) {
  flags_.push_back({.name = name,
                    .help = help,
                    .default_text = "",
                    .takes_value = false,
                    .apply = [out](const std::string&) {
                      *out = true;
                      return absl::OkStatus();
                    }});
}

void ArgParser::AddBoolPair(const std::string& name, bool* out, const std::string& help) {
  flags_.push_back({.name = name,
                    .help = help,
                    .default_text = *out ? "on" : "off",
                    .takes_value = false,
                    .apply = [out](const std::string&) {
                      *out = true;
                      return absl::OkStatus();
                    }});
  flags_.push_back({.name = "no-" + name,
                    .help = absl::StrCat("Turn --", name, " off"),
                    .default_text = "",
                    .takes_value = false,
                    .apply = [out](const std::string&) {
                      *out = false;
                      return absl::OkStatus();
                    }});
}

void ArgParser::AddDeprecatedAlias(const std::string& old_name, const std::string& name) {
  aliases_.push_back({.old_name = old_name, .name = name});
}

void ArgParser::AddPositional(const std::string& name, std::string* out, const std::string& help) {
  positionals_.push_back({.name = name,
                          .help = help,
                          .default_text = "",
                          .takes_value = true,
                          .required = true,
                          .apply = [out](const std::string& v) {
                            *out = v;
                            return absl::OkStatus();
                          }});
}

ArgParser::Flag* ArgParser::Find(const std::string& name) {
  for (Flag& flag : flags_) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

bool ArgParser::WasSet(const std::string& name) const {
  for (const Flag& flag : flags_) {
    if (flag.name == name) return flag.set;
  }
  return false;
}

absl::Status ArgParser::Parse(int argc, const char* const* argv) {
  warnings_.clear();
  size_t next_positional = 0;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(Usage().c_str(), stdout);
      return absl::CancelledError("help printed");
    }
    if (arg.rfind("--", 0) != 0) {
      if (next_positional >= positionals_.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat(program_, ": unexpected argument '", arg, "' (see --help)"));
      }
      Flag& positional = positionals_[next_positional++];
      positional.set = true;
      if (absl::Status s = positional.apply(arg); !s.ok()) return s;
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    for (const Alias& alias : aliases_) {
      if (alias.old_name != name) continue;
      warnings_.push_back(absl::StrCat(program_, ": warning: --", alias.old_name,
                                       " is deprecated and will be removed in the next release; "
                                       "use --",
                                       alias.name));
      std::fprintf(stderr, "%s\n", warnings_.back().c_str());
      name = alias.name;
      break;
    }
    Flag* flag = Find(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(program_, ": unknown flag --", name, " (see --help)"));
    }
    if (!flag->takes_value) {
      if (value.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
      value = "";
    } else if (!value.has_value()) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = argv[++i];
    }
    flag->set = true;
    if (absl::Status s = flag->apply(*value); !s.ok()) return s;
  }
  for (const Flag& positional : positionals_) {
    if (!positional.set) {
      return absl::InvalidArgumentError(
          absl::StrCat(program_, ": missing argument <", positional.name, "> (see --help)"));
    }
  }
  for (const Flag& flag : flags_) {
    if (flag.required && !flag.set) {
      return absl::InvalidArgumentError(
          absl::StrCat(program_, ": --", flag.name, " is required (see --help)"));
    }
  }
  return absl::OkStatus();
}

std::string ArgParser::Usage() const {
  std::string usage = absl::StrCat("Usage: ", program_);
  for (const Flag& p : positionals_) absl::StrAppend(&usage, " <", p.name, ">");
  absl::StrAppend(&usage, " [flags]\n\n", description_, "\n");
  for (const Flag& p : positionals_) {
    absl::StrAppend(&usage, absl::StrFormat("  %-32s %s\n", "<" + p.name + ">", p.help));
  }
  absl::StrAppend(&usage, "\nFlags:\n");
  for (const Flag& f : flags_) {
    std::string left = absl::StrCat("--", f.name, f.takes_value ? " VALUE" : "");
    std::string help = f.help;
    if (f.required) absl::StrAppend(&help, " (required)");
    if (!f.default_text.empty()) absl::StrAppend(&help, " [default: ", f.default_text, "]");
    absl::StrAppend(&usage, absl::StrFormat("  %-32s %s\n", left, help));
  }
  absl::StrAppend(&usage, absl::StrFormat("  %-32s %s\n", "--help", "Print this help"));
  if (!aliases_.empty()) {
    absl::StrAppend(&usage, "\nDeprecated spellings (removed in the next release):\n");
    for (const Alias& alias : aliases_) {
      absl::StrAppend(&usage, "  instead of --", alias.old_name, " use --", alias.name, "\n");
    }
  }
  return usage;
}

}  // namespace pagoda
