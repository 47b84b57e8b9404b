#include "archive/snapshot.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

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


// Issue 13, class 2: a service user owns its persistent folder and plants links there; the
// snapshot (run as root) must never carry what that user could not read itself, and a
// restore must never write through a link. Run as root (as the agent is), with uid 65534
// as the service user; skipped otherwise.
namespace {

constexpr uid_t kServiceUid = 65534;
constexpr char kSecret[] = "root-only-secret-7f3a\n";

bool AsRoot() { return ::geteuid() == 0; }

// The decoded bytes of a whole snapshot (tar headers and data): the secret must not be in them.
std::string Decoded(const std::string& archive_path) {
  archive* a = archive_read_new();
  archive_read_support_format_raw(a);
  archive_read_support_filter_zstd(a);
  std::string out;
  archive_entry* e;
  if (archive_read_open_filename(a, archive_path.c_str(), 1 << 16) == ARCHIVE_OK &&
      archive_read_next_header(a, &e) == ARCHIVE_OK) {
    char buffer[1 << 16];
    for (la_ssize_t n; (n = archive_read_data(a, buffer, sizeof buffer)) > 0;) out.append(buffer, n);
  }
  archive_read_free(a);
  return out;
}

// A FEC root with /var/lib/ioc owned by the service user and a root-only secret outside it.
std::string ServiceFolder(ScratchDir& dir) {
  WriteTestFile(dir / "secret/shadow", kSecret, 0600);
  EXPECT_TRUE(MakeDirs(dir / "fec/var/lib/ioc"));
  WriteTestFile(dir / "fec/var/lib/ioc/mine", "ok\n", 0600);
  EXPECT_EQ(::chown((dir / "fec/var/lib/ioc").c_str(), kServiceUid, kServiceUid), 0);
  EXPECT_EQ(::chown((dir / "fec/var/lib/ioc/mine").c_str(), kServiceUid, kServiceUid), 0);
  return dir / "fec";
}

}  // namespace

TEST(SnapshotAttack, ALinkToARootOnlyFileIsStoredAsALinkNeverItsContents) {
  if (!AsRoot()) GTEST_SKIP() << "needs root";
  ScratchDir dir;
  std::string root = ServiceFolder(dir);
  ASSERT_EQ(::symlink((dir / "secret/shadow").c_str(), (root + "/var/lib/ioc/link").c_str()), 0);
  ASSERT_EQ(::symlink((dir / "secret").c_str(), (root + "/var/lib/ioc/folder").c_str()), 0);
  auto packed = PackSnapshot(root, {"/var/lib/ioc"}, dir / "s.tar.zst");
  ASSERT_TRUE(packed) << packed.error().message;
  EXPECT_EQ(Decoded(dir / "s.tar.zst").find(kSecret), std::string::npos);
  EXPECT_NE(Decoded(dir / "s.tar.zst").find("ok\n"), std::string::npos);
}

TEST(SnapshotAttack, AHardLinkToARootOnlyFileIsRefused) {
  if (!AsRoot()) GTEST_SKIP() << "needs root";
  ScratchDir dir;
  std::string root = ServiceFolder(dir);
  ASSERT_EQ(::link((dir / "secret/shadow").c_str(), (root + "/var/lib/ioc/hard").c_str()), 0);
  auto packed = PackSnapshot(root, {"/var/lib/ioc"}, dir / "s.tar.zst");
  ASSERT_FALSE(packed);
  EXPECT_NE(packed.error().message.find("cannot read it"), std::string::npos) << packed.error().message;
  EXPECT_EQ(Decoded(dir / "s.tar.zst").find(kSecret), std::string::npos);
}

TEST(SnapshotAttack, AHardLinkToAnotherUsersReadableFileIsRefused) {
  if (!AsRoot()) GTEST_SKIP() << "needs root";
  ScratchDir dir;
  std::string root = ServiceFolder(dir);
  WriteTestFile(dir / "secret/public", kSecret, 0644);
  ASSERT_EQ(::link((dir / "secret/public").c_str(), (root + "/var/lib/ioc/hard").c_str()), 0);
  auto packed = PackSnapshot(root, {"/var/lib/ioc"}, dir / "s.tar.zst");
  ASSERT_FALSE(packed);
  EXPECT_NE(packed.error().message.find("hard-linked"), std::string::npos) << packed.error().message;
}

