// A hostile router <-> worker message: the first byte picks a StepPlan (what a worker decodes)
// or a StepResult (what the router decodes); the rest is the protobuf on the wire.
#include <cstddef>
#include <cstdint>

#include "pagoda/internal/worker.pb.h"
#include "proto/step_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool plan = (data[0] & 1) == 0;
  ++data;
  --size;
  if (plan) {
    pagoda::internal::StepPlan proto;
    if (proto.ParseFromArray(data, static_cast<int>(size))) (void)pagoda::DecodeStepPlan(proto);
  } else {
    pagoda::internal::StepResult proto;
    if (proto.ParseFromArray(data, static_cast<int>(size))) (void)pagoda::DecodeStepResult(proto);
  }
  return 0;
}
