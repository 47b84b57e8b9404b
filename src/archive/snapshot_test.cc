#include "archive/snapshot.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "base/scratch_dir.h"

namespace wharf {
namespace {

// A tar.zst with the given (path, type, link) entries, made without wharf's checks.
void WriteRawSnapshot(const std::string& out, const std::vector<std::tuple<std::string, int, std::string>>& entries) {
  archive* tar = archive_write_new();
  archive_write_set_format_pax_restricted(tar);
  archive_write_add_filter_zstd(tar);
  ASSERT_EQ(archive_write_open_filename(tar, out.c_str()), ARCHIVE_OK);
  for (const auto& [path, type, link] : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, 0644);
    if (type == AE_IFLNK) archive_entry_set_symlink(e, link.c_str());
    if (type == AE_IFREG) archive_entry_set_size(e, 2);
    archive_write_header(tar, e);
    if (type == AE_IFREG) archive_write_data(tar, "x\n", 2);
    archive_entry_free(e);
  }
  archive_write_close(tar);
  archive_write_free(tar);
}

}  // namespace

TEST(Snapshot, RoundTripsDataModesAndTimes) {
  ScratchDir dir;
  WriteTestFile(dir / "fec/var/lib/ioc/autosave/ps.sav", "current 12.5\n", 0640);
  WriteTestFile(dir / "fec/var/lib/ioc/counter", "41\n", 0600);
  ASSERT_EQ(::symlink("autosave/ps.sav", (dir / "fec/var/lib/ioc/last").c_str()), 0);
  ASSERT_TRUE(MakeDirs(dir / "fec/var/lib/ioc/empty"));
  timespec old_time[2] = {{1700000000, 0}, {1700000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (dir / "fec/var/lib/ioc/counter").c_str(), old_time, 0), 0);
  auto packed = PackSnapshot(dir / "fec", {"/var/lib/ioc", "/var/lib/missing"}, dir / "s.tar.zst");
  ASSERT_TRUE(packed) << packed.error().message;
  EXPECT_EQ(packed->entries, 6u);  // the folder, autosave/, ps.sav, counter, last, empty/
  auto checked = CheckSnapshot(dir / "s.tar.zst", {"/var/lib/ioc"});
  ASSERT_TRUE(checked) << checked.error().message;
  EXPECT_EQ(checked->bytes, packed->bytes);

  EXPECT_TRUE(PersistentPathEmpty(dir / "new", "/var/lib/ioc"));
  auto restored = RestoreSnapshotPath(dir / "s.tar.zst", dir / "new", "/var/lib/ioc", {"/var/lib/ioc", "/var/lib/missing"});
  ASSERT_TRUE(restored) << restored.error().message;
  EXPECT_EQ(*ReadFile(dir / "new/var/lib/ioc/autosave/ps.sav"), "current 12.5\n");
  EXPECT_EQ(*ReadFile(dir / "new/var/lib/ioc/counter"), "41\n");
  EXPECT_EQ(*ReadLink(dir / "new/var/lib/ioc/last"), "autosave/ps.sav");
  EXPECT_TRUE(IsDirectory(dir / "new/var/lib/ioc/empty"));
  struct stat st;
  ASSERT_EQ(::stat((dir / "new/var/lib/ioc/counter").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1700000000);
  EXPECT_FALSE(PersistentPathEmpty(dir / "new", "/var/lib/ioc"));
  EXPECT_FALSE(PathExists(dir / "new/var/lib/.ioc.wharf-restore"));
  // Never over data that is there.
  EXPECT_FALSE(RestoreSnapshotPath(dir / "s.tar.zst", dir / "new", "/var/lib/ioc", {"/var/lib/ioc", "/var/lib/missing"}));
}

TEST(Snapshot, RefusesAFileAsPersistentPath) {
  ScratchDir dir;
  WriteTestFile(dir / "fec/var/counter", "1\n");
  auto packed = PackSnapshot(dir / "fec", {"/var/counter"}, dir / "s.tar.zst");
  ASSERT_FALSE(packed);
  EXPECT_NE(packed.error().message.find("is not a folder"), std::string::npos);
}

TEST(Snapshot, HostileEntriesAreRefusedAndNothingIsWritten) {
  ScratchDir dir;
  using E = std::tuple<std::string, int, std::string>;
  std::vector<std::vector<E>> hostile = {
      {{"var/lib/ioc", AE_IFDIR, ""}, {"var/lib/ioc/../../../etc/passwd", AE_IFREG, ""}},
      {{"var/lib/ioc", AE_IFDIR, ""}, {"etc/passwd", AE_IFREG, ""}},
      {{"var/lib/ioc", AE_IFDIR, ""}, {"var/lib/ioc/x", AE_IFLNK, "../../../etc"}},
      {{"var/lib/ioc", AE_IFDIR, ""}, {"var/lib/ioc/x", AE_IFLNK, "/etc/passwd"}},
      {{"var/lib/ioc", AE_IFDIR, ""}, {"var/lib/ioc/dev", AE_IFCHR, ""}},
      {{"var/lib/ioc", AE_IFDIR, ""}, {"var/lib/ioc/a", AE_IFREG, ""}, {"var/lib/ioc/a", AE_IFREG, ""}},
      {{"/var/lib/ioc", AE_IFDIR, ""}},
      {{"var/lib/ioc", AE_IFREG, ""}},
  };
  for (size_t i = 0; i < hostile.size(); ++i) {
    std::string archive = dir / ("h" + std::to_string(i) + ".tar.zst");
    WriteRawSnapshot(archive, hostile[i]);
    EXPECT_FALSE(CheckSnapshot(archive, {"/var/lib/ioc"})) << i;
    std::string root = dir / ("fec" + std::to_string(i));
    EXPECT_FALSE(RestoreSnapshotPath(archive, root, "/var/lib/ioc", {"/var/lib/ioc"})) << i;
    EXPECT_FALSE(PathExists(root + "/var/lib/ioc")) << i;
    EXPECT_FALSE(PathExists(root + "/etc")) << i;
  }
}

TEST(Snapshot, ACutSnapshotIsRefused) {
  ScratchDir dir;
  std::string big;
  for (int i = 0; i < 400000; ++i) big += static_cast<char>(i * 2654435761u >> 24);
  WriteTestFile(dir / "fec/data/blob", big);
  ASSERT_TRUE(PackSnapshot(dir / "fec", {"/data"}, dir / "s.tar.zst"));
  std::string whole = *ReadFile(dir / "s.tar.zst");
  WriteTestFile(dir / "cut.tar.zst", whole.substr(0, whole.size() / 2));
  EXPECT_FALSE(CheckSnapshot(dir / "cut.tar.zst", {"/data"}));
  EXPECT_FALSE(RestoreSnapshotPath(dir / "cut.tar.zst", dir / "new", "/data", {"/data"}));
  EXPECT_FALSE(PathExists(dir / "new/data"));
}

TEST(Snapshot, CheckRefusesOneThatUnpacksPastTheLimit) {
  ScratchDir dir;
  WriteTestFile(dir / "fec/data/zeros", std::string(4 << 20, '\0'), 0600);
  ASSERT_TRUE(PackSnapshot(dir / "fec", {"/data"}, dir / "s.tar.zst"));
  EXPECT_TRUE(CheckSnapshot(dir / "s.tar.zst", {"/data"}, 8 << 20));
  auto refused = CheckSnapshot(dir / "s.tar.zst", {"/data"}, 1 << 20);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kRejected);
  EXPECT_NE(refused.error().message.find("--snapshot-max-data"), std::string::npos) << refused.error().message;
}

}  // namespace wharf
