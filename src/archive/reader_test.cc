#include "archive/reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <zstd.h>

#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "base/scratch_dir.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

// One entry of a hand-made (possibly hostile) tar.
struct Spec {
  std::string path;
  int type = AE_IFREG;
  std::string content;
  std::string link;      // symlink target
  std::string hardlink;  // hard link target
  unsigned mode = 0644;
};

la_ssize_t Append(archive*, void* out, const void* data, size_t size) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(data), size);
  return static_cast<la_ssize_t>(size);
}

// `data_offsets` gets where each file's bytes start, as `wharf pack` records them.
std::string MakeTar(const std::vector<Spec>& specs, std::map<std::string, uint64_t>* data_offsets = nullptr) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_per_block(a, 0);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(a, &out, nullptr, Append, nullptr);
  for (const auto& s : specs) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, s.path.c_str());
    archive_entry_set_filetype(e, s.type);
    archive_entry_set_perm(e, s.mode);
    if (!s.link.empty()) archive_entry_set_symlink(e, s.link.c_str());
    if (!s.hardlink.empty()) archive_entry_set_hardlink(e, s.hardlink.c_str());
    if (s.type == AE_IFREG && s.hardlink.empty()) archive_entry_set_size(e, s.content.size());
    archive_write_header(a, e);  // unblocked: written out at once
    if (data_offsets) (*data_offsets)[s.path] = out.size();
    if (!s.content.empty()) archive_write_data(a, s.content.data(), s.content.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

// One frame with its content size and checksum, as `wharf pack` writes them.
std::string Compress(const std::string& raw) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  out.resize(ZSTD_compress2(cctx, out.data(), out.size(), raw.data(), raw.size()));
  ZSTD_freeCCtx(cctx);
  return out;
}

FileEntry Honest(const Spec& s) {
  FileEntry e;
  e.path = s.path;
  e.mode = s.mode;
  e.type = s.type == AE_IFDIR ? EntryType::kDirectory
           : s.type == AE_IFLNK ? EntryType::kSymlink
                                : EntryType::kFile;
  if (e.type == EntryType::kFile) {
    e.size = s.content.size();
    e.sha256 = Sha256Hex(s.content);
  }
  e.link = s.link;
  return e;
}

class ReaderTest : public ::testing::Test {
 protected:
  // Writes the tar as one frame and an index listing `files` (default: every spec).
  // `damage` changes the frame before the index is made of it (a lying publisher).
  PackageIndex Write(const std::vector<Spec>& specs, std::vector<FileEntry> files = {},
                     std::string trailing_frame = "", std::function<void(std::string&)> damage = {}) {
    if (files.empty())
      for (const auto& s : specs) files.push_back(Honest(s));
    std::map<std::string, uint64_t> data_offsets;
    std::string raw = MakeTar(specs, &data_offsets);
    for (auto& f : files)
      if (f.type == EntryType::kFile && data_offsets.count(f.path)) f.data_offset = data_offsets[f.path];
    std::string frame = Compress(raw);
    if (damage) damage(frame);
    PackageIndex index;
    index.name = "demo";
    index.version = "1";
    index.prefix = "/opt/demo";
    index.archive = "demo-1.tar.zst";
    index.frames.push_back({0, frame.size(), 0, raw.size(), Sha256Hex(frame)});
    std::string bytes = frame;
    index.raw_size = raw.size();
    if (!trailing_frame.empty()) {
      std::string extra = Compress(trailing_frame);
      index.frames.push_back({frame.size(), extra.size(), raw.size(), trailing_frame.size(), Sha256Hex(extra)});
      bytes += extra;
      index.raw_size += trailing_frame.size();
    }
    index.archive_size = bytes.size();
    index.archive_sha256 = Sha256Hex(bytes);
    index.files = std::move(files);
    EXPECT_TRUE(WriteFileAtomic(archive_, bytes));
    return index;
  }

  Status Extract(const PackageIndex& index) { return ExtractArchive(archive_, index, dir_ / "x"); }

