// CUDA graphs: the work a callback queues on the current stream (kernels/cuda/stream.h), captured
// once and replayed with one launch. A graph bakes in every kernel's arguments — the addresses
// of its buffers, its sizes — so what changes between replays must live in device memory the
// graph reads (ModelRunner's decode graphs read their batch metadata from buffers of fixed
// address and size). While this thread captures, nothing may allocate or synchronize: the
// kernels/cuda/ allocations refuse (FailedPrecondition), and a grown buffer's old storage — whose
// address an earlier graph may hold — is never freed then. Host-only (no CUDA headers); a build
// without CUDA answers FailedPrecondition.
//
//   cuda::ScopedStream current(stream.get());  // the legacy default stream cannot be captured
//   ASSIGN_OR_RETURN(cuda::DeviceGraph graph,
//                    cuda::DeviceGraph::Capture([&] { return model->Forward(context, out); }));
//   RETURN_IF_ERROR(graph.Launch());  // the same work again, on the current stream
#pragma once

#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

struct CUgraphExec_st;  // the CUDA runtime's instantiated graph: cudaGraphExec_t

namespace pagoda::kernels::cuda {

class DeviceGraph {
 public:
  DeviceGraph() = default;  // empty: Launch() is FailedPrecondition

  /// Captures what `body` queues on the current stream (thread-local capture mode: other
  /// threads' CUDA calls are unaffected) and instantiates it. FailedPrecondition when the current
  /// stream is the legacy default one; `body`'s own error, or CUDA's when the capture was
  /// invalidated (something in it synchronized), otherwise. Either way the stream is out of
  /// capture mode when it returns.
  static absl::StatusOr<DeviceGraph> Capture(absl::FunctionRef<absl::Status()> body);

  /// Queues the captured work on the current stream.
  absl::Status Launch() const;

  bool empty() const { return exec_ == nullptr; }

 private:
  std::shared_ptr<CUgraphExec_st> exec_;
};

/// True while this thread is inside DeviceGraph::Capture's body.
bool CapturingGraph();

}  // namespace pagoda::kernels::cuda
