#include "store/store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "archive/pack.h"
#include "base/file.h"
#include "base/scratch_dir.h"
#include "crypto/sha256.h"
#include "store/changes.h"
#include "store/gc.h"
#include "store/retention.h"
#include "store/settings.h"

namespace wharf {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(GenerateKeyPair(dir_ + "/release"));
    auto key = PrivateKey::Load(dir_ + "/release.key");
    ASSERT_TRUE(key);
    key_.emplace(std::move(*key));
    auto store = Store::Open(dir_ + "/store", true);
    ASSERT_TRUE(store);
    store_.emplace(std::move(*store));
  }

  // Packs a one-file tree as name@version and returns the archive path.
  std::string Pack(const std::string& name, const std::string& version, const std::string& content,
                   const std::string& prefix = "") {
    std::string tree = dir_ + "/tree-" + name + "-" + version;
    EXPECT_TRUE(MakeDirs(tree + "/bin"));
    EXPECT_TRUE(WriteFileAtomic(tree + "/bin/app", content, 0755));
    PackOptions options;
    options.name = name;
    options.version = version;
    options.prefix = prefix.empty() ? "/opt/" + name : prefix;
    options.out_dir = dir_ + "/out-" + version + "-" + std::to_string(counter_++);
    EXPECT_TRUE(MakeDirs(options.out_dir));
    auto packed = PackTree(tree, options);
    EXPECT_TRUE(packed) << packed.error().message;
    (void)RemoveTree(tree);
    return packed->archive_path;
  }

  static std::string IndexOf(const std::string& archive) {
    return archive.substr(0, archive.size() - 8) + ".package.json";
  }

  ChangeOptions Options() {
    ChangeOptions options;
    options.key = &*key_;
    options.now = 1795482123;
    return options;
  }

  ScratchDir scratch_;
  std::string dir_ = scratch_.path();
  int counter_ = 0;
  std::optional<PrivateKey> key_;
  std::optional<Store> store_;
};

TEST_F(StoreTest, PublishMakesVersionVisibleAndIsIdempotent) {
  std::string archive = Pack("app", "1.0", "one");
  auto first = store_->Publish(archive, IndexOf(archive), false);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_FALSE(first->already_present);
  EXPECT_TRUE(PathExists(store_->root() + "/software/app/1.0/app-1.0.tar.zst"));
  auto json = ReadFile(store_->root() + "/software/app/1.0/package.json");
  ASSERT_TRUE(json);
  auto packed = ReadFile(store_->root() + "/software/app/1.0/package.json.zst");
  ASSERT_TRUE(packed) << "the index for the wire";
  EXPECT_EQ(DecompressIndex(*packed, json->size()).value_or(""), *json);
  auto again = store_->Publish(archive, IndexOf(archive), false);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->already_present);
}

TEST_F(StoreTest, PublishedVersionIsImmutable) {
  std::string a = Pack("app", "1.0", "one");
  std::string b = Pack("app", "1.0", "two");
  ASSERT_TRUE(store_->Publish(a, IndexOf(a), false));
  auto other = store_->Publish(b, IndexOf(b), false);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, ErrorCode::kAlreadyExists);
  auto index = store_->ReadIndex({"software", "app"}, "1.0");
  ASSERT_TRUE(index);
  auto original = ReadFile(IndexOf(a));
  EXPECT_EQ(*ReadFile(store_->root() + "/software/app/1.0/package.json"), *original);
}

TEST_F(StoreTest, PublishRefusesFlippedByteAndLeavesNothing) {
  std::string archive = Pack("app", "1.0", std::string(5000, 'x'));
  auto bytes = ReadFile(archive);
  ASSERT_TRUE(bytes);
  (*bytes)[bytes->size() / 2] ^= 0x01;
  ASSERT_TRUE(WriteFileAtomic(archive, *bytes));
  auto result = store_->Publish(archive, IndexOf(archive), false);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kCorrupt) << result.error().message;
  EXPECT_TRUE(ListDir(store_->root() + "/software/app")->empty());
}