  ScratchDir dir_;
  std::string archive_ = dir_ / "demo-1.tar.zst";
  Spec root_{"opt/demo", AE_IFDIR, "", "", "", 0755};
  Spec file_{"opt/demo/a", AE_IFREG, "hello", "", "", 0644};
};

}  // namespace

TEST_F(ReaderTest, HonestArchiveExtracts) {
  auto index = Write({root_, file_});
  ASSERT_TRUE(ValidatePackageIndex(index)) << ValidatePackageIndex(index).error().message;
  auto result = Extract(index);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(*ReadFile(dir_ / "x/a"), "hello");
}

TEST_F(ReaderTest, RefusesEntryMissingFromIndex) {
  Spec extra{"opt/demo/evil", AE_IFREG, "boo", "", "", 0644};
  auto index = Write({root_, file_, extra}, {Honest(root_), Honest(file_)});
  auto result = Extract(index);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kUnsafe) << result.error().message;
  EXPECT_NE(result.error().message.find("not in package.json"), std::string::npos);
}

TEST_F(ReaderTest, AHostileNameStaysOnOneLine) {
  Spec extra{"opt/demo/evil\nname\x1b[2J" + std::string(500, 'x'), AE_IFREG, "boo", "", "", 0644};
  auto result = Extract(Write({root_, file_, extra}, {Honest(root_), Honest(file_)}));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message.find('\n'), std::string::npos) << result.error().message;
  EXPECT_EQ(result.error().message.find('\x1b'), std::string::npos) << result.error().message;
  EXPECT_NE(result.error().message.find("evil\\x0aname\\x1b"), std::string::npos) << result.error().message;
  EXPECT_LT(result.error().message.size(), 400u) << "cut short";
}

TEST_F(ReaderTest, RefusesDotDotAndAbsolutePaths) {
  for (const char* path : {"../escaped", "opt/demo/../../escaped", "/etc/wharf-evil-test"}) {
    Spec evil{path, AE_IFREG, "boo", "", "", 0644};
    auto honest = Write({root_, evil});
    EXPECT_FALSE(ValidatePackageIndex(honest)) << path;
    auto index = Write({root_, evil, file_}, {Honest(root_), Honest(file_)});
    auto result = Extract(index);
    ASSERT_FALSE(result) << path;
    EXPECT_EQ(result.error().code, ErrorCode::kUnsafe) << path;
    EXPECT_FALSE(PathExists(dir_ / "escaped"));
    (void)RemoveTree(dir_ / "x");
  }
  EXPECT_FALSE(PathExists("/etc/wharf-evil-test"));
}

TEST_F(ReaderTest, NeverWritesThroughASymlink) {
  ASSERT_TRUE(MakeDirs(dir_ / "outside"));
  Spec link{"opt/demo/l", AE_IFLNK, "", dir_ / "outside", "", 0777};
  Spec through{"opt/demo/l/x", AE_IFREG, "boo", "", "", 0644};
  auto index = Write({root_, link, through});
  EXPECT_FALSE(ValidatePackageIndex(index)) << "the index check refuses the link";
  auto result = Extract(index);  // and extraction refuses to follow it even so
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kUnsafe);
  EXPECT_FALSE(PathExists(dir_ / "outside/x"));
}

TEST_F(ReaderTest, RefusesDeviceNode) {
  Spec device{"opt/demo/dev", AE_IFCHR, "", "", "", 0644};
  FileEntry as_file = Honest(file_);
  as_file.path = "opt/demo/dev";
  auto index = Write({root_, device}, {Honest(root_), as_file});
  auto result = Extract(index);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("device"), std::string::npos);
}

TEST_F(ReaderTest, RefusesHardLink) {
  Spec hard{"opt/demo/h", AE_IFREG, "", "", "/etc/passwd", 0644};
  FileEntry as_file = Honest(file_);
  as_file.path = "opt/demo/h";
  auto index = Write({root_, hard}, {Honest(root_), as_file});
  auto result = Extract(index);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("hard link"), std::string::npos);
}

TEST_F(ReaderTest, RefusesFileLargerThanDeclared) {
  FileEntry small = Honest(file_);
  small.size = 2;
  small.sha256 = Sha256Hex("he");
  auto index = Write({root_, file_}, {Honest(root_), small});
  auto result = Extract(index);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(result.error().message.find("not the 2 declared"), std::string::npos);
}

