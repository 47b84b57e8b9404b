// The agent against a real store in a scratch folder (file://) with a fake clock: the
// time rules a board without a real-time clock depends on, and the plan it makes.
#include "agent/agent.h"
#include "agent/dev.h"
#include "agent/install.h"
#include "agent/supervisor.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include "fetch/test_listener.h"
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "archive/delta.h"
#include "archive/pack.h"
#include "crypto/sha256.h"
#include "base/scratch_dir.h"
#include "store/changes.h"
#include "store/settings.h"
#include "store/store.h"

namespace wharf {
namespace {

constexpr int64_t kNow = 1795482123;  // 2026-11-24T01:02:03Z
constexpr int64_t kDay = 86400;

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(GenerateKeyPair(dir_ / "release"));
    key_.emplace(std::move(*PrivateKey::Load(dir_ / "release.key")));
    store_.emplace(std::move(*Store::Open(dir_ / "store", true)));
    // Past the frame size and incompressible: its own frames, which an update can skip.
    std::string big;
    uint32_t state = 12345;
    for (int i = 0; i < 1500000; ++i) big += static_cast<char>((state = state * 1103515245u + 12345u) >> 24);
    for (const char* version : {"1", "2"}) ASSERT_TRUE(PublishVersion(version, big));
    config_.root = dir_ / "fec";
    config_.stores = {"file://" + dir_ / "store"};
    config_.fec = "fec01";
    config_.trusted = {key_->public_key()};
  }

  // Packs and publishes app@version: bin/app holds the version, lib/big `big`.
  Status PublishVersion(const std::string& version, const std::string& big) {
    std::string tree = dir_ / ("tree" + version);
    WriteTestFile(tree + "/bin/app", version, 0755);
    WriteTestFile(tree + "/lib/big", big);
    PackOptions options;
    options.name = "app";
    options.version = version;
    options.prefix = "/opt/app";
    options.out_dir = dir_ / "out";
    auto packed = PackTree(tree, options);
    if (!packed) return std::unexpected(packed.error());
    auto published = store_->Publish(packed->archive_path, packed->index_path, false);
    if (!published) return std::unexpected(published.error());
    return {};
  }

  // Publishes a generation with app@version, created at `created`.
  void Assign(const std::string& version, int64_t created, int64_t lifetime = 30 * kDay) {
    ChangeOptions options;
    options.key = &*key_;
    options.now = created;
    options.lifetime_seconds = lifetime;
    auto g = wharf::Assign(*store_, "fec01", {{"app", version}}, options);
    ASSERT_TRUE(g) << g.error().message;
  }

  Result<SyncReport> Sync(int64_t clock_now) {
    FakeClock clock(clock_now);
    Fetcher fetcher;
    Agent agent(config_, clock, fetcher);
    return agent.Sync();
  }

  // Packs a tree whose bin/app holds `content` as name@dev.
  DevUpload PackDev(const std::string& content, const std::string& name = "app",
                    const std::string& prefix = "/opt/app", const std::string& services = "") {
    std::string tree = dir_ / ("dev-" + name + "-" + std::to_string(++dev_trees_));
    WriteTestFile(tree + "/bin/app", content, 0755);
    PackOptions options;
    options.name = name;
    options.version = "dev";
    options.prefix = prefix;
    options.out_dir = tree + ".out";
    options.services = services;
    auto packed = PackTree(tree, options);
    EXPECT_TRUE(packed) << packed.error().message;
    return {*ReadFile(packed->index_path), packed->archive_path};
  }

  Layout fec() const { return Layout(dir_ / "fec"); }
  std::string Current() const { return ReadLink(dir_ / "fec/var/lib/wharf/current").value_or(""); }

  ScratchDir dir_;
  int dev_trees_ = 0;
  std::optional<PrivateKey> key_;
  std::optional<Store> store_;
  AgentConfig config_;
};

}  // namespace

TEST_F(AgentTest, AppliesThenHasNothingToDo) {
  Assign("1", kNow);
  auto first = Sync(kNow);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->outcome, SyncOutcome::kApplied);
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/bin/app"), "1");
  auto again = Sync(kNow);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->outcome, SyncOutcome::kUpToDate);
  EXPECT_EQ(again->requests, 1u);
}

