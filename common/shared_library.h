// Shared libraries loaded at run time (dlopen) instead of linked: the optional GPU libraries
// (cuBLAS, NCCL) that a CUDA build uses only on a host that has them, so that its binaries start
// everywhere. Each loader lists the files to try and resolves its entry points from the first
// that has them all; the error names every file tried and why it was passed over.
//
//   std::vector<std::string> names = LibraryNames("PAGODA_CUBLAS_LIBRARY", {"libcublas.so.13"});
//   ASSIGN_OR_RETURN(Api api, LoadFirstLibrary<Api>(names, [](void* library, Api& api,
//                                                              std::string& error) {
//     return ResolveSymbol(library, "cublasCreate_v2", api.create, error);
//   }, "cuBLAS could not be loaded for the device GEMM", "put ... on LD_LIBRARY_PATH"));
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace pagoda {

/// The value of `env_var` alone when it is set and not empty (the user's choice), else
/// `defaults`.
std::vector<std::string> LibraryNames(const char* env_var, std::vector<std::string> defaults);

/// dlopen(name, RTLD_NOW | RTLD_LOCAL), never closed (the libraries' handles and threads live
/// as long as the process); null with dlerror's reason in `error`.
void* OpenLibrary(const std::string& name, std::string& error);

/// The address of `name` in `library`; null with the reason in `error` ("symbol X is missing").
void* FindSymbol(void* library, const char* name, std::string& error);

/// fn <- the entry point `name` of `library`; false (and the reason in `error`) when it lacks it.
template <typename Fn>
bool ResolveSymbol(void* library, const char* name, Fn& fn, std::string& error) {
  void* symbol = FindSymbol(library, name, error);
  if (symbol == nullptr) return false;
  fn = reinterpret_cast<Fn>(symbol);
  return true;
}

/// The api of the first of `names` that opens and that `resolve` accepts (it fills the api and
/// returns true, or returns false with the reason in its `error`). FailedPrecondition
/// "<what>: tried A (reason), B (reason); <hint>" when none does.
template <typename Api>
absl::StatusOr<Api> LoadFirstLibrary(
    const std::vector<std::string>& names,
    absl::FunctionRef<bool(void* library, Api& api, std::string& error)> resolve,
    std::string_view what, std::string_view hint) {
  std::vector<std::string> failures;
  for (const std::string& name : names) {
    std::string error;
    void* library = OpenLibrary(name, error);
    Api api;
    if (library != nullptr && resolve(library, api, error)) return api;
    failures.push_back(absl::StrCat(name, " (", error, ")"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      std::string(what), ": tried ", absl::StrJoin(failures, ", "), "; ", std::string(hint)));
}

}  // namespace pagoda
