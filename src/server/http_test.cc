#include "server/http.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include "base/scratch_dir.h"
#include "fetch/api_client.h"
#include "fetch/fetch.h"
#include "server/static_files.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace wharf::http {
namespace {

std::vector<std::pair<uint64_t, uint64_t>> Pairs(const std::vector<ByteRange>& ranges) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& r : ranges) out.emplace_back(r.first, r.length);
  return out;
}

TEST(ParseRange, Forms) {
  using P = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(Pairs(*ParseRange("bytes=0-9", 100)), (P{{0, 10}}));
  EXPECT_EQ(Pairs(*ParseRange("bytes=90-", 100)), (P{{90, 10}}));
  EXPECT_EQ(Pairs(*ParseRange("bytes=-5", 100)), (P{{95, 5}}));
  EXPECT_EQ(Pairs(*ParseRange("bytes=-500", 100)), (P{{0, 100}}));
  EXPECT_EQ(Pairs(*ParseRange("bytes=50-1000", 100)), (P{{50, 50}}));
  EXPECT_EQ(Pairs(*ParseRange("bytes=0-0, 10-19", 100)), (P{{0, 1}, {10, 10}}));
  EXPECT_EQ(Pairs(*ParseRange("bytes=200-300, 5-5", 100)), (P{{5, 1}}));  // one satisfiable
  EXPECT_TRUE(ParseRange("bytes=100-", 100)->empty());                   // 416
  EXPECT_TRUE(ParseRange("bytes=-0", 100)->empty());
  EXPECT_FALSE(ParseRange("bytes=9-3", 100));    // malformed: ignored, whole file
  EXPECT_FALSE(ParseRange("bytes=a-3", 100));
  EXPECT_FALSE(ParseRange("items=0-3", 100));
  EXPECT_FALSE(ParseRange("bytes=3", 100));
}

TEST(ParseRange, MergesOverlappingAndAdjacentRanges) {
  using P = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(Pairs(*ParseRange("bytes=10-19, 0-4", 100)), (P{{0, 5}, {10, 10}}));  // sorted
  EXPECT_EQ(Pairs(*ParseRange("bytes=0-9, 5-14", 100)), (P{{0, 15}}));
  EXPECT_EQ(Pairs(*ParseRange("bytes=0-9, 10-19", 100)), (P{{0, 20}}));  // adjacent
  EXPECT_EQ(Pairs(*ParseRange("bytes=20-29, 0-9, 10-14", 100)), (P{{0, 15}, {20, 10}}));
  EXPECT_EQ(Pairs(*ParseRange("bytes=0-9, 2-3", 100)), (P{{0, 10}}));  // inside
  EXPECT_EQ(Pairs(*ParseRange("bytes=0-49, -50", 100)), (P{{0, 100}}));  // the whole file, once
}

TEST(ParseRange, RangesAddingUpToMoreThanTheFileAreIgnored) {
  EXPECT_FALSE(ParseRange("bytes=0-,0-", 100));
  EXPECT_FALSE(ParseRange("bytes=0-59,40-99", 100));  // 120 bytes asked of 100
  EXPECT_FALSE(ParseRange("bytes=-100,-1", 100));
  std::string many = "bytes=0-9";
  for (int i = 0; i < 20; ++i) many += ",0-9";
  EXPECT_FALSE(ParseRange(many, 100)) << "21 copies of ten bytes";
  EXPECT_TRUE(ParseRange("bytes=0-49,50-99", 100));  // exactly the file
  // Whatever the header, what ParseRange returns never adds up to more than the file.
  for (const char* header : {"bytes=0-0,0-0,0-0", "bytes=1-1,1-2,2-3", "bytes=90-,-20,95-99"}) {
    auto ranges = ParseRange(header, 100);
    uint64_t total = 0;
    if (ranges)
      for (const auto& r : *ranges) total += r.length;
    EXPECT_LE(total, 100u) << header;
  }
}

TEST(PercentDecode, NulNeverCutsAName) {
  EXPECT_EQ(PercentDecode("/a%2e%2E/b"), "/a../b");
  EXPECT_EQ(PercentDecode("/x%00y"), "/x\x01y");
  EXPECT_EQ(PercentDecode("/bad%zz%4"), "/bad%zz%4");
  EXPECT_EQ(PercentDecode("1.0%2Bbuild"), "1.0+build");
}

TEST(StaticFiles, ServablePaths) {
  EXPECT_TRUE(IsServablePath("/software/a/1.0/a-1.0.tar.zst"));
  EXPECT_TRUE(IsServablePath("/fecs/fec01/generation.json"));
  for (const char* bad : {"/", "", "software", "/../etc/passwd", "/a/../b", "/.wharf/records.db",
                          "/software/.a.tmp-1-2", "/a//b", "/a/./b", "/a\\b", "/a\x01"})
    EXPECT_FALSE(IsServablePath(bad)) << bad;
}