TEST_F(AgentTest, DryRunPlansAndChangesNothing) {
  Assign("1", kNow);
  config_.dry_run = true;
  auto report = Sync(kNow);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->outcome, SyncOutcome::kPlanned);
  ASSERT_EQ(report->plan.size(), 1u);
  EXPECT_FALSE(report->plan[0].present);
  EXPECT_FALSE(PathExists(dir_ / "fec/var/lib/wharf/current"));
}

TEST_F(AgentTest, BoardAt1970AcceptsNewerGenerationAndSaysClockIsBehind) {
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  Assign("2", kNow + kDay);
  auto report = Sync(0);  // no real-time clock: the board thinks it is 1970
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->outcome, SyncOutcome::kApplied);
  EXPECT_TRUE(report->clock_behind);
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/bin/app"), "2");
}

TEST_F(AgentTest, BoardAt1970StillRefusesGenerationExpiredBeforeWhatItAccepted) {
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  // A generation that expired before the one already accepted was created, yet numbered
  // above it (wharf's tools never make one; a stolen old signing run might): a board at
  // 1970 must judge it by the newest time it has accepted, not by its own clock.
  auto current = store_->CurrentGeneration("fec01");
  Generation stale = (*current)->generation;
  stale.number += 1;
  stale.created = kNow - 10 * kDay;
  stale.expires = kNow - 9 * kDay;
  auto lock = store_->Lock();
  ASSERT_TRUE(store_->WriteGeneration(stale, GenerationToJson(stale), *key_));
  auto report = Sync(0);
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code, ErrorCode::kRejected);
  EXPECT_NE(report.error().message.find("clock is behind"), std::string::npos);
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/bin/app"), "1");
}

TEST_F(AgentTest, ActiveGenerationKeepsRunningAfterItExpires) {
  Assign("1", kNow, kDay);
  ASSERT_TRUE(Sync(kNow));
  auto later = Sync(kNow + 2 * kDay);
  ASSERT_TRUE(later) << later.error().message;
  EXPECT_EQ(later->outcome, SyncOutcome::kUpToDate);
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/bin/app"), "1");
}

TEST_F(AgentTest, GoodClockRefusesExpiredNewGeneration) {
  Assign("1", kNow, kDay);
  auto report = Sync(kNow + 2 * kDay);
  ASSERT_FALSE(report);
  EXPECT_NE(report.error().message.find("expired"), std::string::npos);
  EXPECT_FALSE(PathExists(dir_ / "fec/opt/app"));
}

TEST_F(AgentTest, UnreachableStoreSaysWhatRunsAndThatItExpired) {
  Assign("1", kNow, kDay);
  ASSERT_TRUE(Sync(kNow));
  config_.stores = {"http://127.0.0.1:9"};
  auto valid = Sync(kNow + 1);
  ASSERT_TRUE(valid) << valid.error().message;
  EXPECT_NE(valid->offline_reason.find("; running generation 1, valid until 2026-11-25T01:02:03Z"), std::string::npos)
      << valid->offline_reason;
  auto expired = Sync(kNow + 2 * kDay);
  ASSERT_TRUE(expired) << expired.error().message;
  EXPECT_EQ(expired->outcome, SyncOutcome::kOffline);
  EXPECT_TRUE(expired->offline_reason.starts_with("store unreachable (")) << expired->offline_reason;
  EXPECT_TRUE(expired->offline_reason.ends_with("); running generation 1, expired at 2026-11-25T01:02:03Z"))
      << expired->offline_reason;
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/bin/app"), "1");
}

TEST_F(AgentTest, OfflineStoreGenerationRunsPastItsExpiryFromAFolder) {
  ASSERT_TRUE(WriteStoreSettings(store_->root(), {true, kDay, kNow}));
  Assign("1", kNow, 30 * kDay);  // the offline store's lifetime wins over the one asked
  auto current = store_->CurrentGeneration("fec01");
  ASSERT_TRUE(current && *current);
  EXPECT_TRUE((*current)->generation.offline);
  EXPECT_EQ((*current)->generation.expires, kNow + kDay);
  auto report = Sync(kNow + 2 * kDay);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->outcome, SyncOutcome::kApplied);
  EXPECT_EQ(report->expiry, "running expired offline generation 1 (expired at 2026-11-25T01:02:03Z)");
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/bin/app"), "1");
  // Synced again from the medium: up to date, and still saying so.
  auto again = Sync(kNow + 3 * kDay);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->outcome, SyncOutcome::kUpToDate);
  EXPECT_EQ(again->expiry, report->expiry);
}

