#include "server/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdarg>
#include <cstdio>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>

#include "base/strings.h"

namespace wharf::http {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string JsonEscape(std::string_view text) {
  std::string out;
  bool utf8 = IsValidUtf8(text);
  for (unsigned char c : text) {
    if (!utf8 && c >= 0x80) {
      out += '?';  // a client's bytes quoted in a message: keep the JSON valid
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

size_t Unescape(void*, MHD_Connection*, char* s) {
  std::string decoded = PercentDecode(s);
  std::memcpy(s, decoded.data(), decoded.size());
  s[decoded.size()] = '\0';
  return decoded.size();
}

MHD_Result CollectArgument(void* cls, MHD_ValueKind, const char* key, const char* value) {
  (*static_cast<std::map<std::string, std::string>*>(cls))[key] = value ? value : "";
  return MHD_YES;
}

std::string ClientAddress(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (!info || !info->client_addr) return "";
  char text[INET6_ADDRSTRLEN] = "";
  const sockaddr* addr = info->client_addr;
  if (addr->sa_family == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, text, sizeof text);
  else if (addr->sa_family == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, text, sizeof text);
  return text;
}

// A multipart/byteranges body: literal parts and file ranges, read with pread as sent.
struct Multipart {
  struct Segment {
    std::string text;
    uint64_t file_offset = 0;
    uint64_t length = 0;  // of the file range, when text is empty
  };
  std::shared_ptr<UniqueFd> file;
  std::vector<Segment> segments;
  uint64_t total = 0;

  static ssize_t Read(void* cls, uint64_t pos, char* buf, size_t max) {
    auto* self = static_cast<Multipart*>(cls);
    uint64_t base = 0;
    for (const auto& segment : self->segments) {
      uint64_t size = segment.text.empty() ? segment.length : segment.text.size();
      if (pos < base + size) {
        uint64_t inside = pos - base;
        size_t n = static_cast<size_t>(std::min<uint64_t>(max, size - inside));
        if (!segment.text.empty()) {
          std::memcpy(buf, segment.text.data() + inside, n);
          return static_cast<ssize_t>(n);
        }
        ssize_t got = ::pread(self->file->get(), buf, n, static_cast<off_t>(segment.file_offset + inside));
        return got > 0 ? got : MHD_CONTENT_READER_END_WITH_ERROR;
      }
      base += size;
    }
    return MHD_CONTENT_READER_END_OF_STREAM;
  }
  static void Free(void* cls) { delete static_cast<Multipart*>(cls); }
};

// 128 random bits from the kernel; empty when it has none to give.
std::string RandomBoundary() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    got += static_cast<size_t>(n);
  }
  return "wharf-" + HexEncode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

MHD_Response* MakeMhdResponse(Response& response) {
  if (!response.file)
    return MHD_create_response_from_buffer(response.body.size(), response.body.data(),
                                           MHD_RESPMEM_MUST_COPY);
  if (response.ranges.size() <= 1) {
    uint64_t first = response.ranges.empty() ? 0 : response.ranges[0].first;
    uint64_t length = response.ranges.empty() ? response.file_size : response.ranges[0].length;
    int fd = ::dup(response.file->get());  // libmicrohttpd closes what it is given
    if (fd < 0) return nullptr;
    MHD_Response* r = MHD_create_response_from_fd_at_offset64(length, fd, first);
    if (!r) ::close(fd);
    return r;
  }
  std::string boundary = RandomBoundary();
  if (boundary.empty()) return nullptr;
  auto* body = new Multipart;
  body->file = response.file;
  for (const auto& range : response.ranges) {
    body->segments.push_back({"\r\n--" + boundary + "\r\nContent-Type: " + response.content_type +
                                  "\r\nContent-Range: bytes " + std::to_string(range.first) + "-" +
                                  std::to_string(range.first + range.length - 1) + "/" +
                                  std::to_string(response.file_size) + "\r\n\r\n",
                              0, 0});
    body->segments.push_back({"", range.first, range.length});
  }
  body->segments.push_back({"\r\n--" + boundary + "--\r\n", 0, 0});
  for (const auto& s : body->segments) body->total += s.text.empty() ? s.length : s.text.size();
  if (body->total > response.file_size) {
    // The part headers would make the answer bigger than the file: send the file instead.
    delete body;
    response.ranges.clear();
    response.status = 200;
    return MakeMhdResponse(response);
  }
  response.content_type = "multipart/byteranges; boundary=" + boundary;
  MHD_Response* r = MHD_create_response_from_callback(body->total, 64 * 1024, &Multipart::Read,
                                                      body, &Multipart::Free);
  if (!r) delete body;
  return r;
}

MHD_Result AccessTrampoline(void* cls, MHD_Connection* connection, const char* url,
                            const char* method, const char*, const char* upload_data,
                            size_t* upload_data_size, void** context) {
  return static_cast<Server*>(cls)->Access(connection, url, method, upload_data, upload_data_size,
                                           context) == MHD_YES
             ? MHD_YES
             : MHD_NO;
}

void CompletedTrampoline(void* cls, MHD_Connection* connection, void** context,
                         MHD_RequestTerminationCode code) {
  static_cast<Server*>(cls)->Completed(connection, context, code == MHD_REQUEST_TERMINATED_COMPLETED_OK);
}

using Clock = std::chrono::steady_clock;

// libmicrohttpd's messages, at most 20 a minute: each slow client cut would print a line,
// and an attacker may not fill the log. What was dropped is counted in the next one.
void RateLimitedLog(void*, const char* format, va_list args) {
  static std::mutex mutex;
  static Clock::time_point window{};
  static int printed = 0;
  static uint64_t dropped = 0;
  std::lock_guard lock(mutex);
  auto now = Clock::now();
  if (now - window > std::chrono::minutes(1)) {
    window = now;
    printed = 0;
  }
  if (printed >= 20) {
    ++dropped;
    return;
  }
  ++printed;
  if (dropped > 0) std::fprintf(stderr, "wharf serve: (%llu more server messages not shown)\n",
                                static_cast<unsigned long long>(dropped));
  dropped = 0;
  std::fprintf(stderr, "wharf serve: ");
  std::vfprintf(stderr, format, args);
}

}  // namespace

// Every open connection with the deadline of what it is doing now. A connection waiting
// for its request header (new, or kept alive after an answer) is "pending": it must have
// sent the whole header by its deadline, and only so many may wait at once (the oldest is
// cut to make room, so a client that sends its header at once is always served). A body
// must arrive at a minimum rate. A reaper thread shuts down the sockets of overdue ones;
// libmicrohttpd then closes them as if the client had. libmicrohttpd tells CLOSED before
// it closes the descriptor (0.9.75 daemon.c: MHD_cleanup_connections and the failure path
// of new_connection_process_), and CLOSED takes the same mutex, so a descriptor shut down
// here is always still this connection's, never a reused number.
class Server::Tracker {
 public:
  struct Conn {
    int fd = -1;
    Clock::time_point deadline{};
    bool pending = false, body = false, cut = false;
    std::list<Conn*>::iterator pending_at, body_at;
  };