TEST_F(StoreTest, DryRunPublishWritesNothing) {
  std::string archive = Pack("app", "1.0", "one");
  ASSERT_TRUE(store_->Publish(archive, IndexOf(archive), true));
  EXPECT_FALSE(PathExists(store_->root() + "/software/app/1.0"));
}

TEST_F(StoreTest, AssignWritesSignedChainedGenerations) {
  for (const char* v : {"1.0", "2.0"}) {
    std::string a = Pack("app", v, v);
    ASSERT_TRUE(store_->Publish(a, IndexOf(a), false));
  }
  auto g1 = Assign(*store_, "fec01", {{"app", "1.0"}}, Options());
  ASSERT_TRUE(g1) << g1.error().message;
  auto g2 = Assign(*store_, "fec01", {{"app", "2.0"}}, Options());
  ASSERT_TRUE(g2);
  EXPECT_EQ(g2->number, 2u);
  auto current = store_->CurrentGeneration("fec01");
  ASSERT_TRUE(current && *current);
  EXPECT_EQ((*current)->generation.packages[0].version, "2.0");
  auto g1_json = ReadFile(store_->root() + "/fecs/fec01/generations/1.json");
  EXPECT_EQ((*current)->generation.parent, Sha256Hex(*g1_json));
  auto signature = ReadFile(store_->root() + "/fecs/fec01/generations/2.json.sig");
  ASSERT_TRUE(signature);
  EXPECT_TRUE(VerifySignature({key_->public_key()}, (*current)->json, *signature));
  EXPECT_EQ(*ReadLink(store_->root() + "/fecs/fec01/software/app.tar.zst"),
            "../../../software/app/2.0/app-2.0.tar.zst");
}

TEST_F(StoreTest, AssignRefusesUnpublishedVersion) {
  auto result = Assign(*store_, "fec01", {{"app", "9.9"}}, Options());
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("not published"), std::string::npos);
  EXPECT_FALSE(PathExists(store_->root() + "/fecs/fec01/generation.json"));
}

TEST_F(StoreTest, RollbackPublishesEarlierPackagesAsNewGeneration) {
  for (const char* v : {"1.0", "2.0"}) {
    std::string a = Pack("app", v, v);
    ASSERT_TRUE(store_->Publish(a, IndexOf(a), false));
  }
  ASSERT_TRUE(Assign(*store_, "fec01", {{"app", "1.0"}}, Options()));
  ASSERT_TRUE(Assign(*store_, "fec01", {{"app", "2.0"}}, Options()));
  auto back = Rollback(*store_, "fec01", std::nullopt, Options());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->number, 3u);
  EXPECT_EQ(back->packages[0].version, "1.0");
  EXPECT_EQ(store_->History("fec01")->size(), 3u);
}

TEST_F(StoreTest, RefreshKeepsPackagesAndExtendsExpiry) {
  std::string a = Pack("app", "1.0", "one");
  ASSERT_TRUE(store_->Publish(a, IndexOf(a), false));
  auto g1 = Assign(*store_, "fec01", {{"app", "1.0"}}, Options());
  ChangeOptions later = Options();
  later.now += 86400;
  auto g2 = Refresh(*store_, "fec01", later);
  ASSERT_TRUE(g2);
  EXPECT_EQ(g2->packages, g1->packages);
  EXPECT_GT(g2->expires, g1->expires);
}

TEST_F(StoreTest, RefreshIfExpiringOnlyWhenDue) {
  std::string a = Pack("app", "1.0", "one");
  ASSERT_TRUE(store_->Publish(a, IndexOf(a), false));
  ChangeOptions options = Options();
  options.lifetime_seconds = 20 * 86400;
  auto g1 = Assign(*store_, "fec01", {{"app", "1.0"}}, options);
  ASSERT_TRUE(g1);
  auto early = RefreshIfExpiring(*store_, "fec01", 10 * 86400, options);
  ASSERT_TRUE(early) << early.error().message;
  EXPECT_FALSE(*early);
  EXPECT_EQ(store_->History("fec01")->size(), 1u);
  options.now += 11 * 86400;
  auto due = RefreshIfExpiring(*store_, "fec01", 10 * 86400, options);
  ASSERT_TRUE(due && *due);
  EXPECT_EQ((*due)->number, 2u);
  EXPECT_EQ((*due)->packages, g1->packages);
  EXPECT_EQ((*due)->expires, options.now + 20 * 86400);
  auto none = RefreshIfExpiring(*store_, "fec09", 10 * 86400, options);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
}