TEST(StaticFiles, PersistentDataIsNeverAStaticFile) {
  EXPECT_FALSE(IsServablePath("/fecs/fec01/data/latest.json"));
  EXPECT_FALSE(IsServablePath("/fecs/fec01/data/20261125T210500.123Z-1a2b.tar.zst"));
  EXPECT_TRUE(IsServablePath("/fecs/fec01/database.json")) << "only the data folder";
}

TEST(StaticFiles, OnlyPublishedVersionsAreImmutable) {
  auto immutable = [](const char* path) { return IsImmutable(*ServableParts(path)); };
  EXPECT_TRUE(immutable("/software/a/1.0/a-1.0.tar.zst"));
  EXPECT_TRUE(immutable("/configuration/c/7/package.json"));
  EXPECT_TRUE(immutable("/fecs/fec01/configuration/c/7/c-7.tar.zst"));
  EXPECT_FALSE(immutable("/software/a/1.0/deltas.json")) << "written after the version";
  EXPECT_FALSE(immutable("/fecs/fec01/configuration/c.tar.zst")) << "a link that moves";
  EXPECT_FALSE(immutable("/fecs/fec01/generation.json"));
  EXPECT_FALSE(immutable("/software/a"));
}

TEST(StaticFiles, HttpDateRoundTrip) {
  EXPECT_EQ(HttpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(ParseHttpDate(HttpDate(1795000000)), 1795000000);
  EXPECT_FALSE(ParseHttpDate("yesterday"));
}

TEST(Router, MatchesParamsAndMethods) {
  Router router;
  router.Add("POST", "/api/v1/fecs/{fec}/assign", [](Request&, const std::string&) { return Response(); });
  Request request;
  request.method = "POST";
  request.path = "/api/v1/fecs/fec01/assign";
  bool known = false;
  ASSERT_NE(router.Match(request, known), nullptr);
  EXPECT_EQ(request.params["fec"], "fec01");
  request.method = "GET";
  EXPECT_EQ(router.Match(request, known), nullptr);
  EXPECT_TRUE(known);
  request.path = "/api/v1/fecs//assign";
  EXPECT_EQ(router.Match(request, known), nullptr);
  EXPECT_FALSE(known);
}

// A real server on a loopback port, read by the real client.
class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteTestFile(scratch_ / "store/software/a/1/a-1.tar.zst", content_);
    WriteTestFile(scratch_ / "store/.wharf/records.db", "secret");
    options_.port = 0;
    options_.threads = 2;
    Restart();
  }
  void Restart() {
    Router router;
    router.Add("POST", "/echo", [](Request&, const std::string& body) { return Response::Json(200, body); },
               {16, false});
    router.Add("POST", "/slow", [](Request&, const std::string& body) { return Response::Json(200, body); },
               {1024, true});
    router.Add("POST", "/gated", [](Request& r) -> std::optional<Response> {
                 if (r.Header("Authorization")) return std::nullopt;
                 return Response::Error(401, "unauthorized", "no token");
               },
               [this](Request&, const std::string& body) {
                 ++gated_bodies_;
                 return Response::Json(200, body);
               },
               {1 << 20, false});
    auto files = std::make_shared<StaticFiles>(scratch_ / "store");
    router.SetFallback([files](Request& r, const std::string&) { return files->Serve(r); });
    server_.reset();
    auto server = Server::Start(options_, std::move(router), [this](const std::string&, int, uint64_t bytes) {
      served_ += bytes;
      ++answered_;
    });
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }
  std::atomic<uint64_t> served_{0};
  std::atomic<int> answered_{0};
  std::atomic<int> gated_bodies_{0};
  ScratchDir scratch_;
  std::string content_ = std::string(300000, 'x') + "tail";
  ServerOptions options_;
  std::unique_ptr<Server> server_;
  std::string base_;
};

TEST_F(ServerTest, ServesFilesAndRanges) {
  Fetcher fetcher;
  auto whole = fetcher.Get(base_ + "/software/a/1/a-1.tar.zst", 1 << 20);
  ASSERT_TRUE(whole) << whole.error().message;
  EXPECT_EQ(*whole, content_);
  ScratchDir out;
  std::string path = out / "part";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT, 0600));
  ASSERT_TRUE(fetcher.FetchRange(base_ + "/software/a/1/a-1.tar.zst", fd.get(), path, 300000, 4));
  auto part = ReadFile(path, 1 << 20);
  EXPECT_EQ(part->substr(300000), "tail");
}

