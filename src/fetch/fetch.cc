#include "fetch/fetch.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>

#include "base/file.h"

namespace wharf {
namespace {

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Where a transfer's bytes go (a consumer), with a limit.
struct Sink {
  const std::function<Status(const char*, size_t)>* consume = nullptr;
  uint64_t max_bytes = 0;
  uint64_t written = 0;
  bool over_limit = false;
  Status write_error;
  const std::function<void(uint64_t)>* on_progress = nullptr;
  // A resumed transfer: the bytes before resume_from were handed over already. A server
  // that ignores the Range request sends them again; they are skipped.
  CURL* curl = nullptr;
  uint64_t resume_from = 0;
  bool status_seen = false;
  uint64_t skip = 0;
  const std::function<void(uint64_t)>* on_bytes = nullptr;
};

using Clock = std::chrono::steady_clock;

// One transfer's deadline (shared by a Stream's resumes); `ms` 0: none.
struct Deadline {
  uint64_t ms = 0;
  Clock::time_point at;
  uint64_t bytes = 0;  // the size it was computed from
  bool fixed = false;  // unknown_size_seconds, not from a size

  static Deadline For(const TransferDeadline& d, uint64_t bytes) {
    Deadline out;
    // At most a year: steady_clock counts nanoseconds (a 64 GiB bound at 1 B/s would overflow).
    out.ms = std::min<uint64_t>(DeadlineMs(d, bytes), uint64_t{366} * 86400 * 1000);
    out.at = Clock::now() + std::chrono::milliseconds(out.ms);
    out.bytes = bytes;
    return out;
  }
  static Deadline Fixed(long seconds) {
    Deadline out;
    out.ms = seconds > 0 ? static_cast<uint64_t>(seconds) * 1000 : 0;
    out.at = Clock::now() + std::chrono::milliseconds(out.ms);
    out.fixed = true;
    return out;
  }
  // What is left, at least 1 ms (0 means "no timeout" to curl); 0 when there is no deadline.
  long RemainingMs() const {
    if (ms == 0) return 0;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at - Clock::now()).count();
    return static_cast<long>(std::max<int64_t>(left, 1));
  }
  bool Passed() const { return ms > 0 && Clock::now() >= at - std::chrono::milliseconds(20); }
};

std::string Seconds(uint64_t ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ms) / 1000.0);
  return text;
}

Error DeadlineError(const std::string& url, const Deadline& deadline, const TransferDeadline& rule,
                    uint64_t received) {
  std::string how = deadline.fixed ? "fixed for a file of unknown size"
                                   : std::to_string(rule.base_seconds) + " s + " + std::to_string(deadline.bytes) +
                                         " bytes at " + std::to_string(rule.floor_bytes_per_second) + " bytes/s";
  return {ErrorCode::kTimedOut,
          url + ": not done within its deadline of " + Seconds(deadline.ms) + " (" + how + "), " +
              std::to_string(received) + (deadline.fixed ? "" : " of " + std::to_string(deadline.bytes)) +
              " bytes received; the mirror is too slow (a slower link needs a lower floor rate)"};
}

size_t OnData(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  size_t n = size * count, taken = n;
  if (sink->resume_from > 0 && !sink->status_seen) {
    sink->status_seen = true;
    long status = 0;
    curl_easy_getinfo(sink->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200) sink->skip = sink->resume_from;  // the whole file again
  }
  if (sink->skip > 0) {
    size_t drop = static_cast<size_t>(std::min<uint64_t>(n, sink->skip));
    sink->skip -= drop;
    data += drop;
    n -= drop;
    if (n == 0) return taken;
  }
  if (sink->written + n > sink->max_bytes) {
    sink->over_limit = true;
    return 0;  // makes curl fail with CURLE_WRITE_ERROR
  }
  if (auto ok = (*sink->consume)(data, n); !ok) {
    sink->write_error = ok;
    return 0;
  }
  sink->written += n;
  if (sink->on_bytes && *sink->on_bytes) (*sink->on_bytes)(n);
  if (sink->on_progress && *sink->on_progress) (*sink->on_progress)(sink->written);
  return taken;
}

bool IsFileUrl(const std::string& url) { return url.rfind("file://", 0) == 0; }

}  // namespace

