#include "server/http.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include "base/scratch_dir.h"
#include "fetch/api_client.h"
#include "fetch/fetch.h"
#include "server/static_files.h"

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
    Router router;
    router.Add("POST", "/echo", [](Request&, const std::string& body) { return Response::Json(200, body); },
               {16, false});
    router.Add("POST", "/slow", [](Request&, const std::string& body) { return Response::Json(200, body); },
               {1024, true});
    auto files = std::make_shared<StaticFiles>(scratch_ / "store");
    router.SetFallback([files](Request& r, const std::string&) { return files->Serve(r); });
    ServerOptions options;
    options.port = 0;
    options.threads = 2;
    auto server = Server::Start(options, std::move(router), [this](const std::string&, int, uint64_t bytes) {
      served_ += bytes;
      ++answered_;
    });
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }
  std::atomic<uint64_t> served_{0};
  std::atomic<int> answered_{0};
  ScratchDir scratch_;
  std::string content_ = std::string(300000, 'x') + "tail";
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

}  // namespace
}  // namespace wharf::http
