#include "fetch/api_client.h"

#include <curl/curl.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>

namespace wharf {

struct ApiClient::Impl {
  CURL* curl = nullptr;
  ~Impl() {
    if (curl) curl_easy_cleanup(curl);
  }
};

namespace {

// An answer of the API is JSON for a command or an agent: never more than this (a fleet of
// thousands with their histories fits many times over). Above it the transfer stops.
constexpr size_t kMaxAnswerBytes = 64u << 20;

size_t Collect(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  if (body->size() + size * count > kMaxAnswerBytes) return 0;  // CURLE_WRITE_ERROR
  body->append(data, size * count);
  return size * count;
}

}  // namespace

ErrorCode ErrorCodeOfStatus(long status) {
  switch (status) {
    case 400: case 413: return ErrorCode::kInvalidArgument;
    case 401: case 403: return ErrorCode::kRejected;
    case 404: return ErrorCode::kNotFound;
    case 409: return ErrorCode::kAlreadyExists;
    case 422: return ErrorCode::kCorrupt;
    case 501: return ErrorCode::kUnsupported;
    case 502: case 503: case 504: return ErrorCode::kUnavailable;
    default: return ErrorCode::kIo;
  }
}

ApiClient::ApiClient(std::string server, std::string token, ApiOptions options)
    : impl_(std::make_unique<Impl>()), server_(std::move(server)), token_(std::move(token)),
      options_(options) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  while (server_.ends_with("/")) server_.pop_back();
  impl_->curl = curl_easy_init();
}

ApiClient::~ApiClient() = default;

Result<std::string> ApiClient::Finish(const std::string& url, long status, int curl_code,
                                      const std::string& body, const char* curl_message) {
  if (curl_code == CURLE_WRITE_ERROR && body.size() + (1u << 20) > kMaxAnswerBytes)
    return Fail(ErrorCode::kCorrupt, url + ": the answer is longer than " + std::to_string(kMaxAnswerBytes >> 20) +
                                         " MiB; refusing it (is this wharf's server?)");
  if (curl_code != CURLE_OK)
    return Fail(ErrorCode::kUnavailable, "cannot reach " + server_ + " (" + curl_message +
                                             "); check --server or WHARF_SERVER, and that `wharf serve` runs");
  if (status >= 200 && status < 300) return body;
  std::string message;
  try {
    auto j = nlohmann::json::parse(body);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) message = j["error"];
  } catch (const std::exception&) {
  }
  if (message.empty()) message = url + ": HTTP " + std::to_string(status);
  return Fail(ErrorCodeOfStatus(status), message);
}

namespace {

struct Prepared {
  curl_slist* headers = nullptr;
  ~Prepared() { curl_slist_free_all(headers); }
};

void Common(CURL* curl, const std::string& url, const std::string& token, const ApiOptions& options,
            std::string& body, Prepared& prepared) {
  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, options.connect_timeout_seconds);
  if (options.timeout_seconds > 0) curl_easy_setopt(curl, CURLOPT_TIMEOUT, options.timeout_seconds);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  if (const char* ca = std::getenv("WHARF_CA_FILE"); ca && *ca) curl_easy_setopt(curl, CURLOPT_CAINFO, ca);
  if (!token.empty())
    prepared.headers = curl_slist_append(prepared.headers, ("Authorization: Bearer " + token).c_str());
}

}  // namespace

