#include "archive/delta.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

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

// ApplyDeltaToFile into a new file of `size` bytes: its content, and the pieces `seen` got.
Status IntoFile(const std::string& base_path, const std::string& delta, uint64_t size, const std::string& path,
                std::string& written, std::string& seen) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) return IoError("create", path);
  Status applied = ApplyDeltaToFile(base_path, delta, size, fd.get(), path, [&](const char* data, size_t n) {
    seen.append(data, n);
  });
  written = ReadFile(path, 64u << 20).value_or("");
  return applied;
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

// Several MiB: the mappings are let go many times over while the decoder still refers back
// to both files.
TEST(Delta, RebuildsBigTargetInPlace) {
  ScratchDir dir;
  std::string base = Noise(6u << 20, 1);
  std::string target = base.substr(0, 3u << 20) + Noise(5000, 3) + base.substr(1u << 20);
  target.replace(100, 64, Noise(64, 2));
  WriteTestFile(dir / "base", base);
  auto patch = MakeDelta(base, target, 3);
  ASSERT_TRUE(patch);
  std::string written, seen;
  auto applied = IntoFile(dir / "base", *patch, target.size(), dir / "out", written, seen);
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_TRUE(written == target);
  EXPECT_TRUE(seen == target);
  auto alone = MakeDelta("", target, 3);  // no base: a file compressed on its own
  written.clear();
  seen.clear();
  ASSERT_TRUE(IntoFile("", *alone, target.size(), dir / "alone", written, seen));
  EXPECT_TRUE(written == target);
}

// Both ways (in memory below kPatchInPlaceSize, in place above it) refuse the same.
TEST(Delta, IntoFileRefusesOutputOtherThanDeclared) {
  for (size_t base_size : {size_t{100000}, size_t{kPatchInPlaceSize + 100000}}) {
    ScratchDir dir;
    std::string base = Noise(base_size, 1);
    WriteTestFile(dir / "base", base);
    auto patch = MakeDelta(base, base + base, 3);
    std::string written, seen;
    auto more = IntoFile(dir / "base", *patch, base.size(), dir / "more", written, seen);
    ASSERT_FALSE(more);
    EXPECT_EQ(more.error().code, ErrorCode::kCorrupt);
    EXPECT_NE(more.error().message.find("more than"), std::string::npos) << more.error().message;
    auto fewer = IntoFile(dir / "base", *patch, 3 * base.size(), dir / "fewer", written, seen);
    ASSERT_FALSE(fewer);
    EXPECT_EQ(fewer.error().code, ErrorCode::kCorrupt);
    auto cut = IntoFile(dir / "base", patch->substr(0, patch->size() / 2), 2 * base.size(), dir / "cut", written, seen);
    ASSERT_FALSE(cut);
    EXPECT_EQ(cut.error().code, ErrorCode::kCorrupt);
  }
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

TEST(Delta, PublishWritesPatchesForChangedFilesAndTheIndex) {
  ScratchDir dir;
  std::string big1 = Noise(500000, 7);
  std::string big2 = big1;
  big2.replace(250000, 64, Noise(64, 9));
  PackResult v1 = PackVersion(dir, "1", big1);
  PackResult v2 = PackVersion(dir, "2", big2);
  // As in a store: each version's index is "package.json" beside its archive.
  std::string v1_json = *ReadFile(v1.index_path), v2_json = *ReadFile(v2.index_path);
  WriteTestFile(dir / "out1/package.json", v1_json);
  ASSERT_TRUE(MakeDirs(dir / "v2"));
  ASSERT_TRUE(WriteDeltas(dir / "v2", v2.archive_path, v2.index, v2_json, {{v1.archive_path, v1.index}}, 19));
  auto deltas = ParseDeltaIndex(*ReadFile(dir / "v2/deltas.json"));
  ASSERT_TRUE(deltas) << deltas.error().message;
  auto find = [&](const std::string& path, const std::string& base) -> const DeltaEntry* {
    for (const auto& d : *deltas)
      if (d.path == path && d.base_sha256 == base) return &d;
    return nullptr;
  };
  auto patch_of = [&](const DeltaEntry& d) { return d.file.empty() ? d.data : *ReadFile(dir / ("v2/" + d.file)); };
  auto rebuild = [&](const std::string& base_path, const DeltaEntry& d, uint64_t size) {
    std::string out;
    EXPECT_TRUE(Collect(base_path, patch_of(d), size, out));
    return out;
  };
  // The changed big file: a patch against the old one, small enough to ride inline.
  const DeltaEntry* app = find("opt/app/bin/app", Sha256Hex(big1));
  ASSERT_NE(app, nullptr);
  EXPECT_LT(app->size, 5000u);
  EXPECT_TRUE(app->file.empty()) << "small patches are inline";
  WriteTestFile(dir / "held", big1);
  EXPECT_EQ(rebuild(dir / "held", *app, big2.size()), big2);
  EXPECT_EQ(find("opt/app/bin/app", ""), nullptr) << "the big file has its own frame: nothing to gain alone";
  // The edited small file shares its frame with the big one: a patch, and the file alone
  // for an agent that holds no version of it.
  const DeltaEntry* conf = find("opt/app/etc/conf", Sha256Hex(std::string("v1")));
  const DeltaEntry* alone = find("opt/app/etc/conf", "");
  ASSERT_NE(conf, nullptr);
  ASSERT_NE(alone, nullptr);
  WriteTestFile(dir / "conf1", "v1");
  EXPECT_EQ(rebuild(dir / "conf1", *conf, 2), "v2");
  EXPECT_EQ(rebuild("", *alone, 2), "v2");
  // package.json against the older one.
  const DeltaEntry* index = find(std::string(kIndexDeltaPath), Sha256Hex(v1_json));
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->target_sha256, Sha256Hex(v2_json));
  EXPECT_LT(index->size * 4, v2_json.size());
  EXPECT_EQ(rebuild(dir / "out1/package.json", *index, v2_json.size()), v2_json);
  EXPECT_EQ(deltas->size(), 4u);
}

