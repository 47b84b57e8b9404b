// Time comes in through a seam so that expiry and clock-floor rules are testable.
#pragma once

#include <cstdint>

namespace wharf {

class Clock {
 public:
  virtual ~Clock() = default;
  /// Seconds since the epoch, as this machine believes.
  virtual int64_t Now() const = 0;
};

class SystemClock : public Clock {
 public:
  int64_t Now() const override;
};

/// Milliseconds of a clock that never jumps (for timeouts and hold-offs, not dates).
int64_t MonotonicMs();

class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t now) : now_(now) {}
  int64_t Now() const override { return now_; }
  void Set(int64_t now) { now_ = now; }

 private:
  int64_t now_;
};

}  // namespace wharf
