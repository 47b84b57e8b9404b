// A thin RAII layer over libmicrohttpd: one daemon (epoll, a small thread pool), a router
// of "METHOD /path/{param}" routes, request bodies streamed to a per-request handler, and
// responses from memory or from an open file (sent with sendfile, never read into memory).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/error.h"
#include "base/file.h"

struct MHD_Connection;
struct MHD_Daemon;

namespace wharf::http {

struct Request {
  std::string method;  // GET, HEAD, POST, ...
  std::string path;    // percent-decoded; %00 and other control bytes stay visible as bytes < 0x20
  std::string remote;  // client address, "1.2.3.4" or "::1"
  std::map<std::string, std::string> params;  // from the route's {name} parts
  std::map<std::string, std::string> query;   // decoded query arguments
  std::optional<uint64_t> content_length;
  MHD_Connection* connection = nullptr;

  /// A request header, case-insensitive.
  std::optional<std::string> Header(const char* name) const;
};

/// A byte range of a file, for 206 responses.
struct ByteRange {
  uint64_t first = 0;
  uint64_t length = 0;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // A file body instead of `body`: the whole file, one range (sendfile) or several
  // (multipart/byteranges, read in blocks).
  std::shared_ptr<UniqueFd> file;
  uint64_t file_size = 0;
  std::vector<ByteRange> ranges;  // empty: the whole file

  static Response Json(int status, std::string body);
  /// {"error": message, "code": code}; the text a CLI prints.
  static Response Error(int status, std::string_view code, std::string_view message);
  /// The status an error of this kind maps to (400, 404, 409, 422, 503, 500).
  static int StatusOf(ErrorCode code);
  static Response FromError(const wharf::Error& error);
  uint64_t BodyBytes() const;
};

/// Receives one request's body as it arrives, then answers. One per request.
class Exchange {
 public:
  virtual ~Exchange() = default;
  /// A chunk of the body; an error answers the request with it (the rest is not read).
  virtual Status OnBody(std::string_view chunk) = 0;
  /// The whole body has arrived.
  virtual Response Finish(Request& request) = 0;
};

/// Builds the exchange for a matched request, or answers at once (auth refused, too big).
using ExchangeFactory =
    std::function<std::variant<std::unique_ptr<Exchange>, Response>(Request& request)>;

/// A simple route: the body (at most `max_body` bytes) in memory, one answer.
using Handler = std::function<Response(Request& request, const std::string& body)>;

struct RouteOptions {
  uint64_t max_body = 1 << 20;
  bool slow = false;  // Finish runs on a worker thread, not on a server thread
};

class Router {
 public:
  /// `pattern`: "/api/v1/fecs/{fec}/heartbeat"; a {name} matches one non-empty segment.
  void Add(std::string method, std::string pattern, Handler handler, RouteOptions options = {});
  void AddStreaming(std::string method, std::string pattern, ExchangeFactory factory,
                    RouteOptions options = {});
  /// Requests no route matches (GET/HEAD of the store).
  void SetFallback(Handler handler) { fallback_ = std::move(handler); }

  struct Route {
    std::string method;
    std::vector<std::string> segments;
    std::string pattern;
    ExchangeFactory factory;
    RouteOptions options;
  };
  /// The route for `request` (filling its params), or null; `path_known` tells whether some
  /// route had the path with another method (405).
  const Route* Match(Request& request, bool& path_known) const;
  const Handler& fallback() const { return fallback_; }

 private:
  std::vector<Route> routes_;
  Handler fallback_;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  unsigned threads = 4;
  unsigned connection_limit = 4000;
  unsigned connection_timeout_seconds = 60;
  std::string tls_cert_pem;  // both set: HTTPS
  std::string tls_key_pem;
};

/// Called after each answered request: route pattern (or "static"), status, and the body
/// bytes when the answer went out whole (0 when the client broke off).
using RequestObserver = std::function<void(const std::string& route, int status, uint64_t bytes)>;

class Server {
 public:
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options, Router router,
                                               RequestObserver observer);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const { return port_; }
  /// Stops taking connections, waits for running slow work, stops the threads.
  void Stop();

  // libmicrohttpd's callbacks reach these.
  struct Context;
  int Access(MHD_Connection* connection, const char* url, const char* method,
             const char* upload_data, size_t* upload_data_size, void** context);
  void Completed(void** context, bool whole);

 private:
  Server(Router router, RequestObserver observer);
  int Queue(Context& context, Response response);

  Router router_;
  RequestObserver observer_;
  MHD_Daemon* daemon_ = nullptr;
  uint16_t port_ = 0;
  std::atomic<int> workers_{0};
  bool tls_ = false;
};

/// Parses a Range header against a file of `size` bytes: nullopt when absent or not
/// "bytes=" (serve whole), an empty vector when no range is satisfiable (416).
std::optional<std::vector<ByteRange>> ParseRange(std::string_view header, uint64_t size);

/// Percent-decodes `text`; %00 becomes byte 0x01 so a NUL can never cut a name short.
std::string PercentDecode(std::string_view text);

}  // namespace wharf::http
