#include "engine/static_batching.h"

#include <algorithm>
#include <deque>
#include <limits>

namespace pagoda {

void StaticBatching::Schedule(PlanBuilder& plan, int64_t /*num_in_flight_steps*/) {
  int64_t budget = std::numeric_limits<int64_t>::max() / 4;
  if (!registry_.running().empty()) {
    ScheduleRunning(plan, budget);
    return;
  }
  // A new fixed batch: whole prompts, each reserving its full length.
  std::deque<Sequence*>& waiting = registry_.waiting();
  for (auto it = waiting.begin(); it != waiting.end();) {
    Sequence* seq = *it;
    if (plan.num_seats() >= config_.max_num_seqs) break;
    if (seq->num_pending_tokens > 0) {
      ++it;
      continue;
    }
    const int64_t size = static_cast<int64_t>(seq->token_ids.size());
    const int64_t lookahead =
        std::max<int64_t>(0, seq->num_prompt_tokens + seq->params.max_tokens - size);
    if (!kv_.AllocateSlots(seq->handle, size, lookahead)) break;
    it = waiting.erase(it);
    registry_.InsertRunning(seq);
    MarkStarted(plan, seq->request);
    seq->num_computed_tokens = size;
    plan.Add(seq, 0, size, 1, false);
  }
}

}  // namespace pagoda
