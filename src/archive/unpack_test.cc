#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <thread>

#include "archive/pack.h"
#include "archive/reader.h"
#include "archive/tar_walk.h"
#include "base/scratch_dir.h"

namespace wharf {
namespace {

// A tree of many small files, empty ones, links, folders and two files that span frames.
void MakeTree(const std::string& dir) {
  for (int i = 0; i < 120; ++i) {
    std::string body;
    for (int k = 0; k < (i * 37) % 900; ++k) body += static_cast<char>('a' + (i + k * 13) % 26);
    WriteTestFile(dir + "/lib/part" + std::to_string(1000 + i), body, i % 3 ? 0644 : 0755);
  }
  WriteTestFile(dir + "/etc/empty.conf", "", 0640);
  WriteTestFile(dir + "/etc/deep/er/still/x.conf", "x = 1\n", 0600);
  std::string big;
  uint32_t x = 7;
  while (big.size() < 300000) {
    x = x * 1103515245 + 12345;
    big += "sample" + std::to_string(x % 3000) + " ";
  }
  WriteTestFile(dir + "/bin/big", big, 0755);
  WriteTestFile(dir + "/bin/big2", big.substr(1000) + "tail", 0755);
  WriteTestFile(dir + "/bin/zz-empty", "", 0755);
  (void)::symlink("big", (dir + "/bin/big.1").c_str());
  // Names a ustar header cannot hold: their pax records carry them.
  std::string long_name = "lib/" + std::string(150, 'n') + ".so";
  WriteTestFile(dir + "/" + long_name, "long", 0644);
  WriteTestFile(dir + "/etc/\xc3\xbc" "nic\xc3\xb6" "de.conf", "utf-8", 0644);
  (void)::symlink(("../" + long_name).c_str(), (dir + "/bin/long-link").c_str());
  (void)MakeDirs(dir + "/share/empty");
}

PackOptions SmallFrames(const std::string& out) {
  PackOptions options;
  options.name = "demo";
  options.version = "1";
  options.prefix = "/opt/demo";
  options.out_dir = out;
  options.level = 3;
  options.frame_size = 16 * 1024;
  return options;
}

class UnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeTree(dir_ / "tree");
    auto packed = PackTree(dir_ / "tree", SmallFrames(dir_ / "out"));
    ASSERT_TRUE(packed) << packed.error().message;
    index_ = packed->index;
    archive_ = *ReadFile(packed->archive_path);
    ASSERT_GE(index_.frames.size(), 10u);
  }

  // Feeds `bytes` through a pipe as a download would (in odd pieces) and unpacks them.
  Status Unpack(const std::string& bytes, const PackageIndex& index, const std::string& dest,
                unsigned cores) {
    BytePipe pipe(4096);
    std::thread download([&] {
      for (size_t at = 0; at < bytes.size(); at += 3001)
        if (!pipe.Write(bytes.data() + at, std::min<size_t>(3001, bytes.size() - at))) break;
      pipe.Close();
    });
    auto writer = TreeWriter::Create(dest, index.prefix);
    if (!writer) {
      pipe.Stop();
      download.join();
      return std::unexpected(writer.error());
    }
    (*writer)->Prepare(index);
    Status status = UnpackFrames(pipe, index, **writer, cores);
    download.join();
    if (!status) return status;
    return (*writer)->Finish();
  }

  // Every entry of the tree is in `dest` with its bytes, target and mode less write bits.
  void ExpectSameTree(const std::string& dest) {
    for (const auto& e : index_.files) {
      std::string rel = e.path.substr(std::string("opt/demo").size());
      std::string got = dest + rel, want = dir_ / "tree" + rel;
      struct stat st;
      ASSERT_EQ(::lstat(got.c_str(), &st), 0) << got;
      switch (e.type) {
        case EntryType::kFile:
          EXPECT_EQ(*ReadFile(got), *ReadFile(want)) << rel;
          EXPECT_EQ(st.st_mode & 07777, e.mode & 0555) << rel;
          break;
        case EntryType::kSymlink: EXPECT_EQ(*ReadLink(got), *ReadLink(want)) << rel; break;
        case EntryType::kDirectory: EXPECT_EQ(st.st_mode & 0222, 0u) << rel << " is read-only"; break;
      }
    }
  }

  ScratchDir dir_;
  PackageIndex index_;
  std::string archive_;
  int lies_ = 0;
};