TEST(Delta, NothingForFilesAnOlderVersionHolds) {
  ScratchDir dir;
  std::string big = Noise(300000, 3);
  PackResult v1 = PackVersion(dir, "1", big);
  PackResult v2 = PackVersion(dir, "1b", big);  // etc/conf differs, bin/app the same
  ASSERT_TRUE(MakeDirs(dir / "v2"));
  ASSERT_TRUE(WriteDeltas(dir / "v2", v2.archive_path, v2.index, *ReadFile(v2.index_path),
                          {{v1.archive_path, v1.index}}, 19));
  auto deltas = ParseDeltaIndex(*ReadFile(dir / "v2/deltas.json"));
  ASSERT_TRUE(deltas);
  for (const auto& d : *deltas) EXPECT_EQ(d.path, "opt/app/etc/conf") << "bin/app is held as it is";
}

TEST(Delta, InlinePatchesAreCheckedWhenParsed) {
  std::string sha(64, 'a');
  DeltaEntry inline_patch{"opt/x", "", sha, "", 3, Sha256Hex(std::string("abc")), "abc"};
  auto parsed = ParseDeltaIndex(DeltaIndexToJson({inline_patch}));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ((*parsed)[0].data, "abc");
  inline_patch.sha256 = sha;  // the data does not match its hash
  EXPECT_FALSE(ParseDeltaIndex(DeltaIndexToJson({inline_patch})));
  DeltaEntry index_alone{std::string(kIndexDeltaPath), "", sha, "", 3, Sha256Hex(std::string("abc")), "abc"};
  EXPECT_FALSE(ParseDeltaIndex(DeltaIndexToJson({index_alone}))) << "an index patch needs a base";
}

TEST(Delta, IndexRefusesPathsOutsideDeltas) {
  std::string sha(64, 'a');
  std::vector<DeltaEntry> bad{{"opt/x", sha, sha, "../../etc/passwd", 1, sha, ""}};
  EXPECT_FALSE(ParseDeltaIndex(DeltaIndexToJson(bad)));
  std::vector<DeltaEntry> good{{"opt/x", sha, sha, "deltas/0.zst", 1, sha, ""}};
  EXPECT_TRUE(ParseDeltaIndex(DeltaIndexToJson(good)));
}

