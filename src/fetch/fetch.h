// The one HTTP client of wharf (libcurl): http://, https:// and file:// URLs, keep-alive
// across requests, size limits enforced while bytes arrive, and errors with kinds an
// agent acts on (kNotFound: the store answered "no such file"; kUnavailable: nobody
// answered, try the next mirror).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/error.h"
#include "crypto/sha256.h"

namespace wharf {

// How long one transfer may take, so that a mirror sending just above the low-speed limit
// costs bounded time: `base_seconds` (connect, first byte) + its size at the floor rate.
// The floor is what the slowest real link still beats: 4 kB/s is half of a 64 kbit/s line
// (8 kB/s), so a 3 MiB archive may take 30 + 768 s (the line itself needs 393 s; 10 Mbit/s:
// 2.5 s). A mirror trickling at 1.2 kB/s would hold it 43 minutes without the deadline.
struct TransferDeadline {
  long base_seconds = 30;
  uint64_t floor_bytes_per_second = 4096;  // 0: no deadline (stall detection only)
  long unknown_size_seconds = 60;          // a transfer whose size nothing declares (a probe)
};

/// base + bytes / floor, in milliseconds (0: no deadline, the floor is 0).
uint64_t DeadlineMs(const TransferDeadline& deadline, uint64_t bytes);

struct FetchOptions {
  TransferDeadline deadline;
  long connect_timeout_seconds = 10;
  long low_speed_bytes_per_second = 1024;  // abort a transfer slower than this ...
  long low_speed_seconds = 30;             // ... for this long
  int resume_attempts = 4;  // a cut download continues where it stopped, this many times
  std::function<void(int)> sleep_seconds;  // between attempts (default: sleep); tests pass a fake
};

struct FetchStats {
  uint64_t requests = 0;
  uint64_t bytes = 0;    // body bytes received
  uint64_t resumed = 0;  // downloads continued after a cut connection
};

/// REQUIRES: one thread at a time per Fetcher.
class Fetcher {
 public:
  explicit Fetcher(FetchOptions options = {});
  ~Fetcher();
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;

  // Every transfer has a deadline (TransferDeadline) from the size it is given: the signed
  // size or a bound (`max_bytes`, `size`). A Stream's resumes share its deadline. When it
  // passes: kTimedOut, saying the URL, the deadline and the bytes received.

  /// The body of `url`; refuses one longer than `max_bytes`.
  Result<std::string> Get(const std::string& url, uint64_t max_bytes);
  /// Get of a file whose size nothing declares (a generation probe): the fixed deadline
  /// `unknown_size_seconds`.
  Result<std::string> Probe(const std::string& url, uint64_t max_bytes);
  /// Hands the body of `url` to `consume`, in order, as it arrives (`consume` may block:
  /// the transfer waits; an error from it stops the transfer and is returned). Refuses more
  /// than `max_bytes`; returns how many came. `on_progress` (may be empty) sees the bytes so
  /// far. A transfer cut part-way (reset, stall, timeout) continues from where it stopped
  /// with a Range request, up to `resume_attempts` times with a growing pause; when a server
  /// then ignores Range and sends the whole file again, what `consume` had is skipped.
  Result<uint64_t> Stream(const std::string& url, uint64_t max_bytes,
                          const std::function<Status(const char*, size_t)>& consume,
                          const std::function<void(uint64_t)>& on_progress = {});
  /// Stream into the new file `path`, hashing it. The file is not synced: downloads are
  /// working copies (what they are unpacked into is made durable).
  /// Without `hash`, the digest's sha256 is empty (for a file checked piece by piece).
  Result<FileDigest> Download(const std::string& url, const std::string& path, uint64_t max_bytes,
                              const std::function<void(uint64_t)>& on_progress = {}, bool hash = true);

  /// Writes bytes [offset, offset + size) of `url` at the same offset of the open file
  /// `fd` (a sparse copy of the remote file). kUnsupported when the server ignores Range.
  Status FetchRange(const std::string& url, int fd, const std::string& path, uint64_t offset,
                    uint64_t size);

  const FetchStats& stats() const { return stats_; }
  void set_deadline(const TransferDeadline& deadline);
  const TransferDeadline& deadline() const;
  /// Called with each piece of body bytes as it arrives, on the transferring thread (empty:
  /// none); for a progress counter.
  void set_on_bytes(std::function<void(uint64_t)> on_bytes);
  /// Waits `seconds` between attempts (FetchOptions::sleep_seconds in tests).
  void Pause(int seconds);

 private:
  struct Impl;
  Result<std::string> GetBody(const std::string& url, uint64_t max_bytes, bool unknown_size);
  std::unique_ptr<Impl> impl_;
  FetchStats stats_;
};

/// "base" + "/" + "path", with exactly one slash.
std::string JoinUrl(const std::string& base, const std::string& path);

}  // namespace wharf