TEST_F(UnpackTest, GivesTheTreeWithOneOrSeveralDecoders) {
  for (unsigned cores : {1u, 2u, 4u}) {
    std::string dest = dir_ / ("x" + std::to_string(cores));
    ASSERT_EQ(PlanUnpack(index_, cores).decoders, cores) << "small frames: memory for every core";
    Status status = Unpack(archive_, index_, dest, cores);
    ASSERT_TRUE(status) << status.error().message;
    ExpectSameTree(dest);
  }
}

// The preparer keeps files open for the decoders, but within the process's limit.
TEST_F(UnpackTest, StaysWithinALowDescriptorLimit) {
  struct rlimit before;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before), 0);
  struct rlimit low = before;
  low.rlim_cur = 64;  // fewer than the tree's files
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  Status status = Unpack(archive_, index_, dir_ / "x", 2);
  ::setrlimit(RLIMIT_NOFILE, &before);
  ASSERT_TRUE(status) << status.error().message;
  ExpectSameTree(dir_ / "x");
}

TEST_F(UnpackTest, RefusesAFlippedByteInAnyFrame) {
  for (size_t n : {size_t{0}, index_.frames.size() / 2, index_.frames.size() - 1}) {
    std::string bytes = archive_;
    bytes[index_.frames[n].offset + index_.frames[n].size / 2] ^= 1;
    Status status = Unpack(bytes, index_, dir_ / ("x" + std::to_string(n)), 2);
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().code, ErrorCode::kCorrupt);
    EXPECT_NE(status.error().message.find("frame " + std::to_string(n) + ": sha256"), std::string::npos)
        << status.error().message;
  }
}

TEST_F(UnpackTest, RefusesADownloadThatEndsEarly) {
  Status status = Unpack(archive_.substr(0, archive_.size() / 2), index_, dir_ / "x", 2);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("the download ended before this frame"), std::string::npos)
      << status.error().message;
}

TEST_F(UnpackTest, RefusesFilesThatOverlapInTheIndex) {
  PackageIndex index = index_;
  FileEntry* previous = nullptr;
  for (auto& e : index.files) {
    if (e.type != EntryType::kFile || e.size == 0) continue;
    if (previous && previous->frame == e.frame) {
      e.data_offset = previous->data_offset + previous->size - 1;  // one byte of the other
      break;
    }
    previous = &e;
  }
  Status status = Unpack(archive_, index, dir_ / "x", 2);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("overlap"), std::string::npos) << status.error().message;
}

// The tar header before each file's bytes must agree with package.json.
TEST_F(UnpackTest, RefusesAnIndexThatLiesAboutAFile) {
  auto lie = [&](auto change) {
    PackageIndex index = index_;
    for (auto& e : index.files)
      if (e.path == "opt/demo/lib/part1007") change(e);
    return Unpack(archive_, index, dir_ / ("x" + std::to_string(lies_++)), 2);
  };
  Status smaller = lie([](FileEntry& e) { e.size -= 3; });
  ASSERT_FALSE(smaller);
  EXPECT_NE(smaller.error().message.find("\"opt/demo/lib/part1007\" holds"), std::string::npos)
      << smaller.error().message;
  Status mode = lie([](FileEntry& e) { e.mode = 04755; });
  ASSERT_FALSE(mode);
  EXPECT_EQ(mode.error().code, ErrorCode::kUnsafe) << mode.error().message;
  Status moved = lie([](FileEntry& e) { e.data_offset += 512; });
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().code, ErrorCode::kCorrupt) << moved.error().message;
}

// A frame bigger than a decoder's output is decoded through its window, which package.json
// bounds (the memory plan counts on it).
TEST_F(UnpackTest, RefusesAFrameWiderThanTheRecordedWindow) {
  std::string big;
  uint32_t x = 3;
  while (big.size() < (1u << 20)) {
    x = x * 1103515245 + 12345;
    big += "line" + std::to_string(x % 9000) + "\n";
  }
  WriteTestFile(dir_ / "wide/big", big);
  PackOptions options = SmallFrames(dir_ / "wide-out");
  options.frame_size = 512u << 10;
  auto packed = PackTree(dir_ / "wide", options);
  ASSERT_TRUE(packed) << packed.error().message;
  std::string archive = *ReadFile(packed->archive_path);
  ASSERT_TRUE(Unpack(archive, packed->index, dir_ / "x", 1)) << "as packed";
  PackageIndex index = packed->index;
  index.zstd_window_log = 16;  // 64 KiB, and the frames hold 512 KiB
  Status status = Unpack(archive, index, dir_ / "y", 1);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("needs a wider zstd window"), std::string::npos) << status.error().message;
  EXPECT_FALSE(VerifyArchive(packed->archive_path, index)) << "publish refuses it as well";
}

