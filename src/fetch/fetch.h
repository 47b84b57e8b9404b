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

struct FetchOptions {
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

  /// The body of `url`; refuses one longer than `max_bytes`.
  Result<std::string> Get(const std::string& url, uint64_t max_bytes);
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
  /// Waits `seconds` between attempts (FetchOptions::sleep_seconds in tests).
  void Pause(int seconds);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  FetchStats stats_;
};

/// "base" + "/" + "path", with exactly one slash.
std::string JoinUrl(const std::string& base, const std::string& path);

}  // namespace wharf