TEST_F(AgentTest, KeepsOnlyTheNewestGenerations) {
  config_.keep = 2;
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  Assign("2", kNow);
  ASSERT_TRUE(Sync(kNow));
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  Assign("2", kNow);
  ASSERT_TRUE(Sync(kNow));
  auto profiles = ListDir(dir_ / "fec/var/lib/wharf/profiles");
  EXPECT_EQ(*profiles, (std::vector<std::string>{"3", "4"}));
  // Both versions are named by a kept profile: both stay.
  EXPECT_EQ(ListDir(dir_ / "fec/var/lib/wharf/packages/app")->size(), 6u);  // 2 folders, indexes, stamps
}

TEST_F(AgentTest, UpdateTakesUnchangedFilesFromThePackagesItHolds) {
  Assign("1", kNow);
  auto first = Sync(kNow);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->files_reused, 0u);
  Assign("2", kNow);
  auto second = Sync(kNow);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->files_reused, 1u);  // lib/big, unchanged
  EXPECT_LT(second->bytes_fetched, first->bytes_fetched / 2);
  // Not even copied: both versions' folders hold the one read-only inode.
  std::vector<ino_t> inodes;
  std::string packages = dir_ / "fec/var/lib/wharf/packages/app";
  auto leaves = ListDir(packages);
  ASSERT_TRUE(leaves);
  for (const auto& leaf : *leaves) {
    struct stat st;
    if (!leaf.ends_with(".package.json") && ::stat((packages + "/" + leaf + "/lib/big").c_str(), &st) == 0)
      inodes.push_back(st.st_ino);
  }
  ASSERT_EQ(inodes.size(), 2u);
  EXPECT_EQ(inodes[0], inodes[1]);
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/bin/app"), "2");
  EXPECT_EQ(ReadFile(dir_ / "fec/opt/app/lib/big")->size(), 1500000u);
}

TEST_F(AgentTest, ChangedBigFileComesAsDeltaAgainstTheHeldVersion) {
  Assign("1", kNow);
  auto first = Sync(kNow);
  ASSERT_TRUE(first);
  // Version 3: the big file rebuilt with a small change in its middle.
  std::string big = *ReadFile(dir_ / "tree1/lib/big");
  big.replace(700000, 32, "a small change to a big binary.");
  ASSERT_TRUE(PublishVersion("3", big));
  ASSERT_TRUE(PathExists(dir_ / "store/software/app/3/deltas.json"));
  Assign("3", kNow);
  auto update = Sync(kNow);
  ASSERT_TRUE(update) << update.error().message;
  EXPECT_EQ(update->files_patched, 2u) << "lib/big against the held version, the new bin/app on its own";
  EXPECT_LT(update->bytes_fetched, 20000u) << "patches, not the file's 1.5 MB of frames";
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/lib/big"), big);
}

TEST_F(AgentTest, ForgedDeltaIsRefusedByTheSignedHash) {
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  std::string big = *ReadFile(dir_ / "tree1/lib/big");
  std::string changed = big;
  changed.replace(700000, 5, "12345");
  ASSERT_TRUE(PublishVersion("3", changed));
  // deltas.json is not signed: a mirror swaps in a patch that makes other content, with a
  // deltas.json that vouches for it.
  std::string evil = big;
  evil.replace(700000, 5, "EVIL!");
  auto patch = MakeDelta(big, evil, 3);
  std::string folder = dir_ / "store/software/app/3/";
  auto deltas = ParseDeltaIndex(*ReadFile(folder + "deltas.json"));
  ASSERT_TRUE(deltas);
  auto big_patch = std::find_if(deltas->begin(), deltas->end(),
                                [](const DeltaEntry& d) { return d.path == "opt/app/lib/big"; });
  ASSERT_NE(big_patch, deltas->end());
  ASSERT_EQ(std::count_if(deltas->begin(), deltas->end(), [](const DeltaEntry& d) { return d.path == "opt/app/lib/big"; }), 1)
      << "versions 1 and 2 hold the same big file: one patch";
  big_patch->file.clear();  // inline, as small patches are
  big_patch->data = *patch;
  big_patch->size = patch->size();
  big_patch->sha256 = Sha256Hex(*patch);
  ASSERT_TRUE(WriteFileAtomic(folder + "deltas.json", DeltaIndexToJson(*deltas)));
  Assign("3", kNow);
  auto update = Sync(kNow);
  ASSERT_FALSE(update);
  EXPECT_EQ(update.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(update.error().message.find("does not match its sha256"), std::string::npos);
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/lib/big"), big) << "still on version 1";
}

TEST_F(AgentTest, OfflineWhenNoStoreAnswers) {
  config_.stores = {"http://127.0.0.1:9"};
  auto report = Sync(kNow);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->outcome, SyncOutcome::kOffline);
  EXPECT_FALSE(report->offline_reason.empty());
}

