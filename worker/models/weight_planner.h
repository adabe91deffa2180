// Builds the slots of a WeightPlan (worker/models/model.h) in load order: a model definition
// starts a target per destination tensor and adds the checkpoint tensors that stack into it,
// narrowing each to the rows or columns this tensor-parallel rank holds.
//
//   Planner p(plan);
//   p.Target(&layer.qkv_proj);
//   Planner::Rows(p.Add(hf + "q_proj.weight", gg + "attn_q.weight", {q, hidden},
//                       WeightKind::kProjection, hidden), begin, local_rows);
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "worker/models/model.h"

namespace pagoda {

class Planner {
 public:
  explicit Planner(WeightPlan& plan) : plan_(plan) {}

  // Starts a new target (the next slots stack into it) and a new full tensor index.
  void Target(Tensor* tensor) { StartTarget({.tensor = tensor}); }
  void Target(LinearWeight* linear) { StartTarget({.linear = linear}); }

  // Adds a slot holding the whole tensor at `full_offset` elements into the current target's
  // unsharded tensor; Rows() and Cols() then narrow its window.
  WeightSlot& Add(std::string hf_name, std::string gguf_name, std::vector<int64_t> shape,
                  WeightKind kind, int64_t fan_in, int64_t full_offset = 0) {
    WeightSlot& slot = plan_.slots.emplace_back();
    slot.hf_name = std::move(hf_name);
    slot.gguf_name = std::move(gguf_name);
    slot.shape = std::move(shape);
    slot.kind = kind;
    slot.fan_in = fan_in;
    slot.num_rows = slot.padded_rows = slot.shape[0];
    slot.num_cols = slot.cols();
    slot.target = static_cast<int32_t>(plan_.targets.size()) - 1;
    slot.full_index = full_index_;
    slot.full_offset = full_offset;
    return slot;
  }

  static WeightSlot& Rows(WeightSlot& slot, int64_t begin, int64_t n) {
    slot.row_begin = begin;
    slot.num_rows = slot.padded_rows = n;
    return slot;
  }
  static WeightSlot& Cols(WeightSlot& slot, int64_t begin, int64_t n) {
    slot.col_begin = begin;
    slot.num_cols = n;
    return slot;
  }

  // Passes over a target another rank holds whole (expert parallelism): its checkpoint tensors
  // `hf_names` are expected but not loaded here, and the full tensor index moves past it, so
  // that the later tensors' dummy weights are the same whatever this rank holds.
  void SkipTarget(std::initializer_list<std::string> hf_names) {
    for (const std::string& name : hf_names) plan_.elsewhere_hf.insert(name);
    ++full_index_;
  }

  WeightPlan& plan() { return plan_; }

 private:
  void StartTarget(WeightTarget target) {
    plan_.targets.push_back(target);
    ++full_index_;
  }

  WeightPlan& plan_;
  uint64_t full_index_ = 0;
};

}  // namespace pagoda
