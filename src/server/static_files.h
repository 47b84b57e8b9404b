// GET and HEAD of the store's files: ETag / If-None-Match, Last-Modified /
// If-Modified-Since, single and multiple Range (with If-Range), content types, caching.
// Only regular files whose real path lies inside the store and has no hidden part (".wharf",
// temp and lock files all start with a dot) are ever served; no folder is listed.
#pragma once

#include <string>

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

/// Whether `path` ("/a/b") is one a client may ask for: no empty, ".", ".." or hidden part,
/// no control byte or backslash.
bool IsServablePath(std::string_view path);
/// "Tue, 24 Nov 2026 10:00:00 GMT"
std::string HttpDate(int64_t epoch_seconds);
std::optional<int64_t> ParseHttpDate(std::string_view text);

}  // namespace wharf::http