TEST_F(AgentTest, DevVersionStandsInForTheGenerationsUntilDropped) {
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  auto installed = InstallDev(fec(), "app", PackDev("dev build"), kNow, false);
  ASSERT_TRUE(installed) << installed.error().message;
  EXPECT_EQ(installed->package.replaces, std::optional<std::string>("1"));
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/bin/app"), "dev build");
  EXPECT_EQ(Current(), "profiles/1-dev-1");
  auto listed = ReadDevList(fec());
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->packages.size(), 1u);
  EXPECT_EQ(listed->packages[0].installed, kNow);

  auto dropped = DropDev(fec(), "app", false);
  ASSERT_TRUE(dropped) << dropped.error().message;
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/bin/app"), "1");
  EXPECT_EQ(Current(), "profiles/1");
  EXPECT_EQ(*ListDir(dir_ / "fec/var/lib/wharf/profiles"), std::vector<std::string>{"1"});
  EXPECT_EQ(ListDir(dir_ / "fec/var/lib/wharf/packages/app")->size(), 3u)  // folder, index, stamp
      << "the dev version is collected";
}

TEST_F(AgentTest, SameGenerationKeepsTheDevVersionANewOneReplacesIt) {
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  ASSERT_TRUE(InstallDev(fec(), "app", PackDev("dev build"), kNow, false));
  auto again = Sync(kNow);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->outcome, SyncOutcome::kUpToDate);
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/bin/app"), "dev build");

  Assign("2", kNow);
  auto next = Sync(kNow);
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/bin/app"), "2");
  EXPECT_EQ(Current(), "profiles/2");
  EXPECT_EQ(*ListDir(dir_ / "fec/var/lib/wharf/profiles"), (std::vector<std::string>{"1", "2"}));
  auto leaves = ListDir(dir_ / "fec/var/lib/wharf/packages/app");
  for (const auto& leaf : *leaves) EXPECT_FALSE(leaf.starts_with("dev-")) << leaf << " left behind";
}

TEST_F(AgentTest, DevVersionOfAnUnassignedPackageAddsItsPrefixAndDropRemovesIt) {
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  auto installed = InstallDev(fec(), "tool", PackDev("tool", "tool", "/opt/tool"), kNow, false);
  ASSERT_TRUE(installed) << installed.error().message;
  EXPECT_FALSE(installed->package.replaces);
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/tool/bin/app"), "tool");
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/bin/app"), "1");
  ASSERT_TRUE(DropDev(fec(), "tool", false));
  EXPECT_FALSE(PathExists(dir_ / "fec/opt/tool"));
  EXPECT_EQ(*ReadFile(dir_ / "fec/opt/app/bin/app"), "1");
}

TEST_F(AgentTest, NewGenerationRemovesTheLinkOfAnAddedDevVersion) {
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  ASSERT_TRUE(InstallDev(fec(), "tool", PackDev("tool", "tool", "/opt/tool"), kNow, false));
  Assign("2", kNow);
  ASSERT_TRUE(Sync(kNow));
  EXPECT_FALSE(PathExists(dir_ / "fec/opt/tool"));
  EXPECT_TRUE(ListDir(dir_ / "fec/var/lib/wharf/packages/tool")->empty());
}

