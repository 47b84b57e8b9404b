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

TEST_F(ApiTest, HistoryAtATimeNamesTheDevVersionsThatRan) {
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/assign", operator_, R"({"packages": ["ioc@1.0"]})"));
  int64_t start = clock_.Now();
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/heartbeat", agent_, R"({"generation": 1, "dev": []})"));
  clock_.Set(start + 100);  // wharf dev-deploy of ioc: the agent reports it
  std::string sha(64, 'c');
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/heartbeat", agent_,
                   R"({"generation": 1, "dev": [{"name": "ioc", "version": "dev", "sha256": ")" + sha +
                       R"(", "replaces": "1.0"}]})"));
  clock_.Set(start + 200);  // dropped again
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/heartbeat", agent_, R"({"generation": 1, "dev": []})"));
  json before = Get("/api/v1/fecs/fec01/history?at=" + FormatTime(start + 50), operator_);
  EXPECT_EQ(before["running"]["packages"], "ioc@1.0");
  EXPECT_TRUE(before["running"]["dev"].empty());
  json during = Get("/api/v1/fecs/fec01/history?at=" + FormatTime(start + 150), operator_);
  EXPECT_EQ(during["running"]["generation"], 1);
  EXPECT_EQ(during["running"]["packages"], "ioc@dev");
  EXPECT_EQ(during["running"]["generation_packages"], "ioc@1.0");
  ASSERT_EQ(during["running"]["dev"].size(), 1u);
  EXPECT_EQ(during["running"]["dev"][0]["sha256"], sha);
  EXPECT_EQ(during["running"]["dev"][0]["replaces"], "1.0");
  EXPECT_EQ(during["running"]["dev"][0]["since"], FormatTime(start + 100));
  json after = Get("/api/v1/fecs/fec01/history?at=" + FormatTime(start + 250), operator_);
  EXPECT_EQ(after["running"]["packages"], "ioc@1.0");
  json all = Get("/api/v1/fecs/fec01/history", operator_);
  ASSERT_EQ(all["dev"].size(), 1u);
  EXPECT_EQ(all["dev"][0]["until"], FormatTime(start + 200));
}

TEST_F(ApiTest, HistoryMarksGenerationsNamingRemovedVersions) {
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/assign", operator_, R"({"packages": ["ioc@1.0"]})"));
  ASSERT_TRUE(Post("/api/v1/fecs/fec01/unassign", operator_, R"({"packages": ["ioc"]})"));
  ASSERT_TRUE(RemoveTree(scratch_ / "store/software/ioc/1.0"));  // gone (as gc with --generations 1)
  json all = Get("/api/v1/fecs/fec01/history", operator_);
  ASSERT_EQ(all["generations"].size(), 2u);
  EXPECT_EQ(all["generations"][0]["missing"], json::array({"ioc@1.0"}));
  EXPECT_TRUE(all["generations"][1]["missing"].empty());
  auto refused = Post("/api/v1/fecs/fec01/rollback", operator_, R"({"to": 1})");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("generation 1 names ioc@1.0, which this store no longer holds"),
            std::string::npos) << refused.error().message;
  EXPECT_EQ(Get("/api/v1/fecs/fec01/generation", operator_)["number"], 2);
}

TEST_F(ApiTest, OnlyAnAdminChoosesHowManyVersionsAReleaseKeeps) {
  auto refused = Post("/api/v1/fecs/fec01/assign", operator_, R"({"packages": ["ioc@1.0"], "keep": 1})");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("needs an admin token"), std::string::npos) << refused.error().message;
  EXPECT_FALSE(PathExists(scratch_ / "store/fecs/fec01/generation.json"));
  ApiClient client(url_, operator_);
  auto answer = client.Call("POST", "/api/v1/fecs/fec01/assign", R"({"packages": ["ioc@1.0"], "prune": true})");
  ASSERT_TRUE(answer) << answer.error().message;
  json j = json::parse(*answer);
  EXPECT_EQ(j["pruned"]["keep"], 3);  // the store's retention
  EXPECT_TRUE(j["pruned"]["removed"].empty());
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
