#include "archive/pack.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "archive/reader.h"
#include "base/scratch_dir.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

PackOptions Options(const std::string& out) {
  PackOptions options;
  options.name = "demo";
  options.version = "1.0";
  options.prefix = "/opt/demo";
  options.out_dir = out;
  options.level = 3;
  options.frame_size = 64 * 1024;
  return options;
}

}  // namespace

TEST(Pack, RoundTripsThroughExtract) {
  ScratchDir dir;
  MakeSampleTree(dir / "tree");
  auto packed = PackTree(dir / "tree", Options(dir / "out"));
  ASSERT_TRUE(packed) << packed.error().message;
  ASSERT_TRUE(VerifyArchive(packed->archive_path, packed->index));
  auto extracted = ExtractArchive(packed->archive_path, packed->index, dir / "x");
  ASSERT_TRUE(extracted) << extracted.error().message;
  EXPECT_EQ(*ReadFile(dir / "x/bin/app"), *ReadFile(dir / "tree/bin/app"));
  EXPECT_EQ(*ReadFile(dir / "x/lib/big"), *ReadFile(dir / "tree/lib/big"));
  EXPECT_EQ(*ReadLink(dir / "x/lib/big.1"), "big");
  EXPECT_TRUE(IsDirectory(dir / "x/empty"));
  struct stat st;
  ASSERT_EQ(::stat((dir / "x/bin/app").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0555u) << "0755 less write bits";
  ASSERT_EQ(::stat((dir / "x/etc/app.conf").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0440u);
  ASSERT_EQ(::stat((dir / "x/bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0222, 0u) << "folders are read-only";
}

// Frames above the reader's decode-ahead budget: each is decoded into the one buffer a
// slice of input at a time, its bytes written while the rest is decoded.
TEST(Pack, BigFramesRoundTripThroughExtract) {
  ScratchDir dir;
  ASSERT_TRUE(MakeDirs(dir / "tree/lib"));
  std::string big;
  uint32_t x = 1;
  while (big.size() < (21u << 20)) {  // compressible, but not trivially
    x = x * 1103515245 + 12345;
    big += "word" + std::to_string(x % 5000) + ((x >> 16) % 7 == 0 ? "\n" : " ");
  }
  ASSERT_TRUE(WriteFileAtomic(dir / "tree/lib/big", big));
  ASSERT_TRUE(WriteFileAtomic(dir / "tree/lib/small", "after the big one"));
  PackOptions options = Options(dir / "out");
  options.level = 1;
  options.frame_size = 8u << 20;
  auto packed = PackTree(dir / "tree", options);
  ASSERT_TRUE(packed) << packed.error().message;
  ASSERT_GE(packed->index.frames.size(), 3u);
  auto extracted = ExtractArchive(packed->archive_path, packed->index, dir / "x", FileHashes::kPinned);
  ASSERT_TRUE(extracted) << extracted.error().message;
  EXPECT_TRUE(*ReadFile(dir / "x/lib/big", 64u << 20) == big);
  EXPECT_EQ(*ReadFile(dir / "x/lib/small"), "after the big one");
}

TEST(Pack, IsReproducible) {
  ScratchDir dir;
  MakeSampleTree(dir / "tree");
  auto a = PackTree(dir / "tree", Options(dir / "a"));
  ASSERT_EQ(::utimes((dir / "tree/bin/app").c_str(), nullptr), 0);  // a new mtime
  auto b = PackTree(dir / "tree", Options(dir / "b"));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*ReadFile(a->archive_path), *ReadFile(b->archive_path));
  EXPECT_EQ(*ReadFile(a->index_path), *ReadFile(b->index_path));
}

TEST(Pack, SplitsBigFileIntoFixedFrames) {
  ScratchDir dir;
  MakeSampleTree(dir / "tree");
  auto packed = PackTree(dir / "tree", Options(dir / "out"));
  ASSERT_TRUE(packed);
  const PackageIndex& index = packed->index;
  const FileEntry* big = nullptr;
  for (const auto& f : index.files)
    if (f.path == "opt/demo/lib/big") big = &f;
  ASSERT_NE(big, nullptr);
  // 150000 bytes at 64 KiB: three frames of its own; the next entry starts after them.
  const FileEntry* next = big + 1;
  EXPECT_EQ(next->frame, big->frame + 3);
  for (uint32_t f = big->frame; f < big->frame + 3; ++f)
    EXPECT_LE(index.frames[f].raw_size, 64u * 1024 + 2048);
}

TEST(Pack, InPlaceChangeOfBigFileChangesOneFrame) {
  ScratchDir dir;
  MakeSampleTree(dir / "tree");
  auto a = PackTree(dir / "tree", Options(dir / "a"));
  std::string big = *ReadFile(dir / "tree/lib/big");
  big[100000] = '!';
  WriteTestFile(dir / "tree/lib/big", big);
  auto b = PackTree(dir / "tree", Options(dir / "b"));
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->index.frames.size(), b->index.frames.size());
  int differing = 0;
  for (size_t i = 0; i < a->index.frames.size(); ++i)
    differing += a->index.frames[i].sha256 != b->index.frames[i].sha256;
  EXPECT_EQ(differing, 1);
}

TEST(Pack, DataOffsetsPointAtEachFilesBytesInTheTarStream) {
  ScratchDir dir;
  MakeSampleTree(dir / "tree");
  auto packed = PackTree(dir / "tree", Options(dir / "out"));
  ASSERT_TRUE(packed);
  std::string command = "zstd -q -d -c " + packed->archive_path + " > " + dir / "raw.tar";
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::string raw = *ReadFile(dir / "raw.tar");
  ASSERT_EQ(raw.size(), packed->index.raw_size);
  int files = 0;
  for (const auto& f : packed->index.files) {
    if (f.type != EntryType::kFile) continue;
    EXPECT_EQ(Sha256Hex(raw.substr(f.data_offset, f.size)), f.sha256) << f.path;
    ++files;
  }
  EXPECT_EQ(files, 3);
}

TEST(Pack, GnuTarExtractsIt) {
  ScratchDir dir;
  MakeSampleTree(dir / "tree");
  auto packed = PackTree(dir / "tree", Options(dir / "out"));
  ASSERT_TRUE(packed);
  ASSERT_TRUE(MakeDirs(dir / "gnu"));
  std::string command = "tar --zstd -xf " + packed->archive_path + " -C " + dir / "gnu";
  ASSERT_EQ(std::system(command.c_str()), 0);
  EXPECT_EQ(*ReadFile(dir / "gnu/opt/demo/lib/big"), *ReadFile(dir / "tree/lib/big"));
  EXPECT_EQ(*ReadLink(dir / "gnu/opt/demo/lib/big.1"), "big");
  struct stat st;
  ASSERT_EQ(::stat((dir / "gnu/opt/demo/etc/app.conf").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST(Pack, RefusesFifoWithItsPath) {
  ScratchDir dir;
  MakeSampleTree(dir / "tree");
  ASSERT_EQ(::mkfifo((dir / "tree/pipe").c_str(), 0644), 0);
  auto packed = PackTree(dir / "tree", Options(dir / "out"));
  ASSERT_FALSE(packed);
  EXPECT_NE(packed.error().message.find("tree/pipe"), std::string::npos);
}

TEST(Pack, RefusesBadNames) {
  ScratchDir dir;
  MakeSampleTree(dir / "tree");
  PackOptions options = Options(dir / "out");
  options.name = "a/b";
  EXPECT_FALSE(PackTree(dir / "tree", options));
  options = Options(dir / "out");
  options.prefix = "relative";
  EXPECT_FALSE(PackTree(dir / "tree", options));
}

TEST(Pack, StoresHardLinksAsSeparateFiles) {
  ScratchDir dir;
  MakeSampleTree(dir / "tree");
  ASSERT_EQ(::link((dir / "tree/bin/app").c_str(), (dir / "tree/bin/app2").c_str()), 0);
  auto packed = PackTree(dir / "tree", Options(dir / "out"));
  ASSERT_TRUE(packed) << packed.error().message;
  ASSERT_TRUE(ExtractArchive(packed->archive_path, packed->index, dir / "x"));
  EXPECT_EQ(*ReadFile(dir / "x/bin/app2"), *ReadFile(dir / "tree/bin/app"));
}

}  // namespace wharf

namespace wharf {

TEST(Pack, LongUnicodeAndSpacedNamesRoundTrip) {
  ScratchDir dir;
  std::string long_dir(150, 'd');
  WriteTestFile(dir / ("tree/" + long_dir + "/" + long_dir + "/file"), "deep");
  WriteTestFile(dir / "tree/r\xc3\xa9sum\xc3\xa9 with spaces.txt", "u");
  WriteTestFile(dir / "tree/empty", "");
  ASSERT_EQ(::symlink("/opt/demo/empty", (dir / "tree/absolute-inside").c_str()), 0);
  auto packed = PackTree(dir / "tree", Options(dir / "out"));
  ASSERT_TRUE(packed) << packed.error().message;
  auto extracted = ExtractArchive(packed->archive_path, packed->index, dir / "x");
  ASSERT_TRUE(extracted) << extracted.error().message;
  EXPECT_EQ(*ReadFile(dir / ("x/" + long_dir + "/" + long_dir + "/file")), "deep");
  EXPECT_EQ(*ReadFile(dir / "x/r\xc3\xa9sum\xc3\xa9 with spaces.txt"), "u");
  EXPECT_EQ(*ReadLink(dir / "x/absolute-inside"), "/opt/demo/empty");
}

TEST(Pack, RefusesNamesThatAreNotUtf8) {
  ScratchDir dir;
  WriteTestFile(dir / "tree/bad-\xff-name", "x");
  auto packed = PackTree(dir / "tree", Options(dir / "out"));
  ASSERT_FALSE(packed);
  EXPECT_NE(packed.error().message.find("not UTF-8"), std::string::npos);
}

TEST(Pack, RefusesSymlinkLeavingThePackage) {
  ScratchDir dir;
  MakeSampleTree(dir / "tree");
  ASSERT_EQ(::symlink("/usr/lib/libz.so", (dir / "tree/lib/libz.so").c_str()), 0);
  auto packed = PackTree(dir / "tree", Options(dir / "out"));
  ASSERT_FALSE(packed);
  EXPECT_NE(packed.error().message.find("outside the package"), std::string::npos);
}

}  // namespace wharf
