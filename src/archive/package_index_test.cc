#include "archive/package_index.h"

#include <gtest/gtest.h>

namespace wharf {
namespace {

PackageIndex Sample() {
  PackageIndex index;
  index.name = "demo";
  index.version = "1.0";
  index.prefix = "/opt/demo";
  index.archive = "demo-1.0.tar.zst";
  index.archive_size = 300;
  index.archive_sha256 = std::string(64, 'a');
  index.zstd_level = 12;
  index.raw_size = 5000;
  index.frames = {{0, 100, 0, 2000, std::string(64, 'b')}, {100, 200, 2000, 3000, std::string(64, 'c')}};
  index.files = {{"opt/demo", EntryType::kDirectory, 0755, 0, "", 0, ""},
                 {"opt/demo/bin", EntryType::kDirectory, 0755, 0, "", 0, ""},
                 {"opt/demo/bin/app", EntryType::kFile, 0755, 10, std::string(64, 'd'), 0, "", 1024},
                 {"opt/demo/bin/link", EntryType::kSymlink, 0777, 0, "", 1, "app"}};
  return index;
}

}  // namespace

TEST(PackageIndex, JsonRoundTripsExactly) {
  std::string json = PackageIndexToJson(Sample());
  auto parsed = ParsePackageIndex(json);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(PackageIndexToJson(*parsed), json);
  EXPECT_EQ(parsed->files[3].link, "app");
}

// nlohmann casts a float to the integer asked for: undefined behaviour out of range (fuzzing).
TEST(PackageIndex, RefusesNumbersThatAreNotIntegers) {
  std::string json = PackageIndexToJson(Sample());
  size_t at = json.find("\"raw_size\": ") + 12;
  std::string floated = json.substr(0, at) + "1e34" + json.substr(json.find_first_of(",\n", at));
  auto parsed = ParsePackageIndex(floated);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, ErrorCode::kCorrupt);
}

TEST(PackageIndex, ConfigurationKindRoundTripsAndSoftwareBytesStay) {
  std::string software = PackageIndexToJson(Sample());
  EXPECT_EQ(software.find("\"kind\""), std::string::npos) << "software indexes keep their bytes";
  EXPECT_EQ(StoreFolder(Sample()), "software/demo/1.0");
  PackageIndex config = Sample();
  config.configuration = true;
  config.fec = "fec01";
  config.matches = {{"fesa-ps", "2.2"}};
  auto parsed = ParsePackageIndex(PackageIndexToJson(config));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->configuration);
  EXPECT_EQ(parsed->fec, "fec01");
  EXPECT_EQ(parsed->matches, config.matches);
  EXPECT_EQ(StoreFolder(*parsed), "fecs/fec01/configuration/demo/1.0");
  config.fec.clear();
  EXPECT_EQ(StoreFolder(config), "configuration/demo/1.0");
}

TEST(PackageIndex, RefusesConfigurationFieldsThatDoNotFit) {
  PackageIndex index = Sample();
  index.fec = "fec01";  // a FEC's own, but not a configuration
  EXPECT_FALSE(ValidatePackageIndex(index));
  index = Sample();
  index.matches = {{"fesa-ps", "2.2"}};
  EXPECT_FALSE(ValidatePackageIndex(index));
  for (PackageMatch bad : {PackageMatch{"demo", "2"}, PackageMatch{"../x", "1"}, PackageMatch{"ok", "1/2"}}) {
    index = Sample();
    index.configuration = true;
    index.matches = {bad};
    EXPECT_FALSE(ValidatePackageIndex(index)) << bad.name << "@" << bad.version;
  }
  index = Sample();
  index.configuration = true;
  index.fec = "global";  // reserved, and never a path out of fecs/<FEC>/
  EXPECT_FALSE(ValidatePackageIndex(index));
  std::string json = PackageIndexToJson(Sample());
  json.insert(json.rfind('}'), ",\"kind\": \"firmware\"");
  EXPECT_FALSE(ParsePackageIndex(json));
}

