#include "fetch/fetch.h"

#include <gtest/gtest.h>

#include "fetch/test_listener.h"

#include "base/scratch_dir.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <cstdlib>

#include "base/file.h"

namespace wharf {

class FetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/hello.txt", "hello"));
  }
  ScratchDir scratch_;
  std::string dir_ = scratch_.path();
};

TEST_F(FetchTest, GetsFileUrl) {
  Fetcher fetcher;
  auto body = fetcher.Get("file://" + dir_ + "/hello.txt", 100);
  ASSERT_TRUE(body) << body.error().message;
  EXPECT_EQ(*body, "hello");
  EXPECT_EQ(fetcher.stats().bytes, 5u);
}

TEST_F(FetchTest, MissingFileIsNotFound) {
  Fetcher fetcher;
  auto body = fetcher.Get("file://" + dir_ + "/nope", 100);
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, ErrorCode::kNotFound);
}

TEST_F(FetchTest, RefusesMoreThanDeclared) {
  Fetcher fetcher;
  auto body = fetcher.Get("file://" + dir_ + "/hello.txt", 4);
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, ErrorCode::kCorrupt);
  auto file = fetcher.Download("file://" + dir_ + "/hello.txt", dir_ + "/copy", 4);
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().code, ErrorCode::kCorrupt);
}

TEST_F(FetchTest, DownloadHashesWhatItWrites) {
  Fetcher fetcher;
  auto digest = fetcher.Download("file://" + dir_ + "/hello.txt", dir_ + "/copy", 100);
  ASSERT_TRUE(digest) << digest.error().message;
  EXPECT_EQ(digest->size, 5u);
  EXPECT_EQ(digest->sha256, Sha256Hex("hello"));
  EXPECT_EQ(*ReadFile(dir_ + "/copy"), "hello");
}

