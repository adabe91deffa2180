#include "tools/bench/progress_bar.h"

#include <algorithm>
#include <string>

namespace pagoda {
namespace {

constexpr int kWidth = 40;  // characters of the bar itself
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

}  // namespace

ProgressBar::ProgressBar(int64_t total, FILE* out, bool enabled)
    : total_(std::max<int64_t>(1, total)), out_(out), enabled_(enabled), start_(Clock::now()) {}

void ProgressBar::Advance(bool failed) {
  absl::MutexLock lock(&mu_);
  ++done_;
  failed_ += failed;
  if (Clock::now() - last_draw_ >= kRedrawInterval) DrawLocked();
}

void ProgressBar::Finish() {
  absl::MutexLock lock(&mu_);
  if (finished_) return;
  finished_ = true;
  if (!enabled_) return;
  DrawLocked();
  std::fputc('\n', out_);
  std::fflush(out_);
}

void ProgressBar::DrawLocked() {
  if (!enabled_) return;
  last_draw_ = Clock::now();
  const double elapsed_s = std::chrono::duration<double>(last_draw_ - start_).count();
  const int filled = static_cast<int>(kWidth * std::min(done_, total_) / total_);
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < kWidth) bar += '>';
  bar.resize(kWidth, ' ');
  std::fprintf(out_, "\r[%s] %lld/%lld requests", bar.c_str(), static_cast<long long>(done_),
               static_cast<long long>(total_));
  if (failed_ > 0) std::fprintf(out_, " (%lld failed)", static_cast<long long>(failed_));
  std::fprintf(out_, " %.1f s, %.2f req/s  ", elapsed_s,
               elapsed_s > 0 ? static_cast<double>(done_) / elapsed_s : 0.0);
  std::fflush(out_);
}

}  // namespace pagoda