TEST_F(StoreTest, RefreshIfExpiringWaitsForAChangeUnderWayAndJudgesAfterIt) {
  std::string a = Pack("app", "1.0", "one");
  ASSERT_TRUE(store_->Publish(a, IndexOf(a), false));
  ChangeOptions options = Options();
  options.lifetime_seconds = 86400;
  auto g1 = Assign(*store_, "fec01", {{"app", "1.0"}}, options);
  ASSERT_TRUE(g1);
  Result<std::optional<Generation>> refreshed = std::optional<Generation>();
  std::thread refresher;
  {
    // A change under way holds the lock; the due refresh waits for it.
    auto lock = store_->Lock();
    ASSERT_TRUE(lock);
    refresher = std::thread([&] { refreshed = RefreshIfExpiring(*store_, "fec01", 10 * 86400, options); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(store_->History("fec01")->size(), 1u) << "the refresh did not wait for the lock";
    auto current = store_->CurrentGeneration("fec01");
    Generation fresh = NextGeneration("fec01", (*current)->generation, (*current)->json, g1->packages,
                                      options.now, 30 * 86400);
    ASSERT_TRUE(store_->WriteGeneration(fresh, GenerationToJson(fresh), *key_));
  }
  refresher.join();
  ASSERT_TRUE(refreshed) << refreshed.error().message;
  EXPECT_FALSE(*refreshed) << "the generation the change wrote is not due";
  EXPECT_EQ(store_->History("fec01")->size(), 2u);
}

TEST_F(StoreTest, DryRunChangeWritesNothing) {
  std::string a = Pack("app", "1.0", "one");
  ASSERT_TRUE(store_->Publish(a, IndexOf(a), false));
  ChangeOptions options = Options();
  options.dry_run = true;
  auto g = Assign(*store_, "fec01", {{"app", "1.0"}}, options);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->number, 1u);
  EXPECT_FALSE(PathExists(store_->root() + "/fecs/fec01"));
}

// Six versions assigned in turn: generations 1..6 name app@1..6.
class RetentionTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    for (int v = 1; v <= 6; ++v) {
      std::string a = Pack("app", std::to_string(v), "v" + std::to_string(v));
      ASSERT_TRUE(store_->Publish(a, IndexOf(a), false));
      ASSERT_TRUE(Assign(*store_, "fec01", {{"app", std::to_string(v)}}, Options()));
    }
  }
  std::vector<std::string> Versions() { return *store_->Versions({"software", "app"}); }
};

TEST_F(RetentionTest, GcKeepsWhatTheLastReleasesName) {
  auto report = CollectGarbage(*store_, {1, 3, false, {}});
  ASSERT_TRUE(report) << report.error().message;
  // keep 1 alone would leave 6; generations 4..6 (the last 3 releases) name 4, 5, 6.
  EXPECT_EQ(Versions(), (std::vector<std::string>{"4", "5", "6"}));
  EXPECT_EQ(report->removed.size(), 3u);
  EXPECT_EQ(report->kept_assigned.size(), 2u);
}

TEST_F(RetentionTest, RefreshesDoNotPushAReleaseOutOfTheRetention) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Refresh(*store_, "fec01", Options()));  // generations 7..11
  ASSERT_TRUE(CollectGarbage(*store_, {1, 3, false, {}}));
  EXPECT_EQ(Versions(), (std::vector<std::string>{"4", "5", "6"}));
  auto back = Rollback(*store_, "fec01", std::nullopt, Options());  // to generation 5: app@5
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->packages[0].version, "5");
}