  explicit Tracker(const ServerOptions& options)
      : header_timeout_(std::chrono::seconds(options.header_timeout_seconds)),
        pending_limit_(options.pending_connection_limit),
        min_body_rate_(options.min_body_rate) {
    if (header_timeout_.count() > 0 || min_body_rate_ > 0) reaper_ = std::thread([this] { Reap(); });
  }
  ~Tracker() { StopReaper(); }

  void StopReaper() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (reaper_.joinable()) reaper_.join();
  }

  Conn* Started(int fd) {
    auto* conn = new Conn;
    conn->fd = fd;
    std::lock_guard lock(mutex_);
    if (pending_limit_ > 0 && pending_.size() >= pending_limit_) {
      Cut(*pending_.front());
      ++evicted_;
    }
    WaitForHeader(*conn);
    return conn;
  }

  void Closed(Conn* conn) {
    std::lock_guard lock(mutex_);
    Drop(*conn);
    delete conn;
  }

  /// The header is whole; `body` bytes are to come (0: none, an answer follows at once).
  void HeaderDone(Conn& conn, uint64_t body) {
    std::lock_guard lock(mutex_);
    Drop(conn);
    if (body == 0 || min_body_rate_ == 0 || conn.cut) return;
    // A declared length is the client's word: the route's limit caps it before it gets here,
    // and a week caps the sum, so no declared size overflows the clock.
    uint64_t seconds = std::min<uint64_t>(body / min_body_rate_, 7 * 86400);
    conn.deadline = Clock::now() + header_timeout_ + std::chrono::seconds(seconds);
    conn.body = true;
    conn.body_at = bodies_.insert(bodies_.end(), &conn);
  }

