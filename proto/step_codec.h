// The wire encoding of one engine step: conversions between the plain structs of common/step.h
// and the pagoda.internal messages (router <-> worker), and between SamplingParams and
// pagoda.v1.SamplingParams (public API, and the sampling parameters inside a NewSequence).
//
// Encoding cannot fail and replaces the whole output message (its allocations are reused, so a
// caller may keep one message per RPC slot). Pairs of ints are flattened into packed repeated
// int32 fields ([a0, b0, a1, b1, ...]). Decoding checks what a message can carry but the structs
// cannot hold, or what no correct peer sends: odd-length pair arrays, per-token arrays of
// different lengths, negative counts, num_steps < 1. It answers InvalidArgument naming the field
// and the sequence, and never crashes on hostile input. It does not check a plan against a
// worker's state (StepRunner::Validate does) nor the range of sampling parameters (the caller
// runs SamplingParams::Validate()).
//
//   // router
//   internal::ExecuteRequest request;
//   EncodeStepPlan(plan, request.mutable_plan());
//   // worker
//   ASSIGN_OR_RETURN(StepPlan plan, DecodeStepPlan(request.plan()));
//   ASSIGN_OR_RETURN(StepResult result, runner.Apply(plan));
//   EncodeStepResult(result, response.mutable_result());
//   // public frontend
//   ASSIGN_OR_RETURN(SamplingParams params, DecodeSamplingParams(request.sampling()));
//   RETURN_IF_ERROR(params.Validate());
#pragma once

#include "absl/status/statusor.h"
#include "common/sampling_params.h"
#include "common/step/step.h"
#include "pagoda/internal/worker.pb.h"
#include "pagoda/v1/generation.pb.h"

namespace pagoda {

/// Sets every field of `out`, optional ones included; the seed only when `params` has one.
void EncodeSamplingParams(const SamplingParams& params, v1::SamplingParams* out);
/// Absent optional fields take SamplingParams' defaults; an absent seed stays unset.
absl::StatusOr<SamplingParams> DecodeSamplingParams(const v1::SamplingParams& proto);

void EncodeNewSequence(const NewSequence& seq, internal::NewSequence* out);
absl::StatusOr<NewSequence> DecodeNewSequence(const internal::NewSequence& proto);

void EncodeCachedSequence(const CachedSequence& seq, internal::CachedSequence* out);
absl::StatusOr<CachedSequence> DecodeCachedSequence(const internal::CachedSequence& proto);

void EncodeStepPlan(const StepPlan& plan, internal::StepPlan* out);
absl::StatusOr<StepPlan> DecodeStepPlan(const internal::StepPlan& proto);

void EncodeSequenceOutput(const SequenceOutput& output, internal::SequenceOutput* out);
absl::StatusOr<SequenceOutput> DecodeSequenceOutput(const internal::SequenceOutput& proto);

void EncodeStepResult(const StepResult& result, internal::StepResult* out);
absl::StatusOr<StepResult> DecodeStepResult(const internal::StepResult& proto);

}  // namespace pagoda
