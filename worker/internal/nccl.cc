#include "worker/internal/nccl.h"

#include <dlfcn.h>

#include <cstdlib>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace pagoda::internal {
namespace {

// Resolves `name` into `fn`; false (and the reason in `error`) when the library lacks it.
template <typename Fn>
bool Resolve(void* library, const char* name, Fn& fn, std::string& error) {
  dlerror();
  void* symbol = dlsym(library, name);
  if (symbol == nullptr) {
    const char* reason = dlerror();
    error = absl::StrCat("symbol ", name, " is missing: ", reason != nullptr ? reason : "null");
    return false;
  }
  fn = reinterpret_cast<Fn>(symbol);
  return true;
}

// Every entry point of `api` from `library`; false (and the reason in `error`) at the first
// missing one.
bool ResolveAll(void* library, NcclApi& api, std::string& error) {
  return Resolve(library, "ncclGetVersion", api.get_version, error) &&
         Resolve(library, "ncclGetUniqueId", api.get_unique_id, error) &&
         Resolve(library, "ncclCommInitRankConfig", api.comm_init_rank_config, error) &&
         Resolve(library, "ncclCommGetAsyncError", api.comm_get_async_error, error) &&
         Resolve(library, "ncclCommDestroy", api.comm_destroy, error) &&
         Resolve(library, "ncclCommAbort", api.comm_abort, error) &&
         Resolve(library, "ncclAllReduce", api.all_reduce, error) &&
         Resolve(library, "ncclAllGather", api.all_gather, error) &&
         Resolve(library, "ncclGetErrorString", api.get_error_string, error) &&
         Resolve(library, "ncclGetLastError", api.get_last_error, error);
}

}  // namespace

std::vector<std::string> NcclLibraryNames() {
  if (const char* path = std::getenv("PAGODA_NCCL_LIBRARY"); path != nullptr && *path != 0) {
    return {path};
  }
  return {absl::StrCat("libnccl.so.", NCCL_MAJOR), "libnccl.so"};
}

absl::StatusOr<NcclApi> OpenNccl(const std::vector<std::string>& names) {
  std::vector<std::string> failures;
  for (const std::string& name : names) {
    // Never closed: communicators and their threads live as long as the process.
    void* library = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      const char* reason = dlerror();
      failures.push_back(absl::StrCat(name, " (", reason != nullptr ? reason : "not found", ")"));
      continue;
    }
    NcclApi api;
    std::string error;
    if (!ResolveAll(library, api, error)) {
      failures.push_back(absl::StrCat(name, " (", error, ")"));
      continue;
    }
    // The structs the headers describe (ncclConfig_t, ncclUniqueId) are a major version's ABI.
    if (const ncclResult_t result = api.get_version(&api.version); result != ncclSuccess) {
      failures.push_back(
          absl::StrCat(name, " (ncclGetVersion failed: ", static_cast<int>(result), ")"));
      continue;
    }
    if (api.version / 10000 != NCCL_MAJOR) {
      failures.push_back(absl::StrCat(name, " (NCCL version code ", api.version,
                                      ", but this build has the headers of NCCL ", NCCL_MAJOR,
                                      ".x)"));
      continue;
    }
    return api;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "NCCL could not be loaded for the nccl communicator: tried ", absl::StrJoin(failures, ", "),
      "; put the CUDA toolkit's NCCL (or the nvidia-nccl wheel's lib) on LD_LIBRARY_PATH, or "
      "name the library in PAGODA_NCCL_LIBRARY"));
}

absl::StatusOr<const NcclApi*> LoadNccl() {
  static absl::once_flag once;
  static absl::StatusOr<NcclApi>* loaded = nullptr;  // never freed: used until exit
  absl::call_once(once, [] { loaded = new absl::StatusOr<NcclApi>(OpenNccl(NcclLibraryNames())); });
  if (!loaded->ok()) return loaded->status();
  return &**loaded;
}

}  // namespace pagoda::internal