TEST_F(AgentTest, DevInstallRefusesAnotherPrefixOrAnOverlapAndChangesNothing) {
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  auto moved = InstallDev(fec(), "app", PackDev("x", "app", "/opt/elsewhere"), kNow, false);
  ASSERT_FALSE(moved);
  EXPECT_NE(moved.error().message.find("deploy its dev version with --prefix /opt/app"), std::string::npos)
      << moved.error().message;
  auto inside = InstallDev(fec(), "tool", PackDev("x", "tool", "/opt/app/tool"), kNow, false);
  ASSERT_FALSE(inside);
  EXPECT_NE(inside.error().message.find("overlaps app at /opt/app"), std::string::npos) << inside.error().message;
  EXPECT_EQ(Current(), "profiles/1");
  EXPECT_FALSE(PathExists(dir_ / "fec/var/lib/wharf/packages/tool"));
}

TEST_F(AgentTest, DevInstallNeedsAnActiveGeneration) {
  auto refused = InstallDev(fec(), "app", PackDev("x"), kNow, false);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("run `wharf-agent sync` first"), std::string::npos);
  EXPECT_FALSE(PathExists(dir_ / "fec/var/lib/wharf"));
}

TEST_F(AgentTest, DropDevOfAPackageThatIsNoDevVersionIsRefused) {
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  auto refused = DropDev(fec(), "app", false);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("app is not a dev version here"), std::string::npos);
}

TEST_F(AgentTest, ServicesOfADevVersionAreHeldBack) {
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  auto active = ReadActive(fec());
  ASSERT_TRUE(active && *active);
  ASSERT_TRUE(InstallDev(fec(), "app", PackDev("x", "app", "/opt/app", R"([{"name": "a", "command": "bin/app"}])"),
                         kNow, false));
  std::vector<std::string> errors, held_back;
  EXPECT_TRUE(DesiredServices(fec(), (*active)->generation, errors, &held_back).empty());
  EXPECT_EQ(held_back, std::vector<std::string>{"app"});
}

// A service's fingerprint takes in the configuration versions it reads, and only those:
// conf@2 changes the reader's, not the other's, which stays exactly what it was before
// configurations were read (an agent upgrade restarts nothing that reads none).
TEST_F(AgentTest, ConfigurationVersionsAreInTheFingerprintOfTheirReadersOnly) {
  auto publish = [&](const std::string& name, const std::string& version, const std::string& prefix,
                     const std::string& services, bool configuration, std::vector<PackageMatch> matches) {
    std::string tree = dir_ / ("t-" + name + "-" + version);
    WriteTestFile(tree + "/bin/app", name + version, 0755);
    PackOptions options;
    options.name = name;
    options.version = version;
    options.prefix = prefix;
    options.out_dir = dir_ / "out";
    options.services = services;
    options.configuration = configuration;
    options.matches = std::move(matches);
    auto packed = PackTree(tree, options);
    ASSERT_TRUE(packed) << packed.error().message;
    ASSERT_TRUE(store_->Publish(packed->archive_path, packed->index_path, false));
  };
  publish("ioc", "1", "/opt/ioc", R"([{"name": "reader", "command": "bin/app"}])", false, {});
  publish("tool", "1", "/opt/tool", R"([{"name": "other", "command": "bin/app"}])", false, {});
  for (const char* v : {"1", "2"}) publish("conf", v, "/etc/conf", "", true, {{"ioc", "1"}});
  ChangeOptions options;
  options.key = &*key_;
  options.now = kNow;
  auto desired = [&](const std::vector<NameVersion>& packages) {
    EXPECT_TRUE(wharf::Assign(*store_, "fec01", packages, options));
    EXPECT_TRUE(Sync(kNow));
    auto active = ReadActive(fec());
    EXPECT_TRUE(active && *active);
    std::vector<std::string> errors;
    auto services = DesiredServices(fec(), (*active)->generation, errors);
    EXPECT_TRUE(errors.empty()) << errors.front();
    std::map<std::string, DesiredService> by_name;
    for (auto& s : services) by_name[s.def.name] = s;
    return std::pair{by_name, (*active)->generation};
  };
  auto [first, g1] = desired({{"ioc", "1"}, {"tool", "1"}, {"conf", "1"}});
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first["reader"].configuration, std::vector<std::string>{"conf@1"});
  EXPECT_TRUE(first["other"].configuration.empty());
  const PackageRef& tool = *std::find_if(g1.packages.begin(), g1.packages.end(),
                                         [](const PackageRef& p) { return p.name == "tool"; });
  EXPECT_EQ(first["other"].fingerprint, Sha256Hex(tool.archive_sha256 + "\n" + ServicesToJson({first["other"].def}) +
                                                  "\n" + first["other"].prefix));
  auto [second, g2] = desired({{"conf", "2"}});
  EXPECT_EQ(second["reader"].configuration, std::vector<std::string>{"conf@2"});
  EXPECT_NE(second["reader"].fingerprint, first["reader"].fingerprint);
  EXPECT_EQ(second["other"].fingerprint, first["other"].fingerprint);
  EXPECT_EQ(ServiceOptions(fec().root(), second["reader"]).configuration, std::vector<std::string>{"conf@2"});
}