// The walk of each frame's decoded bytes alone, against the index.
class TarWalkTest : public UnpackTest {
 protected:
  // Walks frame `number` (decoded, then changed by `edit`) against `index`.
  Status Walk(const PackageIndex& index, size_t number, void (*edit)(std::string&) = nullptr) {
    std::string raw;
    auto decoded = DecodeFrame(index_, number, std::string_view(archive_).substr(index_.frames[number].offset,
                                                                               index_.frames[number].size), raw);
    if (!decoded) return decoded;
    if (edit) edit(raw);
    TarFrameWalk walk(index, number);
    for (size_t at = 0; at < raw.size(); at += 1000)  // in pieces that cut headers
      WHARF_TRY(walk.Feed(raw.data() + at, std::min<size_t>(1000, raw.size() - at)));
    return walk.Finish();
  }
};

TEST_F(TarWalkTest, AcceptsEveryFrameOfAnHonestArchive) {
  for (size_t n = 0; n < index_.frames.size(); ++n) {
    Status status = Walk(index_, n);
    EXPECT_TRUE(status) << "frame " << n << ": " << status.error().message;
  }
}

TEST_F(TarWalkTest, RefusesAnEndBeforeTheLastFrameAndDataAfterTheEnd) {
  size_t last = index_.frames.size() - 1;
  Status after = Walk(index_, last, [](std::string& raw) { raw.back() = 'x'; });
  ASSERT_FALSE(after);
  EXPECT_NE(after.error().message.find("data after the end of the tar"), std::string::npos) << after.error().message;
  // A frame that starts with a header, zeroed: an end of archive in the middle.
  size_t n = 1;
  while (n < last && index_.frames[n].raw_offset % 512 != 0) ++n;
  ASSERT_LT(n, last);
  Status early = Walk(index_, n, [](std::string& raw) { std::fill(raw.begin(), raw.end(), '\0'); });
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, ErrorCode::kCorrupt) << early.error().message;
}

TEST_F(TarWalkTest, RefusesAnEntryTheIndexDoesNotHave) {
  PackageIndex index = index_;
  size_t k = 0;
  while (index.files[k].path.find("part1050") == std::string::npos) ++k;
  uint32_t frame = index.files[k].frame;
  index.files.erase(index.files.begin() + static_cast<long>(k));
  Status status = Walk(index, frame);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, ErrorCode::kUnsafe) << status.error().message;
  EXPECT_NE(status.error().message.find("part1050\" is not"), std::string::npos) << status.error().message;
}

TEST_F(TarWalkTest, RefusesABrokenPaxRecord) {
  uint32_t frame = 0;
  for (const auto& e : index_.files)
    if (e.path.find(std::string(150, 'n')) != std::string::npos) frame = e.frame;
  Status status = Walk(index_, frame, [](std::string& raw) {
    size_t record = raw.find(" path=opt/demo/lib/nnnn");
    ASSERT_NE(record, std::string::npos) << "the long name comes in a pax record";
    raw[record - 1] = 'x';  // its length, no longer a number
  });
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, ErrorCode::kCorrupt) << status.error().message;
  EXPECT_NE(status.error().message.find("a broken pax header"), std::string::npos) << status.error().message;
}

TEST(PlanUnpack, SpendsTheMemoryOnDecodersThatFit) {
  PackageIndex index;
  for (int i = 0; i < 20; ++i) index.frames.push_back({0, 2u << 20, 0, 8u << 20, ""});
  index.zstd_window_log = 22;  // `wharf pack`: 4 MiB windows in 8 MiB frames
  EXPECT_EQ(PlanUnpack(index, 2).decoders, 2u);
  EXPECT_GE(PlanUnpack(index, 2).in_flight, 3u << 20) << "room for more than one frame";
  EXPECT_EQ(PlanUnpack(index, 1).decoders, 1u);
  EXPECT_EQ(PlanUnpack(index, 0).decoders, 1u) << "an unknown core count is one";
  EXPECT_EQ(PlanUnpack(index, 8).decoders, 2u) << "more cores, the same memory";
  index.zstd_window_log = 0;  // not recorded: a window may be the whole 8 MiB frame
  EXPECT_EQ(PlanUnpack(index, 2).decoders, 1u);
  index.zstd_window_log = 22;
  index.frames[7].size = 9u << 20;  // incompressible: one decoder, and the frame fits anyway
  UnpackPlan plan = PlanUnpack(index, 2);
  EXPECT_EQ(plan.decoders, 1u);
  EXPECT_EQ(plan.in_flight, 9u << 20);
}

}  // namespace
}  // namespace wharf