Result<std::string> ApiClient::Call(const std::string& method, const std::string& path,
                                    const std::string& json_body) {
  std::string url = server_ + path;
  std::string body;
  Prepared prepared;
  CURL* curl = impl_->curl;
  Common(curl, url, token_, options_, body, prepared);
  if (method == "POST" || !json_body.empty()) {
    prepared.headers = curl_slist_append(prepared.headers, "Content-Type: application/json");
    prepared.headers = curl_slist_append(prepared.headers, "Expect:");  // small bodies: no round trip
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json_body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(json_body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, prepared.headers);
  CURLcode code = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  return Finish(url, status, code, body, curl_easy_strerror(code));
}

Result<std::string> ApiClient::Upload(const std::string& path,
                                      const std::vector<std::pair<std::string, std::string>>& files) {
  std::string url = server_ + path;
  std::string body;
  Prepared prepared;
  CURL* curl = impl_->curl;
  Common(curl, url, token_, options_, body, prepared);
  curl_mime* mime = curl_mime_init(curl);
  for (const auto& [name, file] : files) {
    curl_mimepart* part = curl_mime_addpart(mime);
    curl_mime_name(part, name.c_str());
    if (curl_mime_filedata(part, file.c_str()) != CURLE_OK) {
      curl_mime_free(mime);
      return Fail(ErrorCode::kIo, file + ": cannot read it for upload");
    }
  }
  curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime);
  // The server refuses (no right, too big) before the body is sent.
  prepared.headers = curl_slist_append(prepared.headers, "Expect: 100-continue");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, prepared.headers);
  CURLcode code = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  auto result = Finish(url, status, code, body, curl_easy_strerror(code));
  curl_mime_free(mime);
  return result;
}

Result<std::string> ApiClient::PostFile(const std::string& path, const std::string& file,
                                        const std::string& content_type) {
  std::string url = server_ + path;
  std::FILE* in = std::fopen(file.c_str(), "rb");
  if (!in) return Fail(ErrorCode::kIo, file + ": cannot read it for upload");
  std::fseek(in, 0, SEEK_END);
  long size = std::ftell(in);
  std::rewind(in);
  std::string body;
  Prepared prepared;
  CURL* curl = impl_->curl;
  Common(curl, url, token_, options_, body, prepared);
  prepared.headers = curl_slist_append(prepared.headers, ("Content-Type: " + content_type).c_str());
  // The server refuses (no right, too big) before the body is sent.
  prepared.headers = curl_slist_append(prepared.headers, "Expect: 100-continue");
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_READDATA, in);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(size));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, prepared.headers);
  CURLcode code = curl_easy_perform(curl);
  std::fclose(in);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  return Finish(url, status, code, body, curl_easy_strerror(code));
}

namespace {

struct DownloadSink {
  std::FILE* out;
  uint64_t written = 0;
  uint64_t max_bytes;
  std::string error_body;  // an error answer is kept for its message, not written
  long* status;
  CURL* curl;
};

size_t WriteDownload(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<DownloadSink*>(user);
  size_t n = size * count;
  curl_easy_getinfo(sink->curl, CURLINFO_RESPONSE_CODE, sink->status);
  if (*sink->status < 200 || *sink->status >= 300) {
    if (sink->error_body.size() < 65536) sink->error_body.append(data, n);
    return n;
  }
  if (sink->written + n > sink->max_bytes) return 0;
  if (std::fwrite(data, 1, n, sink->out) != n) return 0;
  sink->written += n;
  return n;
}

}  // namespace

Status ApiClient::Download(const std::string& path, const std::string& dest, uint64_t max_bytes) {
  std::string url = server_ + path;
  std::FILE* out = std::fopen(dest.c_str(), "wbx");
  if (!out) return Fail(ErrorCode::kIo, dest + ": cannot create it for the download");
  std::string unused;
  Prepared prepared;
  CURL* curl = impl_->curl;
  Common(curl, url, token_, options_, unused, prepared);
  long status = 0;
  DownloadSink sink{out, 0, max_bytes, "", &status, curl};
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteDownload);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, prepared.headers);
  CURLcode code = curl_easy_perform(curl);
  bool closed = std::fclose(out) == 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (code == CURLE_WRITE_ERROR && sink.written + 1 > max_bytes)
    return Fail(ErrorCode::kCorrupt, url + ": the answer is longer than the " + std::to_string(max_bytes) + " bytes expected");
  auto finished = Finish(url, status, code, sink.error_body, curl_easy_strerror(code));
  if (!finished) return std::unexpected(finished.error());
  if (!closed) return Fail(ErrorCode::kIo, dest + ": cannot write the download");
  return {};
}

}  // namespace wharf
