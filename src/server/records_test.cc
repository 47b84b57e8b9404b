#include "server/records.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <tuple>

#include "base/scratch_dir.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

TEST(Records, AVersion1DatabaseIsMigrated) {
  ScratchDir dir;
  {
    auto records = Records::Open(dir / "r.db");
    ASSERT_TRUE(records);
    Heartbeat h;
    h.fec = "fec01";
    h.time = 100;
    h.running = 3;
    ASSERT_TRUE((*records)->RecordHeartbeat(h));
  }
  {  // as session 2's wharf left it: no dev or activity column, no dev runs, schema 1
    SQLite::Database db(dir / "r.db", SQLite::OPEN_READWRITE);
    db.exec("DROP TABLE dev_runs; ALTER TABLE fecs DROP COLUMN activity; ALTER TABLE fecs DROP COLUMN dev; DROP INDEX audit_by_time; DROP INDEX activations_by_time; "
            "ALTER TABLE audit DROP COLUMN count; PRAGMA user_version = 1;");
  }
  auto records = Records::Open(dir / "r.db");
  ASSERT_TRUE(records) << records.error().message;
  EXPECT_EQ((*records)->schema_version(), Records::kSchemaVersion);
  auto fecs = (*records)->FecRecords();
  ASSERT_TRUE(fecs);
  ASSERT_EQ(fecs->size(), 1u);
  EXPECT_EQ((*fecs)[0].running, std::optional<uint64_t>(3));
  EXPECT_EQ((*fecs)[0].dev_json, "[]");
  EXPECT_EQ((*fecs)[0].activity, "");
  Heartbeat h;
  h.fec = "fec01";
  h.time = 200;
  h.dev_json = R"([{"name":"app","replaces":"1"}])";
  h.activity = "syncing: 5 of 10 bytes";
  ASSERT_TRUE((*records)->RecordHeartbeat(h));
  EXPECT_EQ((*(*records)->FecRecords())[0].dev_json, h.dev_json);
  EXPECT_EQ((*(*records)->FecRecords())[0].activity, h.activity);
}

TEST(Records, DevRunsSayWhichDevVersionRanWhen) {
  ScratchDir dir;
  auto records = Records::Open(dir / "r.db");
  ASSERT_TRUE(records) << records.error().message;
  auto beat = [&](int64_t time, std::vector<DevVersion> dev) {
    Heartbeat h;
    h.fec = "fec01";
    h.time = time;
    h.running = 4;
    h.dev = std::move(dev);
    ASSERT_TRUE((*records)->RecordHeartbeat(h));
  };
  DevVersion first{"app", std::string(64, 'a'), "1.0"};
  DevVersion second{"app", std::string(64, 'b'), "1.0"};
  beat(100, {});
  beat(200, {first});
  beat(300, {first});  // the same run goes on
  beat(400, {second});  // another dev build of app: a new run
  beat(500, {});        // dropped (or a new generation)
  auto at = [&](int64_t time) { return (*records)->DevAt("fec01", time).value(); };
  EXPECT_TRUE(at(150).empty());
  ASSERT_EQ(at(250).size(), 1u);
  EXPECT_EQ(at(250)[0].dev.sha256, first.sha256);
  EXPECT_EQ(at(250)[0].dev.replaces, std::optional<std::string>("1.0"));
  EXPECT_EQ(at(250)[0].generation, std::optional<uint64_t>(4));
  EXPECT_EQ(at(250)[0].since, 200);
  EXPECT_EQ(at(399)[0].dev.sha256, first.sha256);
  EXPECT_EQ(at(400)[0].dev.sha256, second.sha256);
  EXPECT_TRUE(at(500).empty());
  auto runs = (*records)->DevRuns("fec01", 10).value();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].until, std::optional<int64_t>(500));
  EXPECT_EQ(runs[1].until, std::optional<int64_t>(400));
  EXPECT_TRUE((*records)->DevRuns("fec02", 10).value().empty());
  auto pruned = (*records)->Prune(0, 450);  // ended before the cut-off: dropped
  ASSERT_TRUE(pruned);
  EXPECT_EQ(pruned->dev_runs, 1);
}

TEST(Records, TokensAreHashedAndRevocable) {
  ScratchDir dir;
  auto records = Records::Open(dir / "r.db");
  ASSERT_TRUE(records) << records.error().message;
  EXPECT_EQ((*records)->schema_version(), Records::kSchemaVersion);
  auto secret = (*records)->CreateToken("ci", Role::kPublisher, "", 100);
  ASSERT_TRUE(secret);
  EXPECT_FALSE((*records)->CreateToken("ci", Role::kAdmin, "", 101));  // names are unique
  auto who = (*records)->Authenticate(*secret);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->name, "ci");
  EXPECT_EQ(who->role, Role::kPublisher);
  std::string wrong = *secret;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  EXPECT_FALSE((*records)->Authenticate(wrong));
  EXPECT_FALSE((*records)->Authenticate(""));
  // Only the hash is stored: neither the database nor its write-ahead log (where a fresh
  // row lives until a checkpoint) holds the secret.
  std::string raw = ReadFile(dir / "r.db", 1 << 20).value_or("") + ReadFile(dir / "r.db-wal", 16 << 20).value_or("");
  ASSERT_NE(raw.find(Sha256Hex(*secret)), std::string::npos) << "the files read do not hold the token row";
  EXPECT_EQ(raw.find(*secret), std::string::npos);
  ASSERT_TRUE((*records)->RevokeToken("ci", 200));
  EXPECT_FALSE((*records)->Authenticate(*secret));
  EXPECT_FALSE((*records)->RevokeToken("ci", 201));
}