TEST(SnapshotAttack, AFileTheFolderOwnerCannotReadIsRefusedAlsoInASubfolder) {
  if (!AsRoot()) GTEST_SKIP() << "needs root";
  ScratchDir dir;
  std::string root = ServiceFolder(dir);
  ASSERT_TRUE(MakeDirs(root + "/var/lib/ioc/sub"));
  ASSERT_EQ(::chown((root + "/var/lib/ioc/sub").c_str(), kServiceUid, kServiceUid), 0);
  WriteTestFile(root + "/var/lib/ioc/sub/root-file", kSecret, 0600);
  auto packed = PackSnapshot(root, {"/var/lib/ioc"}, dir / "s.tar.zst");
  ASSERT_FALSE(packed);
  EXPECT_NE(packed.error().message.find("sub/root-file is owned by uid 0"), std::string::npos) << packed.error().message;
}

TEST(SnapshotAttack, ThePersistentFolderOrAFolderAboveItAsALinkIsRefused) {
  if (!AsRoot()) GTEST_SKIP() << "needs root";
  ScratchDir dir;
  ASSERT_TRUE(MakeDirs(dir / "fec/var/lib"));
  ASSERT_EQ(::symlink((dir / "secret").c_str(), (dir / "fec/var/lib/ioc").c_str()), 0);
  WriteTestFile(dir / "secret/shadow", kSecret, 0600);
  EXPECT_FALSE(PackSnapshot(dir / "fec", {"/var/lib/ioc"}, dir / "s.tar.zst"));
  EXPECT_EQ(Decoded(dir / "s.tar.zst").find(kSecret), std::string::npos);
  ASSERT_TRUE(MakeDirs(dir / "fec2/var"));
  ASSERT_TRUE(MakeDirs(dir / "other/lib/ioc"));
  WriteTestFile(dir / "other/lib/ioc/shadow", kSecret, 0600);
  ASSERT_EQ(::symlink((dir / "other/lib").c_str(), (dir / "fec2/var/lib").c_str()), 0);
  EXPECT_FALSE(PackSnapshot(dir / "fec2", {"/var/lib/ioc"}, dir / "s2.tar.zst"));
  EXPECT_EQ(Decoded(dir / "s2.tar.zst").find(kSecret), std::string::npos);
}

TEST(SnapshotAttack, RestoreNeverWritesThroughALinkedFolder) {
  if (!AsRoot()) GTEST_SKIP() << "needs root";
  ScratchDir dir;
  std::string root = ServiceFolder(dir);
  ASSERT_TRUE(PackSnapshot(root, {"/var/lib/ioc"}, dir / "s.tar.zst"));
  // The folder itself a link to an empty folder elsewhere (say /etc/cron.d).
  ASSERT_TRUE(MakeDirs(dir / "outside"));
  ASSERT_TRUE(MakeDirs(dir / "new/var/lib"));
  ASSERT_EQ(::symlink((dir / "outside").c_str(), (dir / "new/var/lib/ioc").c_str()), 0);
  EXPECT_FALSE(RestoreSnapshotPath(dir / "s.tar.zst", dir / "new", "/var/lib/ioc", {"/var/lib/ioc"}));
  // A folder above it a link.
  ASSERT_TRUE(MakeDirs(dir / "new2/var"));
  ASSERT_EQ(::symlink((dir / "outside").c_str(), (dir / "new2/var/lib").c_str()), 0);
  EXPECT_FALSE(RestoreSnapshotPath(dir / "s.tar.zst", dir / "new2", "/var/lib/ioc", {"/var/lib/ioc"}));
  EXPECT_TRUE(ListDir(dir / "outside")->empty());
}

TEST(SnapshotAttack, RestoredEntriesBelongToTheFolderOwnerNeverToRoot) {
  if (!AsRoot()) GTEST_SKIP() << "needs root";
  ScratchDir dir;
  // A snapshot (from a store) that says a file in the folder is root's and world-writable.
  std::string archive = dir / "s.tar.zst";
  WriteRawSnapshot(archive, {{"var/lib/ioc", AE_IFDIR, ""}, {"var/lib/ioc/f", AE_IFREG, ""}});
  ASSERT_TRUE(MakeDirs(dir / "new/var/lib/ioc"));
  ASSERT_EQ(::chown((dir / "new/var/lib/ioc").c_str(), kServiceUid, kServiceUid), 0);
  auto restored = RestoreSnapshotPath(archive, dir / "new", "/var/lib/ioc", {"/var/lib/ioc"});
  ASSERT_TRUE(restored) << restored.error().message;
  struct stat st;
  ASSERT_EQ(::lstat((dir / "new/var/lib/ioc/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kServiceUid);
  ASSERT_EQ(::lstat((dir / "new/var/lib/ioc").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kServiceUid);
}

}  // namespace wharf
