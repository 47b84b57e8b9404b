// Drift: the pure comparison of an index with what a folder holds, and the whole round
// against a real file:// store: sync, damage, verify, repair, verify again.
#include "agent/drift.h"

// Entries written as brace lists, the fields a case needs only.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "agent/agent.h"
#include "archive/pack.h"
#include "base/clock.h"
#include "base/scratch_dir.h"
#include "store/changes.h"
#include "store/store.h"

namespace wharf {
namespace {

PackageIndex SampleIndex() {
  PackageIndex index;
  index.name = "demo";
  index.version = "1";
  index.prefix = "/opt/demo";
  index.files = {
      {"opt/demo", EntryType::kDirectory, 0755},
      {"opt/demo/bin", EntryType::kDirectory, 0755},
      {"opt/demo/bin/ioc", EntryType::kFile, 0755, 3, std::string(64, 'a')},
      {"opt/demo/db", EntryType::kDirectory, 0750},
      {"opt/demo/db/demo.db", EntryType::kFile, 0640, 5, std::string(64, 'b')},
      {"opt/demo/lib.so", EntryType::kSymlink, 0777, 0, "", 0, "bin/ioc"},
  };
  return index;
}

// What an install of SampleIndex leaves: modes less write bits, folders u+rx.
ObservedTree SampleTree() {
  using T = Observed::Type;
  return {
      {"", {T::kDirectory, 0555}},
      {"bin", {T::kDirectory, 0555}},
      {"bin/ioc", {T::kFile, 0555, 3, std::string(64, 'a')}},
      {"db", {T::kDirectory, 0550}},
      {"db/demo.db", {T::kFile, 0440, 5, std::string(64, 'b')}},
      {"lib.so", {T::kSymlink, 0777, 0, "", "bin/ioc"}},
  };
}

PackageRef Ref() { return {"demo", "1", "/opt/demo"}; }

std::vector<std::string> Lines(const std::vector<Drift>& drifts) {
  std::vector<std::string> lines;
  for (const auto& d : drifts) lines.push_back(d.path + " " + DriftKindName(d.kind) + " " + d.want + " / " + d.have);
  return lines;
}

TEST(CompareTree, AnInstalledTreeHasNoDrift) {
  EXPECT_TRUE(CompareTree(Ref(), SampleIndex(), SampleTree()).empty());
}

TEST(CompareTree, NamesEachDifferenceOnce) {
  ObservedTree tree = SampleTree();
  tree["bin/ioc"].sha256 = std::string(64, 'c');   // a byte changed
  tree["db/demo.db"].size = 6;                     // grown (not also "content")
  tree["db/demo.db"].sha256 = std::string(64, 'd');
  tree["db"].mode = 0750;                          // made writable
  tree["lib.so"].link = "/tmp/evil";               // replaced link
  tree["bin/extra"] = {Observed::Type::kFile, 0644, 1, "x"};
  auto lines = Lines(CompareTree(Ref(), SampleIndex(), tree));
  std::vector<std::string> want = {
      "/opt/demo/bin/extra extra nothing / file",
      "/opt/demo/bin/ioc content sha256 aaaaaaaaaaaaaaaa / sha256 cccccccccccccccc",
      "/opt/demo/db mode 0550 / 0750",
      "/opt/demo/db/demo.db size 5 bytes / 6 bytes",
      "/opt/demo/lib.so link -> bin/ioc / -> /tmp/evil",
  };
  EXPECT_EQ(lines, want);
}

TEST(CompareTree, TypesMissingAndExtraFolders) {
  ObservedTree tree = SampleTree();
  tree.erase("db/demo.db");
  tree["lib.so"] = {Observed::Type::kFile, 0444, 7, "y"};  // a link replaced by a file
  tree["bin/ioc"].mode = 04555;                          // setuid added
  tree["new"] = {Observed::Type::kDirectory, 0755};
  tree["new/a"] = {Observed::Type::kFile, 0644, 1, "z"};  // inside an extra folder: not named again
  tree["new/b"] = {Observed::Type::kDirectory, 0755};
  tree["fifo"] = {Observed::Type::kOther, 0644};
  auto lines = Lines(CompareTree(Ref(), SampleIndex(), tree));
  std::vector<std::string> want = {
      "/opt/demo/bin/ioc mode 0555 / 4555",
      "/opt/demo/db/demo.db missing file / nothing",
      "/opt/demo/fifo extra nothing / special file",
      "/opt/demo/lib.so type link / file",
      "/opt/demo/new extra nothing / folder",
  };
  EXPECT_EQ(lines, want);
}

TEST(CompareTree, UnhashedTreesCompareSizesOnly) {
  ObservedTree tree = SampleTree();
  for (auto& [rel, o] : tree) o.sha256.clear();
  EXPECT_TRUE(CompareTree(Ref(), SampleIndex(), tree, false).empty());
  EXPECT_EQ(CompareTree(Ref(), SampleIndex(), tree, true).size(), 2u) << "both files' content unknown";
}

TEST(DriftSummary, OneLineForAHeartbeat) {
  EXPECT_EQ(DriftSummary({}), "");
  ObservedTree tree = SampleTree();
  tree["bin/ioc"].sha256 = std::string(64, 'c');
  tree["bin/x"] = {Observed::Type::kFile, 0444, 1, "x"};
  EXPECT_EQ(DriftSummary(CompareTree(Ref(), SampleIndex(), tree)),
            "drift: 2 differences in demo@1; first: /opt/demo/bin/ioc: content (run `wharf-agent verify`)");
}

TEST(InstalledMode, LessWriteBitsFoldersWalkable) {
  EXPECT_EQ(InstalledMode({"a", EntryType::kFile, 0644}), 0444u);
  EXPECT_EQ(InstalledMode({"a", EntryType::kFile, 04755}), 0555u);
  EXPECT_EQ(InstalledMode({"a", EntryType::kDirectory, 0000}), 0500u);
  EXPECT_EQ(InstalledMode({"a", EntryType::kDirectory, 0750}), 0550u);
}

class DriftTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(GenerateKeyPair(dir_ / "release"));
    key_.emplace(std::move(*PrivateKey::Load(dir_ / "release.key")));
    store_.emplace(std::move(*Store::Open(dir_ / "store", true)));
    MakeSampleTree(dir_ / "tree");
    // lib/big past the frame size and incompressible: an update links it rather than fetch it.
    std::string big;
    uint32_t state = 12345;
    for (int i = 0; i < 1500000; ++i) big += static_cast<char>((state = state * 1103515245u + 12345u) >> 24);
    WriteTestFile(dir_ / "tree/lib/big", big);
    Publish("1");
    config_.root = dir_ / "fec";
    config_.stores = {"file://" + dir_ / "store"};
    config_.fec = "fec01";
    config_.trusted = {key_->public_key()};
    auto synced = Sync();
    ASSERT_TRUE(synced) << synced.error().message;
    auto active = ReadActive(Layout(config_.root));
    ASSERT_TRUE(active && *active);
    generation_ = (*active)->generation;
    folder_ = Layout(config_.root).package(generation_.packages.at(0));
  }

