#include "base/clock.h"

#include <chrono>
#include <ctime>

namespace wharf {

int64_t SystemClock::Now() const { return static_cast<int64_t>(std::time(nullptr)); }

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace wharf
