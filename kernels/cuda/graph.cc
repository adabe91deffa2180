#include "kernels/cuda/graph.h"

#include <cuda_runtime.h>

#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/stream.h"

namespace pagoda::kernels::cuda {
namespace {

thread_local bool capturing = false;

}  // namespace

bool CapturingGraph() { return capturing; }

absl::StatusOr<DeviceGraph> DeviceGraph::Capture(absl::FunctionRef<absl::Status()> body) {
  const cudaStream_t stream = CurrentStream();
  if (stream == nullptr) {
    return absl::FailedPreconditionError(
        "cuda graph capture needs a stream of its own (ScopedStream): the legacy default stream "
        "cannot be captured");
  }
  if (capturing) {
    return absl::FailedPreconditionError("cuda graph capture inside another capture");
  }
  absl::Status status = internal::CudaStatus(
      cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin a graph capture");
  if (!status.ok()) return status;
  capturing = true;
  status = body();
  capturing = false;
  // Always ended, so that the stream leaves capture mode whatever happened inside.
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
  if (status.ok()) status = internal::CudaStatus(ended, "end the graph capture");
  cudaGetLastError();  // an invalidated capture's error is not the next call's
  if (!status.ok()) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    return status;
  }
  cudaGraphExec_t exec = nullptr;
  status = internal::CudaStatus(cudaGraphInstantiate(&exec, graph, 0), "instantiate the graph");
  cudaGraphDestroy(graph);  // the instantiated graph keeps what it needs
  if (!status.ok()) return status;
  DeviceGraph captured;
  captured.exec_ =
      std::shared_ptr<CUgraphExec_st>(exec, [](cudaGraphExec_t e) { cudaGraphExecDestroy(e); });
  // Uploaded now, so that the first replay costs what every later one does.
  status = internal::CudaStatus(cudaGraphUpload(exec, stream), "upload the graph");
  if (!status.ok()) return status;
  return captured;
}

absl::Status DeviceGraph::Launch() const {
  if (exec_ == nullptr) return absl::FailedPreconditionError("launch of an empty cuda graph");
  return internal::CudaStatus(cudaGraphLaunch(exec_.get(), CurrentStream()), "launch the graph");
}

}  // namespace pagoda::kernels::cuda
