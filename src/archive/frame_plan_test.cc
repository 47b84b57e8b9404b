#include "archive/frame_plan.h"

#include <gtest/gtest.h>

#include <set>

namespace wharf {
namespace {

// Four frames of 100 compressed / 1000 raw bytes; files a (frame 0), big (frames 1-2),
// c (frame 3), an empty file and a folder.
PackageIndex Sample() {
  PackageIndex index;
  for (uint64_t i = 0; i < 4; ++i) index.frames.push_back({i * 100, 100, i * 1000, 1000, ""});
  index.files = {{"opt/x", EntryType::kDirectory, 0755, 0, "", 0, "", 0},
                 {"opt/x/a", EntryType::kFile, 0644, 10, "sha-a", 0, "", 512},
                 {"opt/x/big", EntryType::kFile, 0644, 1500, "sha-big", 0, "", 1024},
                 {"opt/x/c", EntryType::kFile, 0644, 10, "sha-c", 3, "", 3000},
                 {"opt/x/empty", EntryType::kFile, 0644, 0, "sha-empty", 3, "", 3512}};
  return index;
}

}  // namespace

TEST(FramePlan, FileSpanningFramesNeedsEachOfThem) {
  EXPECT_EQ(FramesOfFiles(Sample(), {2}), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(FramesOfFiles(Sample(), {1}), (std::vector<uint32_t>{0}));
  EXPECT_EQ(FramesOfFiles(Sample(), {4}), (std::vector<uint32_t>{}));
}

TEST(FramePlan, NothingMissingFetchesNothing) {
  auto plan = PlanFetch(Sample(), [](const std::string&) { return true; }, 0);
  EXPECT_TRUE(plan.missing.empty());
  EXPECT_TRUE(plan.ranges.empty());
  EXPECT_EQ(plan.bytes, 0u);
}

TEST(FramePlan, OnlyFramesOfMissingFiles) {
  std::set<std::string> held{"sha-a", "sha-big"};
  auto plan = PlanFetch(Sample(), [&](const std::string& sha) { return held.count(sha) > 0; }, 0);
  EXPECT_EQ(plan.missing, (std::vector<size_t>{3}));
  EXPECT_EQ(plan.frames, (std::vector<uint32_t>{3}));
  EXPECT_EQ(plan.ranges, (std::vector<ByteRange>{{300, 100}}));
  EXPECT_EQ(plan.bytes, 100u);
}

TEST(FramePlan, NeighboursMergeAndSmallGapsJoin) {
  PackageIndex index = Sample();
  EXPECT_EQ(CoalesceFrames(index, {0, 1, 3}, 0), (std::vector<ByteRange>{{0, 200}, {300, 100}}));
  EXPECT_EQ(CoalesceFrames(index, {0, 1, 3}, 100), (std::vector<ByteRange>{{0, 400}}));
}

}  // namespace wharf
