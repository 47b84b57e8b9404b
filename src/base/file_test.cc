#include "base/file.h"

#include <gtest/gtest.h>

#include "base/scratch_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace wharf {

class FileTest : public ::testing::Test {
 protected:
  ScratchDir scratch_;
  std::string dir_ = scratch_.path();
};

TEST_F(FileTest, AtomicWriteReplacesWholeFileAndLeavesNoTemp) {
  std::string path = JoinPath(dir_, "a.json");
  ASSERT_TRUE(WriteFileAtomic(path, "one"));
  ASSERT_TRUE(WriteFileAtomic(path, "two, longer"));
  EXPECT_EQ(*ReadFile(path), "two, longer");
  EXPECT_EQ(ListDir(dir_)->size(), 1u);
}

TEST_F(FileTest, WriteAllAtPlacesBytesAndNamesTheFileOnFailure) {
  std::string path = dir_ + "/sparse";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_TRUE(fd.valid());
  ASSERT_TRUE(WriteAllAt(fd.get(), "tail", 4, 6, path));
  ASSERT_TRUE(WriteAllAt(fd.get(), "head", 4, 0, path));
  EXPECT_EQ(*ReadFile(path), std::string("head\0\0tail", 10));
  EXPECT_EQ(::lseek(fd.get(), 0, SEEK_CUR), 0) << "the file position stays";
  UniqueFd read_only(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  auto refused = WriteAllAt(read_only.get(), "x", 1, 0, path);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find(path), std::string::npos) << refused.error().message;
}

TEST_F(FileTest, ReadFileRefusesOversize) {
  std::string path = JoinPath(dir_, "big");
  ASSERT_TRUE(WriteFileAtomic(path, std::string(100, 'x')));
  auto read = ReadFile(path, 99);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, ErrorCode::kCorrupt);
}

TEST_F(FileTest, MissingFileIsNotFound) {
  auto read = ReadFile(JoinPath(dir_, "nope"));
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, ErrorCode::kNotFound);
  EXPECT_NE(read.error().message.find("nope"), std::string::npos);
}

TEST_F(FileTest, RemoveTreeHandlesReadOnlyFolders) {
  std::string sub = JoinPath(dir_, "x/y");
  ASSERT_TRUE(MakeDirs(sub));
  ASSERT_TRUE(WriteFileAtomic(JoinPath(sub, "f"), "data", 0444));
  ASSERT_EQ(::chmod(sub.c_str(), 0555), 0);
  ASSERT_TRUE(RemoveTree(JoinPath(dir_, "x")));
  EXPECT_FALSE(PathExists(JoinPath(dir_, "x")));
}

TEST_F(FileTest, SymlinkAtomicReplacesLink) {
  std::string link = JoinPath(dir_, "current");
  ASSERT_TRUE(SymlinkAtomic("profiles/1", link));
  ASSERT_TRUE(SymlinkAtomic("profiles/2", link));
  EXPECT_EQ(*ReadLink(link), "profiles/2");
}

TEST_F(FileTest, RemovesTempsOfGoneProcessesOnly) {
  ASSERT_TRUE(MakeDirs(JoinPath(dir_, ".1.0.tmp-999999999-0/x")));      // no such process
  ASSERT_TRUE(MakeDirs(JoinPath(dir_, ".1.1.tmp-" + std::to_string(::getpid()) + "-0")));
  ASSERT_TRUE(MakeDirs(JoinPath(dir_, "1.2")));
  ASSERT_TRUE(RemoveStaleTemps(dir_));
  EXPECT_EQ(*ListDir(dir_), (std::vector<std::string>{".1.1.tmp-" + std::to_string(::getpid()) + "-0", "1.2"}));
}

TEST(Paths, RelativePathBetweenFolders) {
  EXPECT_EQ(RelativePath("/r/opt/demo", "/r/var/lib/wharf/current/demo"),
            "../../var/lib/wharf/current/demo");
  EXPECT_EQ(RelativePath("/a/b", "/a/b/c"), "c");
  EXPECT_EQ(AbsolutePath("/a/./b/../c/"), "/a/c");
}

}  // namespace wharf
