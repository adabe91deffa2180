#include "worker/internal/nccl.h"

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "common/shared_library.h"

namespace pagoda::internal {
namespace {

// Every entry point of `api` from `library`; false (and the reason in `error`) at the first
// missing one.
bool ResolveAll(void* library, NcclApi& api, std::string& error) {
  return ResolveSymbol(library, "ncclGetVersion", api.get_version, error) &&
         ResolveSymbol(library, "ncclGetUniqueId", api.get_unique_id, error) &&
         ResolveSymbol(library, "ncclCommInitRankConfig", api.comm_init_rank_config, error) &&
         ResolveSymbol(library, "ncclCommGetAsyncError", api.comm_get_async_error, error) &&
         ResolveSymbol(library, "ncclCommDestroy", api.comm_destroy, error) &&
         ResolveSymbol(library, "ncclCommAbort", api.comm_abort, error) &&
         ResolveSymbol(library, "ncclAllReduce", api.all_reduce, error) &&
         ResolveSymbol(library, "ncclAllGather", api.all_gather, error) &&
         ResolveSymbol(library, "ncclGetErrorString", api.get_error_string, error) &&
         ResolveSymbol(library, "ncclGetLastError", api.get_last_error, error);
}

}  // namespace

std::vector<std::string> NcclLibraryNames() {
  return LibraryNames("PAGODA_NCCL_LIBRARY",
                      {absl::StrCat("libnccl.so.", NCCL_MAJOR), "libnccl.so"});
}

absl::StatusOr<NcclApi> OpenNccl(const std::vector<std::string>& names) {
  return LoadFirstLibrary<NcclApi>(
      names,
      [](void* library, NcclApi& api, std::string& error) {
        if (!ResolveAll(library, api, error)) return false;
        // The structs the headers describe (ncclConfig_t, ncclUniqueId) are a major version's
        // ABI.
        if (const ncclResult_t result = api.get_version(&api.version); result != ncclSuccess) {
          error = absl::StrCat("ncclGetVersion failed: ", static_cast<int>(result));
          return false;
        }
        if (api.version / 10000 != NCCL_MAJOR) {
          error = absl::StrCat("NCCL version code ", api.version,
                               ", but this build has the headers of NCCL ", NCCL_MAJOR, ".x");
          return false;
        }
        return true;
      },
      "NCCL could not be loaded for the nccl communicator",
      "put the CUDA toolkit's NCCL (or the nvidia-nccl wheel's lib) on LD_LIBRARY_PATH, or name "
      "the library in PAGODA_NCCL_LIBRARY");
}

absl::StatusOr<const NcclApi*> LoadNccl() {
  static absl::once_flag once;
  static absl::StatusOr<NcclApi>* loaded = nullptr;  // never freed: used until exit
  absl::call_once(once, [] { loaded = new absl::StatusOr<NcclApi>(OpenNccl(NcclLibraryNames())); });
  if (!loaded->ok()) return loaded->status();
  return &**loaded;
}

}  // namespace pagoda::internal
