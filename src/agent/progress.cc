#include "agent/progress.h"

#include <unistd.h>

#include <cstdio>

#include "base/strings.h"

namespace wharf {

Progress::Progress(std::string what, uint64_t total)
    : what_(std::move(what)), total_(total), enabled_(::isatty(2) == 1),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

Progress::~Progress() {
  if (enabled_) std::fprintf(stderr, "\r\033[K");
}

void Progress::Update(uint64_t done) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_ < std::chrono::milliseconds(100) && done < total_) return;
  last_ = now;
  double seconds = std::chrono::duration<double>(now - start_).count();
  double rate = seconds > 0 ? done / seconds : 0;
  std::string eta = rate > 0 && total_ > done ? std::to_string(static_cast<long>((total_ - done) / rate)) + " s" : "-";
  std::fprintf(stderr, "\r\033[K%s: %s of %s, %s/s, ETA %s", what_.c_str(), HumanBytes(done).c_str(),
               HumanBytes(total_).c_str(), HumanBytes(static_cast<uint64_t>(rate)).c_str(), eta.c_str());
}

}  // namespace wharf
