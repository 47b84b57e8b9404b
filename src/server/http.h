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

/// Runs when the request header is complete, before any byte of the body is read: an answer
/// refuses the request (its body is never read), nullopt lets it through to the handler.
using Gate = std::function<std::optional<Response>(Request& request)>;

/// A chunked body (no Content-Length) on a buffered route may be at most this long.
inline constexpr uint64_t kMaxChunkedBody = 64 * 1024;

struct RouteOptions {
  uint64_t max_body = 1 << 20;
  bool slow = false;  // Finish runs on a worker thread, not on a server thread
  // The limit for a chunked body; 0: max_body. Router::Add sets min(max_body, kMaxChunkedBody).
  uint64_t max_chunked_body = 0;
};

class Router {
 public:
  /// `pattern`: "/api/v1/fecs/{fec}/heartbeat"; a {name} matches one non-empty segment.
  void Add(std::string method, std::string pattern, Handler handler, RouteOptions options = {});
  /// The same with a gate (authentication, say) that runs at header time: a refused request's
  /// body is never read nor buffered.
  void Add(std::string method, std::string pattern, Gate gate, Handler handler,
           RouteOptions options = {});
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
  unsigned connection_limit = 4000;  // lowered to what the descriptor limit allows
  unsigned connection_timeout_seconds = 60;  // idle: no byte either way
  // Against slow and many clients (0 turns each off, but see pending_connection_limit):
  unsigned header_timeout_seconds = 10;  // a request header must be whole this long after it began
  unsigned per_ip_connection_limit = 64;  // connections open at once from one address
  // Connections whose request header is not whole yet; past this the oldest is cut. At most
  // (and for 0) half the connection limit.
  unsigned pending_connection_limit = 1000;
  // A body must arrive at this average rate (bytes/s) after a grace of header_timeout_seconds.
  uint64_t min_body_rate = 16 * 1024;
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
  void Completed(MHD_Connection* connection, void** context, bool whole);
  class Tracker;  // each connection's deadline; cuts overdue and surplus waiting ones

  /// Connections cut so far for a late header or body, or to make room (for tests).
  uint64_t cut_late() const;
  uint64_t cut_evicted() const;

 private:
  Server(Router router, RequestObserver observer);
  int Queue(Context& context, Response response);

  Router router_;
  RequestObserver observer_;
  MHD_Daemon* daemon_ = nullptr;
  uint16_t port_ = 0;
  std::atomic<int> workers_{0};
  bool tls_ = false;
  std::unique_ptr<Tracker> tracker_;
};

/// Parses a Range header against a file of `size` bytes: nullopt when absent, malformed, not
/// "bytes=", of more than 64 ranges or of ranges that add up to more than the file (serve
/// whole, 200); an empty vector when no range is satisfiable (416); else the ranges sorted,
/// overlapping and adjacent ones merged.
std::optional<std::vector<ByteRange>> ParseRange(std::string_view header, uint64_t size);

/// Percent-decodes `text`; %00 becomes byte 0x01 so a NUL can never cut a name short.
std::string PercentDecode(std::string_view text);

}  // namespace wharf::http