class DevStreamTest : public AgentTest {
 protected:
  // Receives `bytes` as install-dev does from its stdin.
  Result<DevUpload> Receive(const std::string& bytes) {
    std::string path = dir_ / "stream";
    EXPECT_TRUE(WriteFileAtomic(path, bytes));
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    return ReceiveDevStream(fd.get(), fec(), "app");
  }
  std::string Stream(const DevUpload& upload) {
    std::string archive = *ReadFile(upload.archive_path);
    return DevStreamHeader(upload.index_json.size(), archive.size()) + upload.index_json + archive;
  }
};

TEST_F(DevStreamTest, TakesWhatDevDeploySendsAndRefusesCutOrGarbledStreams) {
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  DevUpload upload = PackDev("dev build");
  std::string stream = Stream(upload);
  auto good = Receive(stream);
  ASSERT_TRUE(good) << good.error().message;
  EXPECT_EQ(good->index_json, upload.index_json);
  EXPECT_EQ(*ReadFile(good->archive_path), *ReadFile(upload.archive_path));

  auto refuses = [&](const std::string& bytes, const std::string& why) {
    auto got = Receive(bytes);
    ASSERT_FALSE(got) << why;
    EXPECT_NE(got.error().message.find(why), std::string::npos) << got.error().message;
  };
  refuses("", "nothing came on stdin");
  refuses(stream.substr(0, stream.size() - 10), "archive bytes (cut off?)");
  refuses(stream.substr(0, 40), "bytes of package.json (cut off?)");
  refuses(stream + "x", "bytes follow the archive");
  refuses("GET / HTTP/1.0\r\n\r\n", "not a dev stream");
  refuses("wharf-dev 2 10 10\n", "dev stream format 2");
  refuses("wharf-dev 1 10 99999999999999999999\n", "not a dev stream");
  refuses("wharf-dev 1 10 " + std::to_string(kMaxDevArchiveBytes + 1) + "\n", "refusing anything above");
  refuses(std::string(200, 'w'), "not a dev stream");
}

TEST_F(DevStreamTest, InstallRefusesAnArchiveThatDoesNotMatchItsIndex) {
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  DevUpload upload = PackDev("dev build");
  std::string archive = *ReadFile(upload.archive_path);
  archive[archive.size() / 2] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(upload.archive_path, archive));
  auto refused = InstallDev(fec(), "app", upload, kNow, false);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(Current(), "profiles/1");
}

TEST(Mirrors, RetryWithBackOffWhenNoStoreAnswersAndRememberTheOneThatDid) {
  std::vector<int> pauses;
  FetchOptions options;
  options.sleep_seconds = [&](int s) { pauses.push_back(s); };
  Fetcher fetcher(options);
  Mirrors mirrors({"http://a", "http://b"}, fetcher);
  std::vector<std::string> asked;
  int failures_left = 3;  // round 1 (a, b) and a in round 2 fail; b answers
  auto attempt = [&](const std::string& url) -> Status {
    asked.push_back(url);
    if (failures_left-- > 0) return Fail(ErrorCode::kUnavailable, url + ": reset");
    return {};
  };
  ASSERT_TRUE(mirrors.Try("x", attempt));
  EXPECT_EQ(asked, (std::vector<std::string>{"http://a/x", "http://b/x", "http://a/x", "http://b/x"}));
  EXPECT_EQ(pauses, std::vector<int>{2});
  asked.clear();
  ASSERT_TRUE(mirrors.Try("y", attempt));
  EXPECT_EQ(asked, std::vector<std::string>{"http://b/y"});  // b answered last time

  // A refusal is an answer: no retry round.
  pauses.clear();
  auto refused = mirrors.Try("z", [](const std::string& url) -> Status {
    return Fail(ErrorCode::kNotFound, url + ": 404");
  });
  EXPECT_FALSE(refused);
  EXPECT_TRUE(pauses.empty());
  // Nobody ever answers: two more rounds, then the error.
  auto away = mirrors.Try("w", [](const std::string& url) -> Status {
    return Fail(ErrorCode::kUnavailable, url + ": refused");
  });
  EXPECT_FALSE(away);
  EXPECT_EQ(pauses, (std::vector<int>{2, 4}));
}