  void BodyDone(Conn& conn) {
    std::lock_guard lock(mutex_);
    Drop(conn);
  }

  /// The answer has gone out: the connection now waits for the next request's header.
  void RequestDone(Conn& conn) {
    std::lock_guard lock(mutex_);
    Drop(conn);
    if (!conn.cut) WaitForHeader(conn);
  }

  uint64_t late() const {
    std::lock_guard lock(mutex_);
    return late_;
  }
  uint64_t evicted() const {
    std::lock_guard lock(mutex_);
    return evicted_;
  }

 private:
  // REQUIRES: mutex_ held.
  void WaitForHeader(Conn& conn) {
    conn.deadline = Clock::now() + header_timeout_;
    conn.pending = true;
    conn.pending_at = pending_.insert(pending_.end(), &conn);
  }
  void Drop(Conn& conn) {
    if (conn.pending) pending_.erase(conn.pending_at);
    if (conn.body) bodies_.erase(conn.body_at);
    conn.pending = conn.body = false;
  }
  void Cut(Conn& conn) {
    Drop(conn);
    conn.cut = true;
    ::shutdown(conn.fd, SHUT_RDWR);
  }

  void Reap() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, std::chrono::milliseconds(250));
      auto now = Clock::now();
      // Pending connections are in the order of their deadlines.
      while (header_timeout_.count() > 0 && !pending_.empty() && pending_.front()->deadline < now) {
        Cut(*pending_.front());
        ++late_;
      }
      for (auto it = bodies_.begin(); it != bodies_.end();) {
        Conn* conn = *it++;
        if (conn->deadline < now) {
          Cut(*conn);
          ++late_;
        }
      }
    }
  }

  const std::chrono::seconds header_timeout_;
  const size_t pending_limit_;
  const uint64_t min_body_rate_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::list<Conn*> pending_, bodies_;
  uint64_t late_ = 0, evicted_ = 0;
  std::thread reaper_;
};

namespace {

Server::Tracker::Conn* TrackedConn(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return info ? static_cast<Server::Tracker::Conn*>(info->socket_context) : nullptr;
}

void NotifyConnection(void* cls, MHD_Connection* connection, void** socket_context,
                      MHD_ConnectionNotificationCode code) {
  auto* tracker = static_cast<Server::Tracker*>(cls);
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const MHD_ConnectionInfo* info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_context = info ? tracker->Started(info->connect_fd) : nullptr;
  } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
    tracker->Closed(static_cast<Server::Tracker::Conn*>(*socket_context));
    *socket_context = nullptr;
  }
}

// Collects a simple route's body in memory.
class BufferedExchange : public Exchange {
 public:
  explicit BufferedExchange(const Handler& handler) : handler_(handler) {}
  Status OnBody(std::string_view chunk) override {
    body_.append(chunk);
    return {};
  }
  Response Finish(Request& request) override { return handler_(request, body_); }

 private:
  const Handler& handler_;
  std::string body_;
};