uint64_t DeadlineMs(const TransferDeadline& deadline, uint64_t bytes) {
  if (deadline.floor_bytes_per_second == 0) return 0;
  uint64_t base = static_cast<uint64_t>(std::max(deadline.base_seconds, 0L)) * 1000;
  // bytes * 1000 / floor without overflow for any size a store may declare
  uint64_t floor = deadline.floor_bytes_per_second;
  return base + bytes / floor * 1000 + bytes % floor * 1000 / floor;
}

struct Fetcher::Impl {
  std::unique_ptr<CURL, CurlDeleter> curl;
  FetchOptions options;
  std::function<void(uint64_t)> on_bytes;
};

Fetcher::Fetcher(FetchOptions options) : impl_(std::make_unique<Impl>()) {
  GlobalInitOnce();
  impl_->curl.reset(curl_easy_init());
  impl_->options = options;
}

Fetcher::~Fetcher() = default;

static Status Transfer(CURL* curl, const FetchOptions& options, const std::string& url, Sink& sink,
                       FetchStats& stats, const Deadline& deadline, const std::string& range = "") {
  char error_text[CURL_ERROR_SIZE] = "";
  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_text);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https,file");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, options.connect_timeout_seconds);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, options.low_speed_bytes_per_second);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, options.low_speed_seconds);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, deadline.RemainingMs());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "wharf-agent/0.1");
  if (!range.empty()) curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
  uint64_t before = sink.written;
  sink.curl = curl;
  sink.status_seen = false;
  sink.skip = 0;
  CURLcode code = curl_easy_perform(curl);
  ++stats.requests;
  stats.bytes += sink.written - before;
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  // A range of a file must come as asked; a resumed download may come whole (skipped above).
  if (!range.empty() && !IsFileUrl(url) && status == 200 && sink.resume_from == 0)
    return Fail(ErrorCode::kUnsupported, url + ": the server ignores Range requests");
  if (sink.skip > 0)
    return Fail(ErrorCode::kCorrupt, url + ": sent again whole, it is shorter than before; "
                                           "the store changed under the download, sync again");
  if (sink.over_limit)
    return Fail(ErrorCode::kCorrupt, url + ": larger than the " + std::to_string(sink.max_bytes) +
                                         " bytes declared; the store holds other bytes than "
                                         "were signed (republish, or check the mirror)");
  if (!sink.write_error) return sink.write_error;
  if (code == CURLE_OPERATION_TIMEDOUT && deadline.Passed())
    return std::unexpected(DeadlineError(url, deadline, options.deadline, sink.written));
  if (code == CURLE_FILE_COULDNT_READ_FILE)
    return Fail(ErrorCode::kNotFound, url + ": no such file in the store");
  if (code != CURLE_OK)
    return Fail(ErrorCode::kUnavailable, url + ": " +
                                             (error_text[0] ? error_text : curl_easy_strerror(code)));
  if (!IsFileUrl(url) && status == 404)
    return Fail(ErrorCode::kNotFound, url + ": no such file in the store (HTTP 404)");
  if (!IsFileUrl(url) && status != 200 && status != 206)
    return Fail(ErrorCode::kUnavailable, url + ": the server answered HTTP " + std::to_string(status));
  return {};
}

Result<std::string> Fetcher::Get(const std::string& url, uint64_t max_bytes) {
  return GetBody(url, max_bytes, false);
}

Result<std::string> Fetcher::Probe(const std::string& url, uint64_t max_bytes) {
  return GetBody(url, max_bytes, true);
}

Result<std::string> Fetcher::GetBody(const std::string& url, uint64_t max_bytes, bool unknown_size) {
  const TransferDeadline& rule = impl_->options.deadline;
  Deadline deadline = !unknown_size ? Deadline::For(rule, max_bytes)
                      : rule.floor_bytes_per_second == 0 ? Deadline()  // deadlines are off
                                                         : Deadline::Fixed(rule.unknown_size_seconds);
  std::string body;
  std::function<Status(const char*, size_t)> append = [&](const char* data, size_t size) -> Status {
    body.append(data, size);
    return {};
  };
  Sink sink;
  sink.consume = &append;
  sink.max_bytes = max_bytes;
  sink.on_bytes = &impl_->on_bytes;
  WHARF_TRY(Transfer(impl_->curl.get(), impl_->options, url, sink, stats_, deadline));
  return body;
}