TEST(Mirrors, ATooSlowMirrorGivesWayAndIsNotAskedAgain) {
  std::vector<int> pauses;
  FetchOptions options;
  options.sleep_seconds = [&](int s) { pauses.push_back(s); };
  Fetcher fetcher(options);
  Mirrors mirrors({"http://slow", "http://b"}, fetcher);
  std::vector<std::string> asked;
  ASSERT_TRUE(mirrors.Try("x", [&](const std::string& url) -> Status {
    asked.push_back(url);
    if (url.starts_with("http://slow")) return Fail(ErrorCode::kTimedOut, url + ": not done within its deadline");
    return {};
  }));
  EXPECT_EQ(asked, (std::vector<std::string>{"http://slow/x", "http://b/x"}));
  // Every mirror too slow (or away): one round, no pause, the deadline's error.
  asked.clear();
  auto failed = mirrors.Try("y", [&](const std::string& url) -> Status {
    asked.push_back(url);
    if (url.starts_with("http://slow")) return Fail(ErrorCode::kTimedOut, url + ": not done within its deadline");
    return Fail(ErrorCode::kUnavailable, url + ": refused");
  });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::kTimedOut);
  EXPECT_EQ(asked.size(), 2u);
  EXPECT_TRUE(pauses.empty());
}

TEST(SyncProgress, ActivitySaysBytesWhileRunningAndNothingWhenIdle) {
  SyncProgress progress;
  EXPECT_EQ(SyncActivity(progress), "");
  progress.running = true;
  progress.total = 3145728;
  progress.done = 1048576;
  EXPECT_EQ(SyncActivity(progress), "syncing: 1048576 of 3145728 bytes");
  progress.done = 4000000;  // more than planned (a deltas.json): never past the total
  EXPECT_EQ(SyncActivity(progress), "syncing: 3145728 of 3145728 bytes");
}