// A handler that throws answers 500 instead of ending the server.
Response SafeFinish(Exchange& exchange, Request& request) {
  try {
    return exchange.Finish(request);
  } catch (const std::exception& e) {
    return Response::Error(500, "internal", std::string("internal error: ") + e.what());
  }
}

}  // namespace

std::optional<std::string> Request::Header(const char* name) const {
  const char* value = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, name);
  if (!value) return std::nullopt;
  return std::string(value);
}

Response Response::Json(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  if (!r.body.ends_with('\n')) r.body += '\n';
  return r;
}

Response Response::Error(int status, std::string_view code, std::string_view message) {
  return Json(status, "{\"error\": \"" + JsonEscape(message) + "\", \"code\": \"" +
                          JsonEscape(code) + "\"}");
}

int Response::StatusOf(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kAlreadyExists: return 409;
    case ErrorCode::kCorrupt:
    case ErrorCode::kRejected:
    case ErrorCode::kUnsafe: return 422;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kUnsupported: return 501;
    case ErrorCode::kIo: return 500;
    case ErrorCode::kTimedOut: return 504;
  }
  return 500;
}

Response Response::FromError(const wharf::Error& error) {
  static constexpr const char* kNames[] = {"invalid_argument", "not_found", "already_exists",
                                           "corrupt", "rejected", "unsafe", "unavailable", "io",
                                           "unsupported", "timed_out"};
  auto index = static_cast<size_t>(error.code);
  return Error(StatusOf(error.code), index < std::size(kNames) ? kNames[index] : "error",
               error.message);
}

uint64_t Response::BodyBytes() const {
  if (!file) return body.size();
  if (ranges.empty()) return file_size;
  uint64_t total = 0;
  for (const auto& r : ranges) total += r.length;
  return total;
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() + 0 && HexDigit(text[i + 1]) >= 0 &&
        HexDigit(text[i + 2]) >= 0) {
      char c = static_cast<char>(HexDigit(text[i + 1]) * 16 + HexDigit(text[i + 2]));
      out += c == '\0' ? '\x01' : c;
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::optional<std::vector<ByteRange>> ParseRange(std::string_view header, uint64_t size) {
  constexpr std::string_view kUnit = "bytes=";
  if (!header.starts_with(kUnit)) return std::nullopt;
  std::vector<ByteRange> ranges;
  auto number = [](std::string_view s, uint64_t& out) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    if (s.empty()) return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size();
  };
  for (const auto& spec : Split(std::string(header.substr(kUnit.size())), ',')) {
    size_t dash = spec.find('-');
    if (dash == std::string::npos) return std::nullopt;  // malformed: ignore the header
    std::string_view first_text = std::string_view(spec).substr(0, dash);
    std::string_view last_text = std::string_view(spec).substr(dash + 1);
    uint64_t first = 0, last = 0;
    bool has_first = number(first_text, first);
    bool has_last = number(last_text, last);
    if (!has_first) {
      if (!has_last || first_text.find_first_not_of(' ') != std::string_view::npos)
        return std::nullopt;
      if (last == 0 || size == 0) continue;  // "-0": nothing
      uint64_t length = std::min(last, size);
      ranges.push_back({size - length, length});
      continue;
    }
    if (!has_last && last_text.find_first_not_of(' ') != std::string_view::npos) return std::nullopt;
    if (has_last && last < first) return std::nullopt;
    if (first >= size) continue;  // unsatisfiable, others may be
    uint64_t end = has_last ? std::min(last, size - 1) : size - 1;
    ranges.push_back({first, end - first + 1});
  }
  if (ranges.size() > 64) return std::nullopt;  // a flood of tiny ranges: send it whole
  uint64_t asked = 0;
  for (const auto& r : ranges) {
    asked += r.length;
    if (asked > size) return std::nullopt;  // more than the file: send it once, whole
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.first < b.first; });
  std::vector<ByteRange> merged;
  for (const auto& r : ranges) {
    if (!merged.empty() && r.first <= merged.back().first + merged.back().length) {
      ByteRange& last = merged.back();
      last.length = std::max(last.first + last.length, r.first + r.length) - last.first;
    } else {
      merged.push_back(r);
    }
  }
  return merged;
}

