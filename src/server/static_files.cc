#include "server/static_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <ctime>

#include "base/strings.h"

namespace wharf::http {
namespace {

std::string ContentType(std::string_view path) {
  if (path.ends_with(".json")) return "application/json";
  if (path.ends_with(".zst")) return "application/zstd";
  if (path.ends_with(".sig") || path.ends_with(".pub") || path.ends_with(".txt") ||
      path.ends_with(".toml"))
    return "text/plain; charset=utf-8";
  if (path.ends_with(".html")) return "text/html; charset=utf-8";
  return "application/octet-stream";
}

bool EtagMatches(std::string_view header, const std::string& etag) {
  for (auto part : Split(header, ',')) {
    std::string_view tag = part;
    while (!tag.empty() && tag.front() == ' ') tag.remove_prefix(1);
    while (!tag.empty() && tag.back() == ' ') tag.remove_suffix(1);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
  }
  return false;
}

Response NotFound(const std::string& path) {
  return Response::Error(404, "not_found", path + ": no such file in the store");
}

}  // namespace

std::optional<std::vector<std::string>> ServableParts(std::string_view path) {
  if (path.size() < 2 || path.front() != '/') return std::nullopt;
  auto parts = Split(path.substr(1), '/');
  for (const auto& part : parts) {
    if (part.empty() || part.front() == '.') return std::nullopt;  // also "." and ".."
    for (unsigned char c : part)
      if (c < 0x20 || c == 0x7f || c == '\\') return std::nullopt;
  }
  // A FEC's persistent data is its own: served by the API to its agent and operators.
  if (parts.size() >= 3 && parts[0] == "fecs" && parts[2] == "data") return std::nullopt;
  return parts;
}

bool IsServablePath(std::string_view path) { return ServableParts(path).has_value(); }

bool IsImmutable(const std::vector<std::string>& parts) {
  // software/N/V/..., configuration/N/V/..., fecs/F/configuration/N/V/...
  bool in_version = ((parts[0] == "software" || parts[0] == "configuration") && parts.size() >= 4) ||
                    (parts[0] == "fecs" && parts.size() >= 6 && parts[2] == "configuration");
  return in_version && parts.back() != "deltas.json";
}

std::string HttpDate(int64_t epoch_seconds) {
  time_t t = static_cast<time_t>(epoch_seconds);
  tm utc{};
  ::gmtime_r(&t, &utc);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &utc);
  return buf;
}

std::optional<int64_t> ParseHttpDate(std::string_view text) {
  tm utc{};
  std::string copy(text);
  const char* end = ::strptime(copy.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &utc);
  if (!end || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(::timegm(&utc));
}

StaticFiles::StaticFiles(const std::string& root) {
  char real[PATH_MAX];
  root_ = ::realpath(root.c_str(), real) ? real : root;
}

Response StaticFiles::Serve(const Request& request) const {
  const std::string& path = request.path;
  auto parts = ServableParts(path);
  if (!parts) {
    bool hostile = path.find("..") != std::string::npos ||
                   path.find_first_of(std::string("\\\x01", 2)) != std::string::npos;
    if (hostile) return Response::Error(400, "bad_path", "bad path: no '..', NUL or '\\' parts");
    return NotFound(path);
  }
  std::string full = root_ + path;
  UniqueFd fd(::open(full.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) return NotFound(path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return NotFound(path);
  // Links (the human view) are followed only when the file really lies in the store.
  char real[PATH_MAX];
  std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
  ssize_t n = ::readlink(proc.c_str(), real, sizeof real - 1);
  if (n <= 0) return NotFound(path);
  std::string real_path(real, static_cast<size_t>(n));
  if (!real_path.starts_with(root_ + "/") || !IsServablePath(real_path.substr(root_.size())))
    return NotFound(path);

  int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  char etag_buf[80];
  std::snprintf(etag_buf, sizeof etag_buf, "\"%llx-%llx-%llx\"",
                static_cast<unsigned long long>(st.st_size), static_cast<unsigned long long>(mtime_ns),
                static_cast<unsigned long long>(st.st_ino));
  std::string etag = etag_buf;
  std::string last_modified = HttpDate(st.st_mtim.tv_sec);

  Response response;
  response.content_type = ContentType(path);
  response.headers = {{"ETag", etag}, {"Last-Modified", last_modified}, {"Accept-Ranges", "bytes"}};
  response.headers.emplace_back("Cache-Control",
                                IsImmutable(*parts) ? "public, max-age=31536000, immutable" : "no-cache");

  bool not_modified = false;
  if (auto inm = request.Header("If-None-Match")) {
    not_modified = EtagMatches(*inm, etag);
  } else if (auto ims = request.Header("If-Modified-Since")) {
    auto since = ParseHttpDate(*ims);
    not_modified = since && st.st_mtim.tv_sec <= *since;
  }
  if (not_modified) {
    response.status = 304;
    return response;
  }

  auto size = static_cast<uint64_t>(st.st_size);
  response.file = std::make_shared<UniqueFd>(std::move(fd));
  response.file_size = size;
  auto range_header = request.Header("Range");
  if (range_header) {
    if (auto if_range = request.Header("If-Range")) {
      bool fresh = if_range->starts_with("\"") || if_range->starts_with("W/")
                       ? *if_range == etag
                       : ParseHttpDate(*if_range) == st.st_mtim.tv_sec;
      if (!fresh) range_header.reset();
    }
  }
  if (range_header) {
    auto ranges = ParseRange(*range_header, size);
    if (ranges && ranges->empty()) {
      Response refused = Response::Error(416, "range_not_satisfiable",
                                         path + " has " + std::to_string(size) + " bytes");
      refused.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
      return refused;
    }
    if (ranges) {
      response.status = 206;
      response.ranges = std::move(*ranges);
      if (response.ranges.size() == 1) {
        const ByteRange& r = response.ranges[0];
        response.headers.emplace_back("Content-Range", "bytes " + std::to_string(r.first) + "-" +
                                                           std::to_string(r.first + r.length - 1) +
                                                           "/" + std::to_string(size));
      }
    }
  }
  return response;
}

}  // namespace wharf::http