TEST(PackageIndex, FramesMustBeContiguousAndCoverArchive) {
  PackageIndex index = Sample();
  index.frames[1].offset = 101;
  EXPECT_FALSE(ValidatePackageIndex(index));
  index = Sample();
  index.archive_size = 301;
  EXPECT_FALSE(ValidatePackageIndex(index));
  index = Sample();
  index.frames[1].raw_size = kMaxFrameRawSize + 1;
  index.raw_size = 2000 + kMaxFrameRawSize + 1;
  EXPECT_FALSE(ValidatePackageIndex(index));
  index = Sample();  // compressed beyond what zstd could ever need for 3000 bytes
  index.frames[1].size = 12u << 20;
  index.archive_size = 100 + (12u << 20);
  EXPECT_FALSE(ValidatePackageIndex(index));
}

TEST(PackageIndex, RefusesEntriesOutsidePrefix) {
  for (const char* path : {"../x", "/etc/x", "opt/other/x", "opt/demo/../x"}) {
    PackageIndex index = Sample();
    index.files[2].path = path;
    auto result = ValidatePackageIndex(index);
    ASSERT_FALSE(result) << path;
    EXPECT_EQ(result.error().code, ErrorCode::kUnsafe) << path;
  }
}

TEST(PackageIndex, RefusesSymlinkLeavingPrefix) {
  PackageIndex index = Sample();
  index.files[3].link = "../../../etc";
  auto result = ValidatePackageIndex(index);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("outside the prefix"), std::string::npos);
}

TEST(PackageIndex, RefusesDuplicatesBadFramesAndTypes) {
  PackageIndex index = Sample();
  index.files[3].path = "opt/demo/bin/app";
  EXPECT_FALSE(ValidatePackageIndex(index));
  index = Sample();
  index.files[2].frame = 7;
  EXPECT_FALSE(ValidatePackageIndex(index));
  std::string json = PackageIndexToJson(Sample());
  json.replace(json.find("\"symlink\""), 9, "\"chardev\"");
  EXPECT_FALSE(ParsePackageIndex(json));
  EXPECT_FALSE(ParsePackageIndex("{}"));
}

TEST(PackageIndex, RefusesFileDataBeyondTheStream) {
  PackageIndex index = Sample();
  index.files[2].data_offset = 4995;
  EXPECT_FALSE(ValidatePackageIndex(index));
}

TEST(PackageIndex, WindowLogIsOptionalAndBounded) {
  std::string before = PackageIndexToJson(Sample());
  EXPECT_EQ(before.find("zstd_window_log"), std::string::npos) << "an index without it keeps its bytes";
  EXPECT_EQ(ParsePackageIndex(before)->zstd_window_log, 0);
  PackageIndex index = Sample();
  index.zstd_window_log = 22;
  auto parsed = ParsePackageIndex(PackageIndexToJson(index));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->zstd_window_log, 22);
  for (int bad : {-1, 9, 28}) {
    index.zstd_window_log = bad;
    EXPECT_FALSE(ValidatePackageIndex(index)) << bad;
  }
}

TEST(PackageIndex, CompressedForTheWireAndCheckedBack) {
  std::string json = PackageIndexToJson(Sample());
  std::string packed = CompressIndex(json);
  EXPECT_LT(packed.size(), json.size());
  auto back = DecompressIndex(packed, json.size());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, json);
  EXPECT_FALSE(DecompressIndex(packed, json.size() + 1)) << "another size than pinned";
  EXPECT_FALSE(DecompressIndex(packed + "x", json.size())) << "trailing bytes";
  EXPECT_FALSE(DecompressIndex(packed.substr(0, packed.size() - 1), json.size())) << "cut short";
  EXPECT_FALSE(DecompressIndex(json, json.size())) << "not zstd";
}

TEST(PackageIndex, ArchiveNameFollowsNameAndVersion) {
  PackageIndex index = Sample();
  index.archive = "other.tar.zst";
  EXPECT_FALSE(ValidatePackageIndex(index));
}

}  // namespace wharf