void Router::Add(std::string method, std::string pattern, Handler handler, RouteOptions options) {
  Add(std::move(method), std::move(pattern), Gate(), std::move(handler), options);
}

void Router::Add(std::string method, std::string pattern, Gate gate, Handler handler,
                 RouteOptions options) {
  if (options.max_chunked_body == 0) options.max_chunked_body = std::min(options.max_body, kMaxChunkedBody);
  auto shared = std::make_shared<Handler>(std::move(handler));
  AddStreaming(std::move(method), std::move(pattern),
               [shared, gate = std::move(gate)](Request& request)
                   -> std::variant<std::unique_ptr<Exchange>, Response> {
                 if (gate) {
                   if (auto refused = gate(request)) return std::move(*refused);
                 }
                 return std::make_unique<BufferedExchange>(*shared);
               },
               options);
}

void Router::AddStreaming(std::string method, std::string pattern, ExchangeFactory factory,
                          RouteOptions options) {
  if (options.max_chunked_body == 0 || options.max_chunked_body > options.max_body)
    options.max_chunked_body = options.max_body;
  Route route{std::move(method), SplitPath(pattern), pattern, std::move(factory), options};
  routes_.push_back(std::move(route));
}

const Router::Route* Router::Match(Request& request, bool& path_known) const {
  std::vector<std::string> parts = SplitPath(request.path);
  path_known = false;
  for (const auto& route : routes_) {
    if (route.segments.size() != parts.size()) continue;
    std::map<std::string, std::string> params;
    bool ok = true;
    for (size_t i = 0; i < parts.size() && ok; ++i) {
      const std::string& seg = route.segments[i];
      if (seg.size() > 2 && seg.front() == '{' && seg.back() == '}')
        ok = !parts[i].empty() && (params[seg.substr(1, seg.size() - 2)] = parts[i], true);
      else
        ok = seg == parts[i];
    }
    if (!ok) continue;
    path_known = true;
    if (route.method != request.method) continue;
    request.params = std::move(params);
    return &route;
  }
  return nullptr;
}

struct Server::Context {
  Request request;
  const Router::Route* route = nullptr;
  std::unique_ptr<Exchange> exchange;
  std::optional<Response> ready;  // an answer waiting to be queued (error or slow result)
  uint64_t received = 0;
  uint64_t limit = 0;  // of the body: max_body, or max_chunked_body without a Content-Length
  Tracker::Conn* conn = nullptr;
  std::atomic<bool> working{false};  // a worker thread runs Finish
  struct Answered {
    std::string route;
    int status = 0;
    uint64_t bytes = 0;
  };
  std::optional<Answered> answered;  // what was queued, for the observer
};

Server::Server(Router router, RequestObserver observer)
    : router_(std::move(router)), observer_(std::move(observer)) {}