Result<uint64_t> Fetcher::Stream(const std::string& url, uint64_t max_bytes,
                                 const std::function<Status(const char*, size_t)>& consume,
                                 const std::function<void(uint64_t)>& on_progress) {
  Sink sink;
  sink.consume = &consume;
  sink.max_bytes = max_bytes;
  sink.on_progress = &on_progress;
  sink.on_bytes = &impl_->on_bytes;
  const FetchOptions& options = impl_->options;
  // One deadline for the file, resumes included: a mirror that cuts and trickles cannot
  // stretch it.
  Deadline deadline = Deadline::For(options.deadline, max_bytes);
  Status done = Transfer(impl_->curl.get(), options, url, sink, stats_, deadline);
  for (int attempt = 1; !done && attempt <= options.resume_attempts; ++attempt) {
    // Only a cut transfer is worth continuing; a refusal or a missing file is final.
    if (done.error().code != ErrorCode::kUnavailable || IsFileUrl(url) || sink.written == 0 ||
        sink.written >= max_bytes)
      break;
    if (deadline.ms > 0 && Clock::now() + std::chrono::seconds(1 << (attempt - 1)) >= deadline.at) {
      done = std::unexpected(DeadlineError(url, deadline, options.deadline, sink.written));
      break;
    }
    Pause(1 << (attempt - 1));
    ++stats_.resumed;
    sink.resume_from = sink.written;
    done = Transfer(impl_->curl.get(), options, url, sink, stats_, deadline, std::to_string(sink.written) + "-");
  }
  WHARF_TRY(done);
  return sink.written;
}

Result<FileDigest> Fetcher::Download(const std::string& url, const std::string& path,
                                     uint64_t max_bytes,
                                     const std::function<void(uint64_t)>& on_progress, bool want_hash) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return IoError("create", path);
  Sha256 hash;
  auto got = Stream(url, max_bytes, [&](const char* data, size_t size) -> Status {
    WHARF_TRY(WriteAll(fd.get(), data, size, path));
    if (want_hash) hash.Update(data, size);
    return {};
  }, on_progress);
  if (!got) return std::unexpected(got.error());
  return FileDigest{*got, want_hash ? hash.HexDigest() : ""};
}

Status Fetcher::FetchRange(const std::string& url, int fd, const std::string& path, uint64_t offset,
                           uint64_t size) {
  if (size == 0) return {};
  uint64_t at = offset;  // a sparse copy: the bytes land where they are in the remote file
  std::function<Status(const char*, size_t)> place = [&](const char* data, size_t n) -> Status {
    WHARF_TRY(WriteAllAt(fd, data, n, at, path));
    at += n;
    return {};
  };
  Sink sink;
  sink.consume = &place;
  sink.max_bytes = size;
  sink.on_bytes = &impl_->on_bytes;
  std::string range = std::to_string(offset) + "-" + std::to_string(offset + size - 1);
  Deadline deadline = Deadline::For(impl_->options.deadline, size);  // the bytes requested
  WHARF_TRY(Transfer(impl_->curl.get(), impl_->options, url, sink, stats_, deadline, range));
  if (sink.written != size)
    return Fail(ErrorCode::kCorrupt, url + ": a range request returned " + std::to_string(sink.written) +
                                         " bytes, not " + std::to_string(size) + "; check the mirror");
  return {};
}

void Fetcher::set_deadline(const TransferDeadline& deadline) { impl_->options.deadline = deadline; }
const TransferDeadline& Fetcher::deadline() const { return impl_->options.deadline; }
void Fetcher::set_on_bytes(std::function<void(uint64_t)> on_bytes) { impl_->on_bytes = std::move(on_bytes); }

void Fetcher::Pause(int seconds) {
  if (impl_->options.sleep_seconds)
    impl_->options.sleep_seconds(seconds);
  else
    ::sleep(static_cast<unsigned>(seconds));
}

std::string JoinUrl(const std::string& base, const std::string& path) {
  std::string url = base;
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url + "/" + path;
}

}  // namespace wharf
