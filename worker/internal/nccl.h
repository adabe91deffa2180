// NCCL for the nccl communicator (worker/nccl_communicator.cc), loaded with dlopen the first time a
// CUDA rank joins a group instead of linked: pagoda-worker of a CUDA build keeps starting on hosts
// without NCCL (a CPU-only machine, the CPU images, CI; docker_files_test checks its load-time
// libraries), and the GPU bundle (scripts/gpu-check.sh) carries no NCCL (218 MB). It loads
// $PAGODA_NCCL_LIBRARY if set, else libnccl.so.<major of the headers it was built with>, else
// libnccl.so, through the loader's path (LD_LIBRARY_PATH; on the device machine, the nvidia-nccl
// wheel that PyTorch ships). Only CUDA builds have it (it needs nccl.h).
//
//   ASSIGN_OR_RETURN(const internal::NcclApi* nccl, internal::LoadNccl());
//   ncclUniqueId id;
//   if (ncclResult_t r = nccl->get_unique_id(&id); r != ncclSuccess) ...
#pragma once

#include <nccl.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pagoda::internal {

/// The entry points the communicator uses, with the types of nccl.h.
struct NcclApi {
  decltype(&ncclGetVersion) get_version = nullptr;
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRankConfig) comm_init_rank_config = nullptr;
  decltype(&ncclCommGetAsyncError) comm_get_async_error = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclCommAbort) comm_abort = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclAllGather) all_gather = nullptr;
  decltype(&ncclGetErrorString) get_error_string = nullptr;
  decltype(&ncclGetLastError) get_last_error = nullptr;
  /// ncclGetVersion's code of the loaded library (major * 10000 + minor * 100 + patch).
  int version = 0;
};

/// Loads the library once per process (later calls return the first outcome). FailedPrecondition
/// naming every file tried and dlerror's reason when none loads, a symbol is missing, or the
/// library's major version is not the headers' (NCCL_MAJOR).
absl::StatusOr<const NcclApi*> LoadNccl();

/// The files LoadNccl tries, in order: $PAGODA_NCCL_LIBRARY alone when it is set and not empty,
/// else libnccl.so.<NCCL_MAJOR> then libnccl.so.
std::vector<std::string> NcclLibraryNames();

/// LoadNccl's work without the cache: the first of `names` that loads and has every entry point
/// (each library found stays loaded). For tests; the communicator calls LoadNccl.
absl::StatusOr<NcclApi> OpenNccl(const std::vector<std::string>& names);

}  // namespace pagoda::internal
