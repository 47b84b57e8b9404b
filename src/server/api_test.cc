// The API in process, over a real loopback socket, with a fake clock: fleet states, the
// activation answering "what ran at T", and the audit of refused changes.
#include "server/api.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "archive/pack.h"
#include "base/scratch_dir.h"
#include "base/strings.h"
#include "fetch/api_client.h"

namespace wharf {
namespace {

using nlohmann::json;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(GenerateKeyPair(scratch_ / "signing"));
    auto store = Store::Open(scratch_ / "store", true);
    ASSERT_TRUE(store);
    auto records = Records::Open(scratch_ / "records.db");
    ASSERT_TRUE(records);
    records_ = std::move(*records);
    ApiConfig config;
    config.uploads_dir = scratch_ / "uploads";
    config.silent_after_seconds = 300;
    api_ = std::make_unique<Api>(std::move(*store), *records_, *PrivateKey::Load(scratch_ / "signing.key"),
                                 config, clock_);
    http::Router router;
    api_->Register(router);
    http::ServerOptions options;
    options.port = 0;
    options.threads = 2;
    auto server = http::Server::Start(options, std::move(router), {});
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
    url_ = "http://127.0.0.1:" + std::to_string(server_->port());
    operator_ = *records_->CreateToken("op", Role::kOperator, "", 1);
    agent_ = *records_->CreateToken("fec01", Role::kAgent, "fec01", 1);
    publisher_ = *records_->CreateToken("ci", Role::kPublisher, "", 1);

    // One published package, through the API.
    WriteTestFile(scratch_ / "tree/bin/ioc", "#!/bin/sh\n", 0755);
    PackOptions pack;
    pack.name = "ioc";
    pack.version = "1.0";
    pack.prefix = "/opt/ioc";
    pack.out_dir = scratch_ / "out";
    ASSERT_TRUE(MakeDirs(pack.out_dir));
    auto packed = PackTree(scratch_ / "tree", pack);
    ASSERT_TRUE(packed);
    ApiClient ci(url_, publisher_);
    auto published = ci.Upload("/api/v1/packages", {{"index", packed->index_path}, {"archive", packed->archive_path}});
    ASSERT_TRUE(published) << published.error().message;
  }

  json Get(const std::string& path, const std::string& token) {
    ApiClient client(url_, token);
    auto body = client.Call("GET", path);
    EXPECT_TRUE(body) << body.error().message;
    return body ? json::parse(*body) : json();
  }
  Status Post(const std::string& path, const std::string& token, const std::string& body) {
    ApiClient client(url_, token);
    auto answer = client.Call("POST", path, body);
    if (!answer) return std::unexpected(answer.error());
    return {};
  }
  std::string StateOf(const std::string& fec) {
    for (const auto& row : Get("/api/v1/fecs", operator_))
      if (row["fec"] == fec) return row["state"];
    return "absent";
  }

  ScratchDir scratch_;
  FakeClock clock_{1795000000};
  std::unique_ptr<Records> records_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<http::Server> server_;
  std::string url_, operator_, agent_, publisher_;
};

TEST_F(ApiTest, FleetStatesFollowHeartbeatsAndTheClock) {
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/assign", operator_, R"({"packages": ["ioc@1.0"]})"));
  EXPECT_EQ(StateOf("fec01"), "unknown");
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/heartbeat", agent_, R"({"generation": null})"));
  EXPECT_EQ(StateOf("fec01"), "updating");
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/heartbeat", agent_, R"({"generation": 1})"));
  EXPECT_EQ(StateOf("fec01"), "ok");
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/heartbeat", agent_,
                   R"({"generation": 1, "services": [{"name": "ioc", "state": "down"}]})"));
  EXPECT_EQ(StateOf("fec01"), "error");
  clock_.Set(clock_.Now() + 301);
  EXPECT_EQ(StateOf("fec01"), "silent");
}

TEST_F(ApiTest, HeartbeatActivityIsKeptBoundedAndShown) {
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/assign", operator_, R"({"packages": ["ioc@1.0"]})"));
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/heartbeat", agent_,
                   R"({"generation": null, "activity": "syncing: 1048576 of 3145728 bytes"})"));
  EXPECT_EQ(Get("/api/v1/fecs/fec01", operator_)["status"]["activity"], "syncing: 1048576 of 3145728 bytes");
  json fleet = Get("/api/v1/fecs", operator_);
  ASSERT_EQ(fleet.size(), 1u);
  EXPECT_EQ(fleet[0]["activity"], "syncing: 1048576 of 3145728 bytes");
  // Control characters go; more than 256 bytes is cut, at a character boundary.
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/heartbeat", agent_,
                   R"({"generation": 1, "activity": "sync\u001b[2Jing\r\n\u007f"})"));
  EXPECT_EQ(Get("/api/v1/fecs/fec01", operator_)["status"]["activity"], "sync[2Jing");  // ESC, CR, LF and DEL gone
  std::string long_text = std::string(255, 'a') + "\u00e9\u00e9";  // 255 bytes, then 2-byte characters
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/heartbeat", agent_, R"({"activity": ")" + long_text + R"("})"));
  EXPECT_EQ(Get("/api/v1/fecs/fec01", operator_)["status"]["activity"], std::string(255, 'a'));
  // Not a string: refused, and the last one stays.
  auto refused = Post("/api/v1/fecs/fec01/heartbeat", agent_, R"({"activity": 12})");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  // Idle: a heartbeat without it (an older agent) or with "" clears it.
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/heartbeat", agent_, R"({"generation": 1})"));
  EXPECT_EQ(Get("/api/v1/fecs/fec01", operator_)["status"]["activity"], "");
}

TEST_F(ApiTest, HistoryAtATimeNamesTheActivationThen) {
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/assign", operator_, R"({"packages": ["ioc@1.0"]})"));
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/heartbeat", agent_, R"({"generation": 1})"));
  clock_.Set(clock_.Now() + 100);
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/unassign", operator_, R"({"packages": ["ioc"]})"));
  clock_.Set(clock_.Now() + 100);
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/heartbeat", agent_, R"({"generation": 2})"));
  int64_t start = 1795000000;
  json before = Get("/api/v1/fecs/fec01/history?at=" + FormatTime(start + 50), operator_);
  EXPECT_EQ(before["running"]["generation"], 1);
  EXPECT_EQ(before["running"]["packages"], "ioc@1.0");
  json after = Get("/api/v1/fecs/fec01/history?at=" + FormatTime(start + 250), operator_);
  EXPECT_EQ(after["running"]["generation"], 2);
  EXPECT_EQ(after["wanted"]["generation"], 2);
  json early = Get("/api/v1/fecs/fec01/history?at=2020-01-01T00:00:00Z", operator_);
  EXPECT_TRUE(early["running"].is_null());
}

TEST_F(ApiTest, RefusedChangesAreAuditedAndChangeNothing) {
  auto refused = Post("/api/v1/fecs/fec01/assign", publisher_, R"({"packages": ["ioc@1.0"]})");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kRejected);
  EXPECT_NE(refused.error().message.find("lacks the right to change"), std::string::npos);
  EXPECT_FALSE(PathExists(scratch_ / "store/fecs/fec01/generation.json"));
  json log = Get("/api/v1/audit", operator_);
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log[0]["action"], "refused");
  EXPECT_EQ(log[0]["actor"], "ci");
  EXPECT_EQ(log[0]["status"], 403);
}

}  // namespace
}  // namespace wharf