namespace {

// Serves the files under `root` over HTTP, 32 KiB every 2 ms: slow enough that a thread
// watching a sync sees its bytes arrive.
class SlowFileServer {
 public:
  explicit SlowFileServer(std::string root) : root_(std::move(root)) {
    auto listener = ListenOnLoopback();
    listener_ = listener.fd;
    port_ = listener.port;
    thread_ = std::thread([this] { Serve(); });
  }
  ~SlowFileServer() {
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  void Serve() {
    for (;;) {
      int c = ::accept(listener_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      ssize_t got = ::recv(c, buf, sizeof buf, 0);
      std::string request(buf, got > 0 ? static_cast<size_t>(got) : 0);
      std::string path = request.substr(4, request.find(' ', 4) - 4);
      auto body = path.find("..") == std::string::npos ? ReadFile(root_ + path, 64u << 20)
                                                       : Result<std::string>(Fail(ErrorCode::kNotFound, ""));
      std::string head = body ? "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body->size())
                              : std::string("HTTP/1.1 404 Not Found\r\nContent-Length: 0");
      head += "\r\nConnection: close\r\n\r\n";
      (void)::send(c, head.data(), head.size(), MSG_NOSIGNAL);
      for (size_t at = 0; body && at < body->size(); at += 32768) {
        if (::send(c, body->data() + at, std::min<size_t>(32768, body->size() - at), MSG_NOSIGNAL) < 0) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      ::close(c);
    }
  }
  std::string root_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace

TEST_F(AgentTest, SyncProgressMovesAndCanBeReadFromAnotherThread) {
  Assign("1", kNow);
  SlowFileServer server(dir_ / "store");
  config_.stores = {server.url()};
  FakeClock clock(kNow);
  Fetcher fetcher;
  Agent agent(config_, clock, fetcher);
  std::atomic<bool> finished{false};
  std::vector<std::pair<uint64_t, uint64_t>> seen;  // (done, total) while running
  std::thread watcher([&] {
    while (!finished) {
      const SyncProgress& p = agent.progress();
      if (p.running) seen.emplace_back(p.done.load(), p.total.load());
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  auto report = agent.Sync();
  finished = true;
  watcher.join();
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->plan.size(), 1u);
  uint64_t planned = report->plan[0].ref.archive_size + report->plan[0].ref.index_size;
  EXPECT_FALSE(agent.progress().running);
  EXPECT_EQ(agent.progress().total, planned);
  EXPECT_EQ(agent.progress().done, planned);
  EXPECT_EQ(SyncActivity(agent.progress()), "");
  size_t between = std::count_if(seen.begin(), seen.end(), [&](const auto& s) {
    return s.second == planned && s.first > 0 && s.first < planned;
  });
  EXPECT_GE(between, 5u) << "the archive's bytes should show as they arrive";
  for (size_t i = 1; i < seen.size(); ++i)
    if (seen[i].second == seen[i - 1].second) {
      EXPECT_GE(seen[i].first, seen[i - 1].first);
    }
}

}  // namespace wharf

namespace wharf {
namespace {

// A generation signed before scripts were stored by content names the script by its name
// (fecs/<FEC>/init/<name>, the file itself): the agent takes the blob of its sha256 first,
// then that path; without either it does not activate the generation.
class OldInitShapeTest : public AgentTest {
 protected:
  // Signs generation 2 = generation 1 with one boot script named the old way.
  void SignOldShape(const std::string& content) {
    auto current = store_->CurrentGeneration("fec01");
    ASSERT_TRUE(current && *current);
    Generation g = (*current)->generation;
    g.parent = Sha256Hex(GenerationToJson(g));
    g.number = 2;
    g.init = {{"10-net", "fecs/fec01/init/10-net", content.size(), Sha256Hex(content), 60}};
    auto lock = store_->Lock();
    ASSERT_TRUE(lock);
    auto written = store_->WriteGeneration(g, GenerationToJson(g), *key_);
    ASSERT_TRUE(written) << written.error().message;
  }
  std::string Staged(const std::string& content) const {
    return ReadFile(dir_ / ("fec/var/lib/wharf/profiles/2/.init/" + Sha256Hex(content))).value_or("<none>");
  }
};

TEST_F(OldInitShapeTest, FetchesTheNamedFileOfAnOldStore) {
  Assign("1", kNow);
  SignOldShape("old\n");
  WriteTestFile(dir_ / "store/fecs/fec01/init/10-net", "old\n");
  auto report = Sync(kNow);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->generation, 2u);
  EXPECT_EQ(Staged("old\n"), "old\n");
}

TEST_F(OldInitShapeTest, TakesTheBlobOfItsSha256WhenTheNameMovedOn) {
  Assign("1", kNow);
  SignOldShape("old\n");
  WriteTestFile(dir_ / "store/fecs/fec01/init/10-net", "newer\n");  // the name moved on
  WriteTestFile(dir_ / ("store/" + InitBlobPath("fec01", Sha256Hex("old\n"))), "old\n");  // migrated
  auto report = Sync(kNow);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(Staged("old\n"), "old\n");
}

TEST_F(OldInitShapeTest, WithoutItsBytesTheGenerationIsNotActivated) {
  Assign("1", kNow);
  ASSERT_TRUE(Sync(kNow));
  SignOldShape("old\n");
  WriteTestFile(dir_ / "store/fecs/fec01/init/10-net", "newer\n");
  auto report = Sync(kNow);
  ASSERT_FALSE(report);
  EXPECT_NE(report.error().message.find("fec01: generation 2 not activated (generation 1 stays): boot script 10-net ("
                                        "fecs/fec01/init-sha256/"),
            std::string::npos)
      << report.error().message;
  EXPECT_NE(report.error().message.find("the store was altered"), std::string::npos) << report.error().message;
  EXPECT_EQ(Current(), "profiles/1");
  EXPECT_FALSE(PathExists(dir_ / "fec/var/lib/wharf/profiles/.2.building"));
}

}  // namespace
}  // namespace wharf