Server::~Server() { Stop(); }

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Router router,
                                              RequestObserver observer) {
  std::unique_ptr<Server> server(new Server(std::move(router), std::move(observer)));
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string port = std::to_string(options.port);
  if (::getaddrinfo(options.host.c_str(), port.c_str(), &hints, &found) != 0 || !found)
    return Fail(ErrorCode::kInvalidArgument,
                "--listen " + options.host + ": not an IP address; use e.g. 0.0.0.0:8080 or [::]:8080");
  sockaddr_storage addr{};
  std::memcpy(&addr, found->ai_addr, found->ai_addrlen);
  bool v6 = found->ai_family == AF_INET6;
  ::freeaddrinfo(found);

  // Each connection takes a descriptor, and one more while a file is sent: stay within the
  // limit with room for the store's and the database's own.
  unsigned connection_limit = options.connection_limit;
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
    uint64_t room = files.rlim_cur > 256 ? (files.rlim_cur - 128) / 2 : 64;
    connection_limit = static_cast<unsigned>(std::min<uint64_t>(connection_limit, room));
  }
  // Waiting connections may take half of them at most: the other half is for those that
  // have sent a request.
  ServerOptions tracked = options;
  if (tracked.pending_connection_limit == 0 || tracked.pending_connection_limit > connection_limit / 2)
    tracked.pending_connection_limit = std::max(1u, connection_limit / 2);
  server->tracker_ = std::make_unique<Tracker>(tracked);

  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG;
  if (v6) flags |= MHD_USE_IPv6;
  server->tls_ = !options.tls_cert_pem.empty();
  if (server->tls_) flags |= MHD_USE_TLS;
  std::vector<MHD_OptionItem> items = {
      {MHD_OPTION_EXTERNAL_LOGGER, reinterpret_cast<intptr_t>(&RateLimitedLog), nullptr},  // first
      {MHD_OPTION_THREAD_POOL_SIZE, static_cast<intptr_t>(options.threads), nullptr},
      {MHD_OPTION_CONNECTION_LIMIT, static_cast<intptr_t>(connection_limit), nullptr},
      {MHD_OPTION_PER_IP_CONNECTION_LIMIT, static_cast<intptr_t>(options.per_ip_connection_limit), nullptr},
      {MHD_OPTION_NOTIFY_CONNECTION, reinterpret_cast<intptr_t>(&NotifyConnection), server->tracker_.get()},
      {MHD_OPTION_CONNECTION_TIMEOUT, static_cast<intptr_t>(options.connection_timeout_seconds), nullptr},
      {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, nullptr},
      {MHD_OPTION_SOCK_ADDR, 0, &addr},
      {MHD_OPTION_NOTIFY_COMPLETED, reinterpret_cast<intptr_t>(&CompletedTrampoline), server.get()},
      {MHD_OPTION_UNESCAPE_CALLBACK, reinterpret_cast<intptr_t>(&Unescape), nullptr},
  };
  if (server->tls_) {
    items.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(options.tls_cert_pem.c_str())});
    items.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(options.tls_key_pem.c_str())});
  }
  items.push_back({MHD_OPTION_END, 0, nullptr});
  server->daemon_ = MHD_start_daemon(flags, options.port, nullptr, nullptr, &AccessTrampoline,
                                     server.get(), MHD_OPTION_ARRAY, items.data(), MHD_OPTION_END);
  if (!server->daemon_)
    return Fail(ErrorCode::kUnavailable,
                "cannot listen on " + options.host + ":" + port +
                    " (in use, or not an address of this machine); choose another --listen");
  const MHD_DaemonInfo* info = MHD_get_daemon_info(server->daemon_, MHD_DAEMON_INFO_BIND_PORT);
  server->port_ = info ? info->port : options.port;
  return server;
}

void Server::Stop() {
  if (!daemon_) return;
  MHD_quiesce_daemon(daemon_);
  while (workers_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  tracker_->StopReaper();
  MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
}

uint64_t Server::cut_late() const { return tracker_ ? tracker_->late() : 0; }
uint64_t Server::cut_evicted() const { return tracker_ ? tracker_->evicted() : 0; }

int Server::Queue(Context& context, Response response) {
  MHD_Response* r = MakeMhdResponse(response);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, response.content_type.c_str());
  for (const auto& [name, value] : response.headers)
    MHD_add_response_header(r, name.c_str(), value.c_str());
  MHD_Result queued = MHD_queue_response(context.request.connection,
                                         static_cast<unsigned>(response.status), r);
  MHD_destroy_response(r);
  // Counted when the answer has gone out (Completed): a download the client broke off
  // counts as a request but not as bytes served.
  bool head = context.request.method == "HEAD" || response.status == 304;
  context.answered = {context.route ? context.route->pattern : "static", response.status,
                      head ? 0 : response.BodyBytes()};
  return queued;
}