  // Publishes the sample tree as app@version and assigns it.
  void Publish(const std::string& version) {
    PackOptions options;
    options.name = "app";
    options.version = version;
    options.prefix = "/opt/app";
    options.out_dir = dir_ / ("out" + version);
    options.frame_size = 64 << 10;
    auto packed = PackTree(dir_ / "tree", options);
    ASSERT_TRUE(packed) << packed.error().message;
    ASSERT_TRUE(store_->Publish(packed->archive_path, packed->index_path, false));
    ChangeOptions change;
    change.key = &*key_;
    change.now = kNow;
    change.lifetime_seconds = 30 * 86400;
    auto g = wharf::Assign(*store_, "fec01", {{"app", version}}, change);
    ASSERT_TRUE(g) << g.error().message;
  }

  Result<SyncReport> Sync() {
    FakeClock clock(kNow);
    Fetcher fetcher;
    Agent agent(config_, clock, fetcher);
    return agent.Sync();
  }

  std::vector<Drift> Verify() {
    auto report = VerifyInstalled(Layout(config_.root), generation_);
    EXPECT_TRUE(report) << report.error().message;
    return report ? report->drifts : std::vector<Drift>{};
  }

  // As an attacker would: the folder is read-only, so make it writable first.
  void Damage() {
    ::chmod(folder_.c_str(), 0755);
    ::chmod((folder_ + "/lib").c_str(), 0755);
    ::chmod((folder_ + "/etc").c_str(), 0755);
    std::string conf = folder_ + "/etc/app.conf";
    std::string content = *ReadFile(conf);
    content[0] ^= 1;  // in place: the inode stays
    ::chmod(conf.c_str(), 0644);
    ASSERT_TRUE(WriteFileAtomic(conf + ".x", content, 0644));
    ASSERT_EQ(::rename((conf + ".x").c_str(), conf.c_str()), 0);
    ::chmod(conf.c_str(), 0440);
    WriteTestFile(folder_ + "/lib/planted.so", "evil");
    ::unlink((folder_ + "/lib/big.1").c_str());
    ASSERT_EQ(::symlink("/etc/passwd", (folder_ + "/lib/big.1").c_str()), 0);
    ::chmod((folder_ + "/bin/app").c_str(), 04755);
  }

  static constexpr int64_t kNow = 1795482123;
  ScratchDir dir_;
  std::optional<PrivateKey> key_;
  std::optional<Store> store_;
  AgentConfig config_;
  Generation generation_;
  std::string folder_;
};