// Issue 13, class 5: deltas.json is not signed; a hostile one is refused cheaply (never a
// tree of the whole file), and only what the caller keeps is held.
TEST(Delta, HostileIndexShapesAreRefused) {
  std::string sha(64, 'a');
  std::string entry = "{\"path\":\"opt/x\",\"base_sha256\":\"" + sha + "\",\"target_sha256\":\"" + sha +
                      "\",\"file\":\"deltas/0.zst\",\"size\":1,\"sha256\":\"" + sha + "\"}";
  EXPECT_TRUE(ParseDeltaIndex("{\"format\":1,\"deltas\":[" + entry + "]}"));
  const std::vector<std::string> hostile = {
      std::string(100000, '[') + std::string(100000, ']'),                       // deep nesting
      "{\"deltas\":[" + std::string(50000, '[') + "]}",                          // deep inside the list
      "{\"deltas\":[{},{},{}]}",                                                 // entries without fields
      "{\"deltas\":[" + entry + "],\"deltas\":[]}",                              // the list twice
      "{\"deltas\":[{\"path\":{\"a\":1}}]}",                                     // an object for a string
      "{\"deltas\":[{\"path\":\"" + std::string(1 << 20, 'x') + "\"}]}",         // a 1 MiB string
      "{\"deltas\":[],\"n\":" + std::string(1 << 20, '9') + "}",                 // a 1 MiB number
      "[" + entry + "]",                                                         // not an object
      "{\"deltas\":[" + entry,                                                   // cut
      std::string(kMaxDeltaIndexBytes + 1, ' '),                                 // too big
      "{\"deltas\":[" + entry.substr(0, entry.size() - 1) + ",\"data\":\"AA==\"}]}",  // a file and data
      "{\"format\":1.5,\"deltas\":[" + entry + "]}",                                 // not an integer
      "{\"format\":-1,\"deltas\":[" + entry + "]}",                                  // negative
      "{\"deltas\":[{\"path\":\"opt/x\",\"base_sha256\":\"" + sha + "\",\"target_sha256\":\"" + sha +
          "\",\"file\":\"deltas/0.zst\",\"size\":1e0,\"sha256\":\"" + sha + "\"}]}",   // a float size
  };
  for (size_t i = 0; i < hostile.size(); ++i) EXPECT_FALSE(ParseDeltaIndex(hostile[i])) << i;
}

TEST(Delta, OnlyKeptEntriesAreHeldAndTheirNumberIsBounded) {
  std::string sha(64, 'a'), other(64, 'b');
  std::vector<DeltaEntry> many;
  for (int i = 0; i < 1000; ++i) many.push_back({"opt/x", sha, i == 7 ? other : sha, "deltas/0.zst", 1, sha, ""});
  std::string json = DeltaIndexToJson(many);
  auto kept = ParseDeltaIndex(json, [&](const DeltaEntry& d) { return d.target_sha256 == other; }, 4);
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_EQ(kept->size(), 1u);
  EXPECT_FALSE(ParseDeltaIndex(json, [](const DeltaEntry&) { return true; }, 999)) << "more kept than allowed";
}

// A 32-bit FEC cannot map a base past half its address space: refused with an error, never
// mapped at a truncated size (st_size cast to a 32-bit size_t). Runs on the 32-bit cross
// builds (tests/cross/unit.sh powerpc); a 64-bit machine maps any base.
TEST(Delta, RefusesABaseTooLargeToMapOn32Bit) {
  if (sizeof(size_t) > 4) GTEST_SKIP() << "64-bit: every base fits the address space";
  ScratchDir dir;
  std::string base = dir / "base";
  UniqueFd fd(::open(base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::ftruncate(fd.get(), off_t{5} << 30), 0);  // 5 GiB of sparse zeros
  std::string out;
  auto applied = Collect(base, "", 1, out);
  ASSERT_FALSE(applied);
  EXPECT_NE(applied.error().message.find("too large to map"), std::string::npos) << applied.error().message;
}

}  // namespace wharf