int Server::Access(MHD_Connection* connection, const char* url, const char* method,
                   const char* upload_data, size_t* upload_data_size, void** slot) {
  if (*slot == nullptr) {
    auto* context = new Context;
    *slot = context;
    Request& request = context->request;
    request.method = method;
    request.path = url;
    request.connection = connection;
    request.remote = ClientAddress(connection);
    MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &CollectArgument, &request.query);
    if (auto length = request.Header("Content-Length")) {
      uint64_t value = 0;
      auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), value);
      if (ec == std::errc() && end == length->data() + length->size()) request.content_length = value;
    }
    bool path_known = false;
    context->route = router_.Match(request, path_known);
    // The header is whole: from now on the body's deadline counts, if one comes.
    bool chunked = !request.content_length && request.Header("Transfer-Encoding");
    if (context->route)
      context->limit = chunked ? context->route->options.max_chunked_body : context->route->options.max_body;
    context->conn = TrackedConn(connection);
    if (context->conn)
      tracker_->HeaderDone(*context->conn, request.content_length ? std::min(*request.content_length, context->limit)
                                           : chunked                ? context->limit
                                                                    : 0);
    if (!context->route) {
      if ((request.method == "GET" || request.method == "HEAD") && !path_known && router_.fallback())
        return Queue(*context, router_.fallback()(request, ""));
      Response refused = path_known ? Response::Error(405, "method_not_allowed",
                                                      request.method + " is not allowed on " + request.path)
                                    : Response::Error(404, "not_found", request.path + ": no such route; the API is described in docs/api.md");
      return Queue(*context, std::move(refused));
    }
    const RouteOptions& options = context->route->options;
    if (request.content_length && *request.content_length > options.max_body)
      return Queue(*context, Response::Error(413, "too_large",
                                             "the body (" + HumanBytes(*request.content_length) +
                                                 ") is over this route's limit of " +
                                                 HumanBytes(options.max_body)));
    auto made = context->route->factory(request);
    if (auto* answer = std::get_if<Response>(&made)) return Queue(*context, std::move(*answer));
    context->exchange = std::move(std::get<std::unique_ptr<Exchange>>(made));
    return MHD_YES;
  }
  auto& context = *static_cast<Context*>(*slot);
  if (context.working) return MHD_YES;  // resumed spuriously; the worker is not done
  if (*upload_data_size > 0) {
    size_t size = *upload_data_size;
    *upload_data_size = 0;
    context.received += size;
    if (context.received > context.limit) return MHD_NO;  // chunked, too long: cut
    if (context.ready) return MHD_YES;  // already failed: drain
    if (auto fed = context.exchange->OnBody({upload_data, size}); !fed)
      context.ready = Response::FromError(fed.error());
    return MHD_YES;
  }
  if (context.conn) tracker_->BodyDone(*context.conn);
  if (context.ready) {
    Response answer = std::move(*context.ready);
    context.ready.reset();
    return Queue(context, std::move(answer));
  }
  if (!context.route->options.slow)
    return Queue(context, SafeFinish(*context.exchange, context.request));
  context.working = true;
  ++workers_;
  MHD_suspend_connection(connection);
  std::thread([this, &context, connection] {
    Response answer = SafeFinish(*context.exchange, context.request);
    context.ready = std::move(answer);
    context.working = false;
    MHD_resume_connection(connection);
    --workers_;
  }).detach();
  return MHD_YES;
}

void Server::Completed(MHD_Connection* connection, void** slot, bool whole) {
  auto* context = static_cast<Context*>(*slot);
  if (auto* conn = TrackedConn(connection)) tracker_->RequestDone(*conn);
  if (context && context->answered && observer_)
    observer_(context->answered->route, context->answered->status, whole ? context->answered->bytes : 0);
  delete context;
  *slot = nullptr;
}

}  // namespace wharf::http