TEST(Records, ActivationsAnswerWhatRanWhen) {
  ScratchDir dir;
  auto records = *Records::Open(dir / "r.db");
  auto beat = [&](int64_t time, uint64_t generation) {
    Heartbeat h;
    h.fec = "fec01";
    h.time = time;
    h.running = generation;
    ASSERT_TRUE(records->RecordHeartbeat(h));
  };
  beat(1000, 1);
  beat(1060, 1);  // the same generation: no new activation
  beat(2000, 3);
  beat(3000, 1);
  auto all = records->Activations("fec01", 10);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].generation, 1u);
  EXPECT_EQ((*all)[0].time, 3000);
  EXPECT_FALSE(*records->ActivationAt("fec01", 999));
  EXPECT_EQ((*records->ActivationAt("fec01", 1500))->generation, 1u);
  EXPECT_EQ((*records->ActivationAt("fec01", 2000))->generation, 3u);
  EXPECT_EQ((*records->ActivationAt("fec01", 2999))->generation, 3u);
  EXPECT_EQ((*records->ActivationAt("fec01", 5000))->generation, 1u);
  auto fec = records->Fec("fec01");
  ASSERT_TRUE(fec && *fec);
  EXPECT_EQ((*fec)->last_heartbeat, 3000);
}

TEST(Records, ReopensWithoutMigratingAgain) {
  ScratchDir dir;
  {
    auto records = *Records::Open(dir / "r.db");
    ASSERT_TRUE(records->RecordGeneration({"fec01", 1, 10, 20, "a@1"}));
  }
  auto again = Records::Open(dir / "r.db");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ((*again)->LastGeneration("fec01"), 1u);
  ASSERT_TRUE((*again)->ClearGenerations());
  EXPECT_EQ((*again)->LastGeneration("fec01"), 0u);
}

TEST(Records, RefusalsAlikeAreOneRowPerMinuteWithACount) {
  ScratchDir dir;
  auto records = Records::Open(dir / "r.db");
  ASSERT_TRUE(records);
  AuditEntry refused{0, 120, "op", "operator", "10.0.0.1", "refused", "fec01", "lacks configure", 403};
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE((*records)->Audit(refused));
  refused.time = 150;  // same minute
  ASSERT_TRUE((*records)->Audit(refused));
  refused.time = 185;  // the next minute: a new row
  ASSERT_TRUE((*records)->Audit(refused));
  ASSERT_TRUE((*records)->Audit({0, 186, "op", "operator", "10.0.0.1", "assign", "fec01", "generation 2", 200}));
  auto log = (*records)->AuditLog(100, "");
  ASSERT_TRUE(log);
  ASSERT_EQ(log->size(), 3u);
  EXPECT_EQ((*log)[0].action, "assign");  // a change that was made: its own row
  EXPECT_EQ((*log)[1].count, 1);
  EXPECT_EQ((*log)[2].count, 1001);
  EXPECT_EQ((*log)[2].time, 120);
}

TEST(Records, KindsOfRefusalsPerMinuteAreCapped) {
  ScratchDir dir;
  auto records = Records::Open(dir / "r.db");
  ASSERT_TRUE(records);
  for (int i = 0; i < 1000; ++i)
    ASSERT_TRUE((*records)->Audit({0, 60, "-", "-", "10.0.0." + std::to_string(i), "refused", "", "no token", 401}));
  auto log = (*records)->AuditLog(10000, "");
  ASSERT_TRUE(log);
  ASSERT_EQ(log->size(), static_cast<size_t>(Records::kRefusalRowsPerMinute) + 1);
  EXPECT_EQ((*log)[0].action, "refused-overflow");
  EXPECT_EQ((*log)[0].count, 1000 - Records::kRefusalRowsPerMinute);
}

TEST(Records, PruneDropsOldRowsAndKeepsEachFecsNewestActivation) {
  ScratchDir dir;
  auto records = Records::Open(dir / "r.db");
  ASSERT_TRUE(records);
  ASSERT_TRUE((*records)->Audit({0, 100, "a", "admin", "", "gc", "", "", 200}));
  ASSERT_TRUE((*records)->Audit({0, 5000, "a", "admin", "", "gc", "", "", 200}));
  for (auto [fec, time, generation] : {std::tuple{"fec01", 100, 1}, {"fec01", 200, 2}, {"fec02", 300, 1}}) {
    Heartbeat h;
    h.fec = fec;
    h.time = time;
    h.running = generation;
    ASSERT_TRUE((*records)->RecordHeartbeat(h));
  }
  auto pruned = (*records)->Prune(1000, 1000);
  ASSERT_TRUE(pruned);
  EXPECT_EQ(pruned->audit, 1);
  EXPECT_EQ(pruned->activations, 1);  // fec01's first; fec01's and fec02's newest stay
  EXPECT_EQ((*records)->AuditLog(10, "")->size(), 1u);
  EXPECT_EQ((*records)->Activations("fec01", 10)->size(), 1u);
  EXPECT_EQ((*records)->Activations("fec02", 10)->size(), 1u);
  auto none = (*records)->Prune(0, 0);  // 0: keep everything
  ASSERT_TRUE(none);
  EXPECT_EQ(none->audit + none->activations, 0);
}

}  // namespace
}  // namespace wharf
