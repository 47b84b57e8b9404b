// GET and HEAD of the store's files: ETag / If-None-Match, Last-Modified /
// If-Modified-Since, single and multiple Range (with If-Range), content types, caching.
// Only regular files whose real path lies inside the store and has no hidden part (".wharf",
// temp and lock files all start with a dot) are ever served; no folder is listed.
#pragma once

#include <string>
#include <vector>

#include "server/http.h"

namespace wharf::http {

class StaticFiles {
 public:
  /// `root`: the store folder (resolved to its real path once).
  explicit StaticFiles(const std::string& root);
  Response Serve(const Request& request) const;

 private:
  std::string root_;  // real path, no trailing slash
};

/// The parts of `path` ("/a/b") when it is one a client may ask for: no empty, ".", ".." or
/// hidden part, no control byte or backslash, not a FEC's persistent data.
std::optional<std::vector<std::string>> ServableParts(std::string_view path);
bool IsServablePath(std::string_view path);
/// Whether the file at `parts` never changes (a published version's files, not the links
/// or deltas.json beside them): clients may cache it for good.
bool IsImmutable(const std::vector<std::string>& parts);
/// "Tue, 24 Nov 2026 10:00:00 GMT"
std::string HttpDate(int64_t epoch_seconds);
std::optional<int64_t> ParseHttpDate(std::string_view text);

}  // namespace wharf::http
