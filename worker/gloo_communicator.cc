#include "worker/gloo_communicator.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "gloo/allgather.h"
#include "gloo/allreduce.h"
#include "gloo/common/error.h"
#include "gloo/math.h"
#include "gloo/rendezvous/context.h"
#include "gloo/rendezvous/store.h"
#include "gloo/transport/tcp/device.h"

namespace pagoda {
namespace {

// Carries a RendezvousStore error through Gloo's rendezvous code, which only knows exceptions.
class StoreError : public std::exception {
 public:
  explicit StoreError(absl::Status status)
      : status_(std::move(status)), what_(status_.ToString()) {}
  const char* what() const noexcept override { return what_.c_str(); }
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
  std::string what_;
};

// gloo::rendezvous::Store over a RendezvousStore, every key under `prefix`.
class GlooStoreAdapter final : public gloo::rendezvous::Store {
 public:
  GlooStoreAdapter(RendezvousStore* store, std::string prefix, absl::Duration timeout)
      : store_(store), prefix_(std::move(prefix)), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    absl::Status status = store_->Set(prefix_ + key, std::string(data.begin(), data.end()));
    if (!status.ok()) throw StoreError(std::move(status));
  }

  std::vector<char> get(const std::string& key) override {
    absl::StatusOr<std::string> value = store_->Get(prefix_ + key, timeout_);
    if (!value.ok()) throw StoreError(value.status());
    return std::vector<char>(value->begin(), value->end());
  }

  void wait(const std::vector<std::string>& keys) override { Wait(keys, timeout_); }

  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    Wait(keys, absl::FromChrono(timeout));
  }

 private:
  void Wait(const std::vector<std::string>& keys, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    for (size_t i = 0; i < keys.size(); ++i) {
      const absl::Duration left =
          i == 0 ? timeout : std::max(deadline - absl::Now(), absl::ZeroDuration());
      absl::StatusOr<std::string> value = store_->Get(prefix_ + keys[i], left);
      if (!value.ok()) throw StoreError(value.status());
    }
  }

  RendezvousStore* store_;
  const std::string prefix_;
  const absl::Duration timeout_;
};

// Runs a Gloo call, turning whatever it throws into a Status prefixed with `what`.
template <typename Fn>
absl::Status RunGloo(std::string_view what, Fn&& fn) {
  try {
    fn();
    return absl::OkStatus();
  } catch (const StoreError& e) {
    return absl::Status(e.status().code(),
                        absl::StrCat(std::string(what), ": ", e.status().message()));
  } catch (const gloo::IoException& e) {
    // Gloo's I/O errors: "Timed out waiting ... for recv", "Connect timeout", "Connection
    // closed by peer", "Connection refused", ...
    const std::string message = absl::StrCat(std::string(what), ": ", e.what());
    if (absl::StrContains(absl::AsciiStrToLower(e.what()), "timed out") ||
        absl::StrContains(absl::AsciiStrToLower(e.what()), "timeout")) {
      return absl::DeadlineExceededError(message);
    }
    return absl::UnavailableError(message);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(std::string(what), ": ", e.what()));
  }
}

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(std::shared_ptr<gloo::Context> context, std::chrono::milliseconds timeout)
      : context_(std::move(context)),
        timeout_(timeout),
        bcube_((context_->size & (context_->size - 1)) == 0) {}

  int32_t rank() const override { return context_->rank; }
  int32_t size() const override { return context_->size; }
  std::string_view backend() const override { return "gloo"; }

  absl::Status AllReduceSum(float* data, int64_t count) override {
    RETURN_IF_ERROR(CheckAllReduceArguments(data, count));
    if (!broken_.ok()) return broken_;
    if (count == 0) return absl::OkStatus();
    broken_ = RunGloo(absl::StrCat("gloo all-reduce of ", count, " floats on rank ", rank()), [&] {
      gloo::AllreduceOptions options(context_);
      options.setOutput(data, static_cast<size_t>(count));
      options.setReduceFunction(
          static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
      // For a power-of-two group, bcube exchanges each peer's data directly (one round
      // for 2 ranks): 8x lower latency than the ring's reduce-scatter + all-gather on the
      // small, latency-bound reductions of a decode step (docs/performance.md).
      if (bcube_) options.setAlgorithm(gloo::AllreduceOptions::Algorithm::BCUBE);
      options.setTag(next_tag_++);
      options.setTimeout(timeout_);
      gloo::allreduce(options);
    });
    return broken_;
  }

  absl::Status AllGather(const float* input, int64_t count, float* output) override {
    RETURN_IF_ERROR(CheckAllGatherArguments(input, count, output));
    if (!broken_.ok()) return broken_;
    if (count == 0) return absl::OkStatus();
    broken_ = RunGloo(absl::StrCat("gloo all-gather of ", count, " floats on rank ", rank()), [&] {
      gloo::AllgatherOptions options(context_);
      // Gloo only reads the input, but its buffer API takes a mutable pointer.
      options.setInput(const_cast<float*>(input), static_cast<size_t>(count));
      options.setOutput(output, static_cast<size_t>(count) * static_cast<size_t>(size()));
      options.setTag(next_tag_++);
      options.setTimeout(timeout_);
      gloo::allgather(options);
    });
    return broken_;
  }

 private:
  const std::shared_ptr<gloo::Context> context_;
  const std::chrono::milliseconds timeout_;
  const bool bcube_;  // the group's size is a power of two
  // Every rank issues the same collectives in the same order, so the tags agree.
  uint32_t next_tag_ = 0;
  absl::Status broken_;  // the first failure; the group is unusable after it
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(
    const GlooCommunicatorOptions& options, RendezvousStore* store) {
  RETURN_IF_ERROR(
      CheckGroupArguments("gloo", options.rank, options.size, store != nullptr, options.timeout));
  const std::chrono::milliseconds timeout = absl::ToChronoMilliseconds(options.timeout);
  std::shared_ptr<gloo::rendezvous::Context> context;
  const absl::Status status = RunGloo(
      absl::StrCat("rank ", options.rank, " of ", options.size, " joining the gloo group '",
                   options.prefix, "' from ", options.hostname),
      [&] {
        gloo::transport::tcp::attr attr;
        attr.hostname = options.hostname;
        std::shared_ptr<gloo::transport::Device> device = gloo::transport::tcp::CreateDevice(attr);
        auto joining = std::make_shared<gloo::rendezvous::Context>(options.rank, options.size);
        joining->setTimeout(timeout);
        GlooStoreAdapter adapter(store, options.prefix + "gloo/", options.timeout);
        joining->connectFullMesh(adapter, device);
        context = std::move(joining);
      });
  if (!status.ok()) return status;
  return std::unique_ptr<Communicator>(new GlooCommunicator(std::move(context), timeout));
}

}  // namespace pagoda