TEST_F(ServerTest, CountsBytesOnceTheAnswerIsOut) {
  Fetcher fetcher;
  ASSERT_TRUE(fetcher.Get(base_ + "/software/a/1/a-1.tar.zst", 1 << 20));
  for (int i = 0; i < 100 && answered_ < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(answered_, 1);
  EXPECT_EQ(served_, content_.size());
}

TEST_F(ServerTest, NeverServesPrivateOrOutsideFiles) {
  Fetcher fetcher;
  for (const char* bad : {"/.wharf/records.db", "/software/../.wharf/records.db", "/%2e%2e/%2e%2e/etc/passwd",
                          "/software/a%00/1", "/software", "/"}) {
    auto got = fetcher.Get(base_ + bad, 1 << 20);
    EXPECT_FALSE(got) << bad;
  }
}

TEST_F(ServerTest, BodiesOverTheLimitAreRefused) {
  ApiClient client(base_, "");
  EXPECT_TRUE(client.Call("POST", "/echo", "{\"a\":1}"));
  auto big = client.Call("POST", "/echo", std::string(100, 'x'));
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("limit"), std::string::npos) << big.error().message;
  auto slow = client.Call("POST", "/slow", "{\"slow\":true}");
  ASSERT_TRUE(slow) << slow.error().message;
  EXPECT_EQ(*slow, "{\"slow\":true}\n");
  auto missing = client.Call("GET", "/nothing/here");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}


// A raw client socket from `source` (any 127.x address works on loopback).
UniqueFd Connect(uint16_t port, const char* source = "127.0.0.1") {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &from.sin_addr);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&from), sizeof from), 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  return fd;
}

