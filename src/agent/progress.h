// A one-line progress report for long transfers, on a terminal only: bytes, rate, ETA.
// Redrawn at most ten times a second; cleared when done. Logs and pipes see nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace wharf {

class Progress {
 public:
  Progress(std::string what, uint64_t total);
  ~Progress();
  void Update(uint64_t done);

 private:
  std::string what_;
  uint64_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace wharf