TEST_F(FetchTest, RangeLandsAtItsOffset) {
  Fetcher fetcher;
  std::string sparse = dir_ + "/sparse";
  UniqueFd fd(::open(sparse.c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(fd.valid());
  auto ok = fetcher.FetchRange("file://" + dir_ + "/hello.txt", fd.get(), sparse, 1, 3);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(*ReadFile(sparse), std::string("\0ell", 4));
}

TEST(Fetch, UnreachableServerIsUnavailable) {
  FetchOptions options;
  options.connect_timeout_seconds = 2;
  Fetcher fetcher(options);
  // Port 9 on loopback: nothing listens there in a test environment.
  auto body = fetcher.Get("http://127.0.0.1:9/x", 100);
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, ErrorCode::kUnavailable);
}

TEST(Fetch, JoinUrlUsesOneSlash) {
  EXPECT_EQ(JoinUrl("http://h:1/store/", "fecs/a"), "http://h:1/store/fecs/a");
}



// A server that cuts the first transfer half-way, then answers Range requests (or, with
// `honour_range` false, ignores them and sends everything again).
namespace {

class CuttingServer {
 public:
  // `later`: the body of every request after the first (default: the same).
  CuttingServer(std::string body, bool honour_range, std::string later = "")
      : body_(std::move(body)), later_(std::move(later)), honour_range_(honour_range) {
    auto listener = ListenOnLoopback();
    listener_ = listener.fd;
    port_ = listener.port;
    thread_ = std::thread([this] { Serve(); });
  }
  ~CuttingServer() {
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/file"; }
  std::vector<std::string> ranges;  // the Range header of each request ("" when none)

 private:
  void Serve() {
    for (int n = 0;; ++n) {
      int c = ::accept(listener_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      ssize_t got = ::recv(c, buf, sizeof buf, 0);
      std::string request(buf, got > 0 ? static_cast<size_t>(got) : 0);
      auto at = request.find("Range: bytes=");
      uint64_t from = 0;
      if (at != std::string::npos) from = std::stoull(request.substr(at + 13));
      ranges.push_back(at == std::string::npos ? "" : std::to_string(from) + "-");
      std::string head, data;
      if (n == 1 && !later_.empty()) body_ = later_;
      if (at != std::string::npos && honour_range_) {
        data = body_.substr(from);
        head = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + std::to_string(from) + "-" +
               std::to_string(body_.size() - 1) + "/" + std::to_string(body_.size()) + "\r\n";
      } else {
        data = body_;
        head = "HTTP/1.1 200 OK\r\n";
      }
      head += "Content-Length: " + std::to_string(data.size()) + "\r\nConnection: close\r\n\r\n";
      if (n == 0) data = data.substr(0, data.size() / 2);  // the first transfer is cut
      std::string out = head + data;
      (void)::send(c, out.data(), out.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }
  std::string body_, later_;
  bool honour_range_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

std::string Body() {
  std::string body;
  for (int i = 0; i < 300000; ++i) body += static_cast<char>('a' + (i * 31) % 26);
  return body;
}

}  // namespace

TEST_F(FetchTest, CutDownloadResumesWithRange) {
  CuttingServer server(Body(), true);
  FetchOptions options;
  std::vector<int> pauses;
  options.sleep_seconds = [&](int s) { pauses.push_back(s); };
  Fetcher fetcher(options);
  auto digest = fetcher.Download(server.url(), dir_ + "/got", 1 << 20);
  ASSERT_TRUE(digest) << digest.error().message;
  EXPECT_EQ(digest->sha256, Sha256Hex(Body()));
  EXPECT_EQ(*ReadFile(dir_ + "/got", 1 << 20), Body());
  EXPECT_EQ(fetcher.stats().resumed, 1u);
  ASSERT_EQ(server.ranges.size(), 2u);
  EXPECT_EQ(server.ranges[1], std::to_string(Body().size() / 2) + "-");
  EXPECT_EQ(pauses, std::vector<int>{1});
}

TEST_F(FetchTest, CutDownloadStartsOverWhenRangeIsIgnored) {
  CuttingServer server(Body(), false);
  FetchOptions options;
  options.sleep_seconds = [](int) {};
  Fetcher fetcher(options);
  auto digest = fetcher.Download(server.url(), dir_ + "/got", 1 << 20);
  ASSERT_TRUE(digest) << digest.error().message;
  EXPECT_EQ(digest->sha256, Sha256Hex(Body()));
  EXPECT_EQ(*ReadFile(dir_ + "/got", 1 << 20), Body());
}

// What a consumer was handed cannot be taken back: a resend of the whole file after a cut
// is skipped up to where the consumer stands.
TEST_F(FetchTest, StreamHandsEachByteOnceWhenRangeIsIgnored) {
  CuttingServer server(Body(), false);
  FetchOptions options;
  options.sleep_seconds = [](int) {};
  Fetcher fetcher(options);
  std::string seen;
  auto got = fetcher.Stream(server.url(), 1 << 20, [&](const char* data, size_t size) -> Status {
    seen.append(data, size);
    return {};
  });
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, Body().size());
  EXPECT_TRUE(seen == Body());
  EXPECT_EQ(fetcher.stats().resumed, 1u);
}

TEST_F(FetchTest, StreamStopsWithTheConsumersError) {
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/big", Body()));
  Fetcher fetcher;
  int calls = 0;
  auto got = fetcher.Stream("file://" + dir_ + "/big", 1 << 20, [&](const char*, size_t) -> Status {
    ++calls;
    return Fail(ErrorCode::kCorrupt, "the reader refused frame 0");
  });
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(got.error().message, "the reader refused frame 0");
  EXPECT_EQ(calls, 1);
}

// The store changed under a cut download: what the server resends whole is shorter than
// what the consumer already had, which cannot be taken back.
TEST_F(FetchTest, StreamRefusesAResendShorterThanWhatWasHandedOver) {
  CuttingServer server(Body(), false, Body().substr(0, 1000));
  FetchOptions options;
  options.sleep_seconds = [](int) {};
  options.resume_attempts = 1;
  Fetcher fetcher(options);
  auto got = fetcher.Stream(server.url(), 1 << 20, [](const char*, size_t) -> Status { return {}; });
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(got.error().message.find("sync again"), std::string::npos) << got.error().message;
}

TEST(Fetch, DeadlineIsBasePlusSizeAtTheFloorRate) {
  TransferDeadline d;  // the defaults: 30 s + 4 kB/s
  EXPECT_EQ(DeadlineMs(d, 0), 30000u);
  EXPECT_EQ(DeadlineMs(d, 3u << 20), 30000u + 768000u);  // 3 MiB: 13.3 min (64 kbit/s needs 6.6)
  d.base_seconds = 2;
  d.floor_bytes_per_second = 3000;
  EXPECT_EQ(DeadlineMs(d, 1500), 2500u);  // fractions of a second count
  EXPECT_EQ(DeadlineMs(d, 1), 2000u);
  d.floor_bytes_per_second = 1;  // no overflow for the largest size a store may declare
  EXPECT_EQ(DeadlineMs(d, uint64_t{1} << 50), 2000u + (uint64_t{1} << 50) * 1000);
  d.floor_bytes_per_second = 0;  // no deadline
  EXPECT_EQ(DeadlineMs(d, 1u << 30), 0u);
}

namespace {

// Answers every request with `size` declared (206 from where a Range asks), then sends one
// byte every 20 ms (50 B/s: above the low-speed limit the tests set, far below any floor).
// With `cut_first`, the first connection is closed after that many bytes.
class TricklingServer {
 public:
  explicit TricklingServer(size_t size, size_t cut_first = 0) : size_(size), cut_first_(cut_first) {
    auto listener = ListenOnLoopback();
    listener_ = listener.fd;
    port_ = listener.port;
    thread_ = std::thread([this] { Serve(); });
  }
  ~TricklingServer() {
    stop_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/file"; }
  std::atomic<int> requests{0};

 private:
  void Serve() {
    for (;;) {
      int c = ::accept(listener_, nullptr, nullptr);
      if (c < 0) return;
      int n = requests++;
      char buf[4096];
      ssize_t got = ::recv(c, buf, sizeof buf, 0);
      std::string request(buf, got > 0 ? static_cast<size_t>(got) : 0);
      auto at = request.find("Range: bytes=");
      size_t from = at == std::string::npos ? 0 : std::stoull(request.substr(at + 13));
      std::string head = from == 0 ? "HTTP/1.1 200 OK\r\n"
                                   : "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + std::to_string(from) +
                                         "-" + std::to_string(size_ - 1) + "/" + std::to_string(size_) + "\r\n";
      head += "Content-Length: " + std::to_string(size_ - from) + "\r\n\r\n";
      (void)::send(c, head.data(), head.size(), MSG_NOSIGNAL);
      size_t send = n == 0 && cut_first_ > 0 ? cut_first_ : size_ - from;
      for (size_t i = 0; i < send && !stop_; ++i) {
        if (::send(c, "x", 1, MSG_NOSIGNAL) != 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      ::close(c);
    }
  }
  size_t size_, cut_first_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

FetchOptions TrickleOptions() {
  FetchOptions options;
  options.low_speed_bytes_per_second = 10;  // the trickle beats it: only the deadline stops it
  options.low_speed_seconds = 30;
  options.deadline.base_seconds = 1;
  options.deadline.floor_bytes_per_second = 1000;
  options.deadline.unknown_size_seconds = 1;
  options.sleep_seconds = [](int) {};
  return options;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST(Fetch, TricklingTransferFailsAtItsDeadline) {
  TricklingServer server(100000);
  Fetcher fetcher(TrickleOptions());
  auto start = std::chrono::steady_clock::now();
  auto got = fetcher.Get(server.url(), 500);  // 1 s + 500 B at 1000 B/s: 1.5 s
  double took = SecondsSince(start);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kTimedOut) << got.error().message;
  EXPECT_GE(took, 1.4);
  EXPECT_LT(took, 3.0);
  const std::string& m = got.error().message;
  EXPECT_NE(m.find(server.url()), std::string::npos) << m;
  EXPECT_NE(m.find("deadline of 1.5 s"), std::string::npos) << m;
  EXPECT_NE(m.find("of 500 bytes received"), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos);
}

TEST(Fetch, ProbeOfUnknownSizeHasAFixedDeadline) {
  TricklingServer server(100000);
  Fetcher fetcher(TrickleOptions());
  auto start = std::chrono::steady_clock::now();
  auto got = fetcher.Probe(server.url(), 1u << 20);  // the bound would give 1049 s
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kTimedOut) << got.error().message;
  EXPECT_LT(SecondsSince(start), 2.5);
}

TEST(Fetch, AHugeBoundAtATinyFloorDoesNotOverflow) {
  TricklingServer server(20);  // 0.4 s
  FetchOptions options = TrickleOptions();
  options.deadline.floor_bytes_per_second = 1;  // 64 GiB at 1 B/s: 2000 years, capped at one
  Fetcher fetcher(options);
  auto got = fetcher.Get(server.url(), 64ull << 30);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->size(), 20u);
}

TEST(Fetch, ResumesShareTheStreamsDeadline) {
  // The first connection is cut after 1.4 s; the resumed one trickles on. A fresh deadline
  // for the resume would end at 1.4 + 3 s; the file's own ends at 3 s.
  TricklingServer server(2000, 70);
  Fetcher fetcher(TrickleOptions());
  auto start = std::chrono::steady_clock::now();
  auto got = fetcher.Stream(server.url(), 2000, [](const char*, size_t) -> Status { return {}; });
  double took = SecondsSince(start);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kTimedOut) << got.error().message;
  EXPECT_EQ(fetcher.stats().resumed, 1u);
  EXPECT_GE(took, 2.9);
  EXPECT_LT(took, 4.0) << "1 s + 2000 B at 1000 B/s, one deadline for both connections";
}

TEST(Fetch, OnBytesSeesEveryBodyByte) {
  ScratchDir scratch;
  ASSERT_TRUE(WriteFileAtomic(scratch.path() + "/f", std::string(12345, 'z')));
  Fetcher fetcher;
  uint64_t seen = 0;
  fetcher.set_on_bytes([&](uint64_t n) { seen += n; });
  ASSERT_TRUE(fetcher.Get("file://" + scratch.path() + "/f", 1 << 20));
  EXPECT_EQ(seen, 12345u);
}

}  // namespace wharf