TEST(Retention, StartCountsDifferentPackageSets) {
  auto gen = [](uint64_t n, const std::string& version) {
    Generation g;
    g.number = n;
    g.packages.push_back({"app", version, "/opt/app", "", 0, "", "", 0, ""});
    return g;
  };
  // 1:a 2:b 3:b (refresh) 4:c 5:b (rollback) 6:c
  std::vector<Generation> h = {gen(1, "a"), gen(2, "b"), gen(3, "b"), gen(4, "c"), gen(5, "b"), gen(6, "c")};
  EXPECT_EQ(RetentionStart(h, 1), 5u);  // only c: generation 6 (5 is b)
  EXPECT_EQ(RetentionStart(h, 2), 1u);  // b and c reach back to generation 2
  EXPECT_EQ(RetentionStart(h, 3), 0u);
  EXPECT_EQ(RetentionStart({}, 3), 0u);
}

TEST_F(RetentionTest, RollbackToARemovedVersionIsRefusedAndWritesNothing) {
  ASSERT_TRUE(CollectGarbage(*store_, {3, 3, false, {}}));
  auto before = ReadFile(store_->root() + "/fecs/fec01/generation.json");
  auto refused = Rollback(*store_, "fec01", 2, Options());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(refused.error().message,
            "fec01: generation 2 names app@2, which this store no longer holds (removed by gc or republished with "
            "other bytes); republish it, or roll back to a generation within the retention (`wharf history fec01` "
            "marks those that cannot be)");
  EXPECT_EQ(ReadFile(store_->root() + "/fecs/fec01/generation.json").value(), before.value());
  EXPECT_FALSE(PathExists(store_->root() + "/fecs/fec01/generations/7.json"));
  ChangeOptions dry = Options();
  dry.dry_run = true;
  EXPECT_FALSE(Rollback(*store_, "fec01", 1, dry));  // a dry run says the same
  EXPECT_TRUE(Rollback(*store_, "fec01", 4, Options()));
}

TEST_F(RetentionTest, RollbackToAVersionRepublishedWithOtherBytesIsRefused) {
  ASSERT_TRUE(CollectGarbage(*store_, {3, 3, false, {}}));
  std::string other = Pack("app", "2", "not the bytes generation 2 names");
  ASSERT_TRUE(store_->Publish(other, IndexOf(other), false));
  auto refused = Rollback(*store_, "fec01", 2, Options());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("names app@2, which this store no longer holds"), std::string::npos);
}

TEST_F(RetentionTest, NoChangeSignsAGenerationNamingARemovedVersion) {
  // A version removed behind the store's back (by hand): a refresh of a generation naming it
  // is refused as well; nothing is written.
  ASSERT_TRUE(RemoveTree(store_->root() + "/software/app/6"));
  auto refused = Refresh(*store_, "fec01", Options());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("fec01: the new generation names app@6"), std::string::npos)
      << refused.error().message;
  EXPECT_FALSE(PathExists(store_->root() + "/fecs/fec01/generations/7.json"));
  EXPECT_TRUE(Assign(*store_, "fec01", {{"app", "5"}}, Options()));  // a change away from it is fine
}

TEST_F(RetentionTest, MissingVersionsNamesWhatIsGone) {
  ASSERT_TRUE(CollectGarbage(*store_, {3, 3, false, {}}));
  auto history = store_->History("fec01");
  ASSERT_TRUE(history);
  std::map<std::string, std::string> cache;
  EXPECT_EQ(MissingVersions(*store_, (*history)[0].packages, &cache), std::vector<std::string>{"app@1"});
  EXPECT_TRUE(MissingVersions(*store_, (*history)[5].packages, &cache).empty());
}

TEST_F(StoreTest, RetentionSettingRoundTripsBesideTheOfflineSetting) {
  EXPECT_EQ(*ReadRetention(*store_), Retention{});
  ASSERT_TRUE(WriteStoreSettings(store_->root(), {true, 86400, 1795482123}));
  Retention r{2, 4, true};
  ASSERT_TRUE(WriteRetention(*store_, r));
  EXPECT_EQ(*ReadRetention(*store_), r);
  auto settings = ReadStoreSettings(store_->root());
  ASSERT_TRUE(settings);
  EXPECT_TRUE(settings->offline);  // the other settings stay
  EXPECT_EQ(settings->changed, 1795482123);
  EXPECT_FALSE(WriteRetention(*store_, {0, 3, false}));
  ASSERT_TRUE(WriteFileAtomic(store_->root() + "/store.json",
                              R"({"offline": false, "offline_lifetime_seconds": 1, "changed": "2026-12-03T00:00:00Z",)"
                              R"( "retention": {"keep": 0, "generations": 3, "prune_on_release": true}})"));
  auto bad = ReadRetention(*store_);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("retention keep and generations must be at least 1"), std::string::npos);
}