TEST_F(DriftTest, AFreshInstallIsCleanAndStamped) {
  EXPECT_TRUE(Verify().empty());
  EXPECT_TRUE(StampMatches(Layout(config_.root), generation_.packages[0]));
}

TEST_F(DriftTest, VerifyNamesTheDamageAndRepairRestoresIt) {
  Damage();
  Layout layout(config_.root);
  const PackageRef& ref = generation_.packages[0];
  EXPECT_FALSE(StampMatches(layout, ref)) << "the cheap check sees it";
  auto drifts = Verify();
  std::vector<std::string> want = {
      "/opt/app/bin/app mode", "/opt/app/etc mode", "/opt/app/etc/app.conf content", "/opt/app/lib mode", "/opt/app/lib/big.1 link",
      "/opt/app/lib/planted.so extra", "/opt/app mode"};
  std::vector<std::string> got;
  for (const auto& d : drifts) got.push_back(d.path + " " + DriftKindName(d.kind));
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);

  Fetcher fetcher;
  Mirrors mirrors(config_.stores, fetcher);
  auto repaired = RepairPackage(layout, mirrors, ref, drifts);
  ASSERT_TRUE(repaired) << repaired.error().message;
  EXPECT_EQ(repaired->files, 1u);
  EXPECT_EQ(repaired->removed, 1u);
  EXPECT_EQ(repaired->links, 1u);
  EXPECT_LT(repaired->bytes_fetched, ref.archive_size) << "only the frame of etc/app.conf";
  EXPECT_TRUE(Verify().empty());
  EXPECT_TRUE(StampMatches(layout, ref));
  struct stat st;
  ASSERT_EQ(::stat(folder_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0222, 0u) << "read-only again";
}

TEST_F(DriftTest, ASyncWithNothingNewRepairsChangedFiles) {
  Damage();
  auto report = Sync();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->outcome, SyncOutcome::kUpToDate);
  EXPECT_EQ(report->repaired, std::vector<std::string>{"app@1"});
  EXPECT_TRUE(Verify().empty());
}

TEST_F(DriftTest, ASyncWithNothingNewInstallsARemovedFolderAgain) {
  ASSERT_TRUE(RemoveTree(folder_));
  auto report = Sync();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->repaired, std::vector<std::string>{"app@1"});
  EXPECT_TRUE(Verify().empty());
}

TEST_F(DriftTest, ADamagedKeptVersionLendsNoFilesToTheNext) {
  // lib/big changed in place, same size: an update must not link it into version 2.
  std::string big = folder_ + "/lib/big";
  ::chmod((folder_ + "/lib").c_str(), 0755);
  std::string content = *ReadFile(big);
  content[1000] ^= 1;
  ::chmod(big.c_str(), 0644);
  ASSERT_TRUE(WriteFileAtomic(big + ".x", content, 0444));
  ASSERT_EQ(::rename((big + ".x").c_str(), big.c_str()), 0);
  WriteTestFile(dir_ / "tree/bin/app", "#!/bin/sh\necho app 2\n", 0755);
  Publish("2");
  auto report = Sync();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->generation, 2u);
  auto active = ReadActive(Layout(config_.root));
  ASSERT_TRUE(active && *active);
  generation_ = (*active)->generation;
  EXPECT_TRUE(report->files_reused == 0) << "nothing reused from the damaged version";
  EXPECT_TRUE(Verify().empty()) << "version 2 took the damaged lib/big";
}

TEST_F(DriftTest, AMissingIndexOrFolderIsFetchedAgain) {
  Layout layout(config_.root);
  const PackageRef& ref = generation_.packages[0];
  ASSERT_TRUE(RemoveTree(layout.package_index(ref)));
  ASSERT_TRUE(RemoveTree(folder_));
  auto drifts = Verify();
  ASSERT_EQ(drifts.size(), 1u);
  EXPECT_EQ(drifts[0].kind, DriftKind::kIndex);
  Fetcher fetcher;
  Mirrors mirrors(config_.stores, fetcher);
  auto repaired = RepairPackage(layout, mirrors, ref, drifts);
  ASSERT_TRUE(repaired) << repaired.error().message;
  EXPECT_TRUE(repaired->reinstalled);
  EXPECT_TRUE(Verify().empty());
}

TEST_F(DriftTest, TheBudgetBoundsTheReadingRate) {
  uint64_t bytes = 0;
  auto start = std::chrono::steady_clock::now();
  auto tree = ScanTree(folder_, true, {2000000}, &bytes);  // 2 MB/s: the 1.5 MB file takes 0.75 s
  ASSERT_TRUE(tree);
  EXPECT_GE(bytes, 1500000u);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(700));
  VerifyBudget stopping;
  stopping.stop = [] { return true; };
  auto stopped = VerifyInstalled(Layout(config_.root), generation_, stopping);
  ASSERT_FALSE(stopped);
  EXPECT_EQ(stopped.error().code, ErrorCode::kTimedOut);
}

}  // namespace
}  // namespace wharf