void Send(int fd, std::string_view text) {
  EXPECT_EQ(::send(fd, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
}

// What the server sends until it closes, or until `ms` pass; `closed` tells which.
std::string ReadAll(int fd, int ms, bool* closed = nullptr) {
  std::string out;
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  if (closed) *closed = false;
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    end - std::chrono::steady_clock::now()).count());
    if (::poll(&p, 1, std::max(left, 1)) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (closed) *closed = true;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string Get(uint16_t port, const std::string& path, const std::string& headers = "",
                const char* source = "127.0.0.1") {
  UniqueFd fd = Connect(port, source);
  Send(fd.get(), "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + "\r\n");
  return ReadAll(fd.get(), 5000);
}

std::string BodyOf(const std::string& answer) {
  size_t at = answer.find("\r\n\r\n");
  return at == std::string::npos ? "" : answer.substr(at + 4);
}

TEST_F(ServerTest, AHeaderThatTricklesIsCutAtItsDeadline) {
  options_.header_timeout_seconds = 1;
  Restart();
  UniqueFd fd = Connect(server_->port());
  auto start = std::chrono::steady_clock::now();
  bool closed = false;
  std::string header = "GET /software/a/1/a-1.tar.zst HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  for (size_t i = 0; i < header.size() && !closed; ++i) {
    ::send(fd.get(), &header[i], 1, MSG_NOSIGNAL);  // a byte every 100 ms: never idle
    ReadAll(fd.get(), 100, &closed);
  }
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(closed) << "still open after " << took << " s";
  EXPECT_GE(took, 0.9);
  EXPECT_LT(took, 2.0);
  EXPECT_EQ(server_->cut_late(), 1u);
  // A header sent at once is served, and the connection kept alive is cut only when idle
  // past the deadline, not while its answer goes out.
  EXPECT_EQ(BodyOf(Get(server_->port(), "/software/a/1/a-1.tar.zst")), content_);
}

TEST_F(ServerTest, TheOldestWaitingConnectionMakesRoom) {
  options_.pending_connection_limit = 8;
  Restart();
  std::vector<UniqueFd> slow;
  for (int i = 0; i < 20; ++i) {
    slow.push_back(Connect(server_->port()));
    Send(slow.back().get(), "GET / HTTP/1.1\r\n");
  }
  std::string answer = Get(server_->port(), "/software/a/1/a-1.tar.zst");
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200")) << answer.substr(0, 200);
  EXPECT_GE(server_->cut_evicted(), 12u);
  bool closed = false;
  ReadAll(slow.front().get(), 1000, &closed);
  EXPECT_TRUE(closed) << "the oldest goes first";
  ReadAll(slow.back().get(), 200, &closed);
  EXPECT_FALSE(closed) << "the newest stays";
}

TEST_F(ServerTest, OneAddressGetsSoManyConnections) {
  options_.per_ip_connection_limit = 4;
  Restart();
  std::vector<UniqueFd> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(Connect(server_->port(), "127.0.0.3"));
    Send(held.back().get(), "GET / HTTP/1.1\r\n");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  UniqueFd fifth = Connect(server_->port(), "127.0.0.3");
  bool closed = false;
  ReadAll(fifth.get(), 1000, &closed);
  EXPECT_TRUE(closed) << "a fifth connection from 127.0.0.3";
  EXPECT_TRUE(Get(server_->port(), "/software/a/1/a-1.tar.zst", "", "127.0.0.4").starts_with("HTTP/1.1 200"));
}

TEST_F(ServerTest, AGateRefusesBeforeAnyByteOfTheBody) {
  UniqueFd fd = Connect(server_->port());
  Send(fd.get(), "POST /gated HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
  std::string answer = ReadAll(fd.get(), 2000);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 401")) << answer;
  EXPECT_EQ(gated_bodies_, 0);
  UniqueFd ok = Connect(server_->port());
  Send(ok.get(), "POST /gated HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nConnection: close\r\n"
                 "Content-Length: 7\r\n\r\n{\"a\":1}");
  answer = ReadAll(ok.get(), 2000);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200")) << answer;
  EXPECT_EQ(gated_bodies_, 1);
}

TEST_F(ServerTest, ABodyThatTricklesIsCut) {
  options_.header_timeout_seconds = 1;
  options_.min_body_rate = 1000;  // 1000 bytes: due 2 s after the header
  Restart();
  UniqueFd fd = Connect(server_->port());
  Send(fd.get(), "POST /gated HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 1000\r\n\r\n");
  auto start = std::chrono::steady_clock::now();
  bool closed = false;
  for (int i = 0; i < 60 && !closed; ++i) {
    ::send(fd.get(), "x", 1, MSG_NOSIGNAL);
    ReadAll(fd.get(), 100, &closed);
  }
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(closed);
  EXPECT_GE(took, 1.9);
  EXPECT_LT(took, 3.0);
  EXPECT_EQ(gated_bodies_, 0);
}

TEST_F(ServerTest, AChunkedBodyOnABufferedRouteIsSmall) {
  UniqueFd fd = Connect(server_->port());
  Send(fd.get(), "POST /gated HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nTransfer-Encoding: chunked\r\n\r\n");
  std::string chunk(8192, 'x');
  char size[16];
  std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
  bool closed = false;
  for (int i = 0; i < 12 && !closed; ++i) {
    std::string piece = size + chunk + "\r\n";
    ::send(fd.get(), piece.data(), piece.size(), MSG_NOSIGNAL);
    ReadAll(fd.get(), 50, &closed);
  }
  ::send(fd.get(), "0\r\n\r\n", 5, MSG_NOSIGNAL);
  std::string answer = ReadAll(fd.get(), 1000, &closed);
  EXPECT_FALSE(answer.starts_with("HTTP/1.1 200")) << "96 KiB chunked over a limit of 64 KiB";
  EXPECT_EQ(gated_bodies_, 0);
}

TEST_F(ServerTest, RangesNeverAmplifyAndBoundariesAreRandom) {
  WriteTestFile(scratch_ / "store/software/b/1/b-1.tar.zst", std::string(100, 'b'));
  std::string overlapping = Get(server_->port(), "/software/a/1/a-1.tar.zst", "Range: bytes=0-,0-,0-\r\n");
  EXPECT_TRUE(overlapping.starts_with("HTTP/1.1 200")) << overlapping.substr(0, 200);
  EXPECT_EQ(BodyOf(overlapping), content_);
  std::string merged = Get(server_->port(), "/software/a/1/a-1.tar.zst", "Range: bytes=0-9,5-19\r\n");
  EXPECT_TRUE(merged.starts_with("HTTP/1.1 206")) << merged.substr(0, 200);
  EXPECT_NE(merged.find("Content-Range: bytes 0-19/300004"), std::string::npos) << merged.substr(0, 300);
  EXPECT_EQ(BodyOf(merged), content_.substr(0, 20));
  // Part headers bigger than the file: the file whole instead.
  std::string small = Get(server_->port(), "/software/b/1/b-1.tar.zst", "Range: bytes=0-0,2-2,4-4\r\n");
  EXPECT_TRUE(small.starts_with("HTTP/1.1 200")) << small.substr(0, 200);
  EXPECT_EQ(BodyOf(small).size(), 100u);
  auto boundary = [&] {
    std::string answer = Get(server_->port(), "/software/a/1/a-1.tar.zst", "Range: bytes=0-9,100-109\r\n");
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 206")) << answer.substr(0, 200);
    size_t at = answer.find("boundary=");
    return at == std::string::npos ? "" : answer.substr(at + 9, answer.find("\r\n", at) - at - 9);
  };
  std::string first = boundary(), second = boundary();
  EXPECT_EQ(first.size(), 6u + 32u) << first;
  EXPECT_NE(first, second);
}
}  // namespace
}  // namespace wharf::http