TEST_F(ReaderTest, RefusesWrongContent) {
  FileEntry wrong = Honest(file_);
  wrong.sha256 = Sha256Hex("HELLO");
  auto index = Write({root_, file_}, {Honest(root_), wrong});
  auto result = VerifyArchive(archive_, index);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("sha256"), std::string::npos);
}

TEST_F(ReaderTest, RefusesFlippedByte) {
  auto index = Write({root_, file_});
  std::string bytes = *ReadFile(archive_);
  bytes[bytes.size() / 2] ^= 0x20;
  ASSERT_TRUE(WriteFileAtomic(archive_, bytes));
  auto result = VerifyArchive(archive_, index);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kCorrupt);
}

TEST_F(ReaderTest, RefusesTrailingData) {
  auto index = Write({root_, file_}, {}, "garbage after the end");
  auto result = VerifyArchive(archive_, index);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("after the end"), std::string::npos);
}

TEST_F(ReaderTest, RefusesFrameThatLiesAboutItsRawSize) {
  auto index = Write({root_, file_});
  index.frames[0].raw_size += 512;
  index.raw_size += 512;
  auto result = VerifyArchive(archive_, index);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kCorrupt);
}

// A publisher's frame whose last bytes are damaged, with a package.json made to match: its
// data is handed out while it is decoded, and the damage shows only at its end (zstd's
// checksum). The extraction fails, even without each file's own sha256.
TEST_F(ReaderTest, RefusesFrameThatBreaksAfterItsDataWasHandedOut) {
  Spec big{"opt/demo/big", AE_IFREG, std::string(), "", "", 0644};
  for (uint64_t i = 0; big.content.size() < (3u << 20); ++i)
    big.content += "line " + std::to_string(i * 7919 % 100003) + "\n";
  // The second-last byte is in the frame's 4-byte checksum.
  auto index = Write({root_, big}, {}, "", [](std::string& frame) { frame[frame.size() - 2] ^= 0x01; });
  auto result = ExtractArchive(archive_, index, dir_ / "x", FileHashes::kPinned);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(result.error().message.find("does not decompress"), std::string::npos) << result.error().message;
}

TEST_F(ReaderTest, RefusesArchiveOfAnotherSize) {
  auto index = Write({root_, file_});
  index.archive_size += 1;
  auto result = VerifyArchive(archive_, index);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("package.json says"), std::string::npos);
}

TEST_F(ReaderTest, RefusesMissingEntries) {
  Spec other{"opt/demo/b", AE_IFREG, "b", "", "", 0644};
  auto index = Write({root_, file_}, {Honest(root_), Honest(file_), Honest(other)});
  auto result = VerifyArchive(archive_, index);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("ends before"), std::string::npos);
}

// The download's ring: bytes come out in order across wrap-arounds, a short stream is told,
// and a reader that stops releases a waiting writer.
TEST(BytePipe, CarriesBytesInOrderAndStops) {
  std::string sent;
  for (int i = 0; sent.size() < 300000; ++i) sent += std::to_string(i) + ",";
  BytePipe pipe(1000);
  std::thread writer([&] {
    for (size_t at = 0; at < sent.size(); at += 777)
      ASSERT_TRUE(pipe.Write(sent.data() + at, std::min<size_t>(777, sent.size() - at)));
    pipe.Close();
  });
  std::string got(sent.size(), '\0');
  for (size_t at = 0; at < sent.size(); at += 1234)
    ASSERT_TRUE(pipe.Read(got.data() + at, std::min<size_t>(1234, sent.size() - at)));
  char extra;
  EXPECT_FALSE(pipe.Read(&extra, 1)) << "the writer closed";
  writer.join();
  EXPECT_TRUE(got == sent);

  BytePipe stopped(10);
  std::thread blocked([&] { EXPECT_FALSE(stopped.Write(sent.data(), 100)); });
  char some[5];
  ASSERT_TRUE(stopped.Read(some, 5));
  stopped.Stop();
  blocked.join();
}

}  // namespace wharf
