#include "archive/delta.h"

#include <gtest/gtest.h>

#include "archive/pack.h"
#include "base/scratch_dir.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

std::string Noise(size_t size, uint32_t seed) {
  std::string out;
  out.reserve(size);
  for (size_t i = 0; i < size; ++i) out += static_cast<char>((seed = seed * 1103515245u + 12345u) >> 24);
  return out;
}

Status Collect(const std::string& base_path, const std::string& delta, uint64_t max, std::string& out) {
  return ApplyDelta(base_path, delta, max, [&](const char* data, size_t size) -> Status {
    out.append(data, size);
    return {};
  });
}

PackResult PackVersion(const ScratchDir& dir, const std::string& version, const std::string& big) {
  std::string tree = dir / ("tree" + version);
  WriteTestFile(tree + "/bin/app", big, 0755);
  WriteTestFile(tree + "/etc/conf", "v" + version);
  PackOptions options;
  options.name = "app";
  options.version = version;
  options.prefix = "/opt/app";
  options.out_dir = dir / ("out" + version);
  options.level = 3;
  auto packed = PackTree(tree, options);
  EXPECT_TRUE(packed) << packed.error().message;
  return *packed;
}

}  // namespace

TEST(Delta, RebuildsTargetFromBase) {
  ScratchDir dir;
  std::string base = Noise(300000, 1);
  std::string target = base;
  target.replace(150000, 100, Noise(100, 2));
  target += "appended";
  WriteTestFile(dir / "base", base);
  auto patch = MakeDelta(base, target, 19);
  ASSERT_TRUE(patch);
  EXPECT_LT(patch->size(), 2000u) << "a small change makes a small patch";
  std::string rebuilt;
  ASSERT_TRUE(Collect(dir / "base", *patch, target.size(), rebuilt));
  EXPECT_EQ(rebuilt, target);
}

TEST(Delta, RefusesOutputBeyondDeclaredSize) {
  ScratchDir dir;
  std::string base = Noise(100000, 1);
  WriteTestFile(dir / "base", base);
  auto patch = MakeDelta(base, base + base, 3);
  std::string rebuilt;
  auto result = Collect(dir / "base", *patch, base.size(), rebuilt);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kCorrupt);
}

TEST(Delta, PublishWritesDeltaForChangedBigFileOnly) {
  ScratchDir dir;
  std::string big1 = Noise(500000, 7);
  std::string big2 = big1;
  big2.replace(250000, 64, Noise(64, 9));
  PackResult v1 = PackVersion(dir, "1", big1);
  PackResult v2 = PackVersion(dir, "2", big2);
  ASSERT_TRUE(MakeDirs(dir / "v2"));
  ASSERT_TRUE(WriteDeltas(dir / "v2", v2.archive_path, v2.index, {{v1.archive_path, v1.index}}, 19));
  auto deltas = ParseDeltaIndex(*ReadFile(dir / "v2/deltas.json"));
  ASSERT_TRUE(deltas) << deltas.error().message;
  ASSERT_EQ(deltas->size(), 1u);
  const DeltaEntry& d = (*deltas)[0];
  EXPECT_EQ(d.path, "opt/app/bin/app");
  EXPECT_EQ(d.base_sha256, Sha256Hex(big1));
  EXPECT_EQ(d.target_sha256, Sha256Hex(big2));
  auto patch = ReadFile(dir / ("v2/" + d.file));
  EXPECT_EQ(patch->size(), d.size);
  EXPECT_LT(d.size, 5000u);
  WriteTestFile(dir / "held", big1);
  std::string rebuilt;
  ASSERT_TRUE(Collect(dir / "held", *patch, big2.size(), rebuilt));
  EXPECT_EQ(Sha256Hex(rebuilt), d.target_sha256);
}

TEST(Delta, IndexRefusesPathsOutsideDeltas) {
  std::string sha(64, 'a');
  std::vector<DeltaEntry> bad{{"opt/x", sha, sha, "../../etc/passwd", 1, sha}};
  EXPECT_FALSE(ParseDeltaIndex(DeltaIndexToJson(bad)));
  std::vector<DeltaEntry> good{{"opt/x", sha, sha, "deltas/0.zst", 1, sha}};
  EXPECT_TRUE(ParseDeltaIndex(DeltaIndexToJson(good)));
}

}  // namespace wharf
