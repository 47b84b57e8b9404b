// A client of the server's API (docs/api.md): JSON calls, streamed uploads and downloads
// with a bearer token. Errors carry the server's own one-line message.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"

namespace wharf {

struct ApiOptions {
  long connect_timeout_seconds = 10;
  long timeout_seconds = 0;  // whole call; 0: none (uploads of big archives)
};

class ApiClient {
 public:
  /// `server`: "http://host:port" (the store's URL); `token` may be empty for open routes.
  /// A CA bundle for https can be given in $WHARF_CA_FILE.
  ApiClient(std::string server, std::string token, ApiOptions options = {});
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  /// `method` `path` (e.g. "/api/v1/fecs") with an optional JSON body; the answer's body
  /// on 2xx, else an error with the server's message.
  Result<std::string> Call(const std::string& method, const std::string& path,
                           const std::string& json_body = "");
  /// POSTs files as multipart/form-data fields (name, file path), streamed from disk.
  Result<std::string> Upload(const std::string& path,
                             const std::vector<std::pair<std::string, std::string>>& files);

  /// POSTs the file at `file` as the raw body (Content-Length, `content_type`), streamed.
  Result<std::string> PostFile(const std::string& path, const std::string& file,
                               const std::string& content_type);
  /// GETs `path` into the new file `dest`; refuses a body over `max_bytes`. On an error
  /// answer, the server's message (the file then holds nothing useful).
  Status Download(const std::string& path, const std::string& dest, uint64_t max_bytes);

  const std::string& server() const { return server_; }

 private:
  struct Impl;
  Result<std::string> Finish(const std::string& url, long status, int curl_code,
                             const std::string& body, const char* curl_message);
  std::unique_ptr<Impl> impl_;
  std::string server_;
  std::string token_;
  ApiOptions options_;
};

/// The error kind a refused HTTP status means (401/403 kRejected, 404 kNotFound, ...).
ErrorCode ErrorCodeOfStatus(long status);

}  // namespace wharf