TEST_F(StoreTest, BootScriptVersionsAreStoredByContentAndSignedGenerationsKeepTheirs) {
  std::string a = Pack("app", "1.0", "one");
  ASSERT_TRUE(store_->Publish(a, IndexOf(a), false));
  ASSERT_TRUE(Assign(*store_, "fec01", {{"app", "1.0"}}, Options()));
  // A store from before scripts were stored by content: the script itself under its name.
  std::string root = store_->root();
  ASSERT_TRUE(WriteFileAtomic(root + "/fecs/global/init/10-net", "old\n"));
  InitEdit link{InitEdit::kLink, "10-net", "", 0, ""};
  auto linked = EditInit(*store_, "fec01", link, Options());
  ASSERT_TRUE(linked) << linked.error().message;
  std::string old_blob = InitBlobPath("global", Sha256Hex("old\n"));
  EXPECT_EQ(linked->init.at(0).path, old_blob);
  EXPECT_EQ(ReadFile(root + "/" + old_blob).value_or(""), "old\n");
  // A new global version: a blob beside the old one, the name points at it.
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/new", "new\n"));
  ASSERT_TRUE(EditInit(*store_, "global", {InitEdit::kAdd, "10-net", dir_ + "/new", 0, ""}, Options()));
  std::string new_blob = InitBlobPath("global", Sha256Hex("new\n"));
  EXPECT_EQ(ReadFile(root + "/" + old_blob).value_or(""), "old\n") << "signed generations keep their bytes";
  EXPECT_EQ(ReadFile(root + "/" + new_blob).value_or(""), "new\n");
  EXPECT_EQ(ReadLink(root + "/fecs/global/init/10-net").value_or(""), "../../global/init-sha256/" + Sha256Hex("new\n"));
  // gc keeps what kept generations and the names point at, removes the rest.
  ASSERT_TRUE(WriteFileAtomic(root + "/fecs/global/init-sha256/" + Sha256Hex("stray"), "stray"));
  GcReport report;
  {
    auto lock = store_->Lock();
    ASSERT_TRUE(lock);
    ASSERT_TRUE(CollectInitScripts(*store_, GcOptions{}, report));
  }
  ASSERT_EQ(report.removed_scripts.size(), 1u);
  EXPECT_EQ(report.removed_scripts[0].name, InitBlobPath("global", Sha256Hex("stray")));
  EXPECT_TRUE(PathExists(root + "/" + old_blob) && PathExists(root + "/" + new_blob));
  // Once no kept generation names the old one, it goes; a rollback to it is then refused.
  for (int t : {11, 12, 13}) ASSERT_TRUE(EditInit(*store_, "fec01", {InitEdit::kLink, "10-net", "", t, ""}, Options()));
  report = {};
  {
    auto lock = store_->Lock();
    ASSERT_TRUE(CollectInitScripts(*store_, GcOptions{}, report));
  }
  ASSERT_EQ(report.removed_scripts.size(), 1u);
  EXPECT_EQ(report.removed_scripts[0].name, old_blob);
  auto back = Rollback(*store_, "fec01", 2, Options());
  ASSERT_FALSE(back);
  EXPECT_NE(back.error().message.find("is no longer in the store; add it again"), std::string::npos) << back.error().message;
}

TEST(NameVersion, ParsesAndRefuses) {
  EXPECT_EQ(ParseNameVersion("demo-ioc@1.2.0")->version, "1.2.0");
  EXPECT_FALSE(ParseNameVersion("demo-ioc"));
  EXPECT_FALSE(ParseNameVersion("../x@1"));
  EXPECT_FALSE(ParseNameVersion("x@../1"));
}

}  // namespace wharf
