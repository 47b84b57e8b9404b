#include "fetch/fetch.h"

#include <gtest/gtest.h>

#include "base/scratch_dir.h"

#include <fcntl.h>

#include <cstdlib>

#include "base/file.h"

namespace wharf {

class FetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/hello.txt", "hello"));
  }
  ScratchDir scratch_;
  std::string dir_ = scratch_.path();
};

TEST_F(FetchTest, GetsFileUrl) {
  Fetcher fetcher;
  auto body = fetcher.Get("file://" + dir_ + "/hello.txt", 100);
  ASSERT_TRUE(body) << body.error().message;
  EXPECT_EQ(*body, "hello");
  EXPECT_EQ(fetcher.stats().bytes, 5u);
}

TEST_F(FetchTest, MissingFileIsNotFound) {
  Fetcher fetcher;
  auto body = fetcher.Get("file://" + dir_ + "/nope", 100);
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, ErrorCode::kNotFound);
}

TEST_F(FetchTest, RefusesMoreThanDeclared) {
  Fetcher fetcher;
  auto body = fetcher.Get("file://" + dir_ + "/hello.txt", 4);
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, ErrorCode::kCorrupt);
  auto file = fetcher.Download("file://" + dir_ + "/hello.txt", dir_ + "/copy", 4);
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().code, ErrorCode::kCorrupt);
}

TEST_F(FetchTest, DownloadHashesWhatItWrites) {
  Fetcher fetcher;
  auto digest = fetcher.Download("file://" + dir_ + "/hello.txt", dir_ + "/copy", 100);
  ASSERT_TRUE(digest) << digest.error().message;
  EXPECT_EQ(digest->size, 5u);
  EXPECT_EQ(digest->sha256, Sha256Hex("hello"));
  EXPECT_EQ(*ReadFile(dir_ + "/copy"), "hello");
}

TEST_F(FetchTest, RangeLandsAtItsOffset) {
  Fetcher fetcher;
  std::string sparse = dir_ + "/sparse";
  UniqueFd fd(::open(sparse.c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_TRUE(fd.valid());
  auto ok = fetcher.FetchRange("file://" + dir_ + "/hello.txt", fd.get(), sparse, 1, 3);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(*ReadFile(sparse), std::string("\0ell", 4));
}

TEST(Fetch, UnreachableServerIsUnavailable) {
  Fetcher fetcher(FetchOptions{2, 1024, 30});
  // Port 9 on loopback: nothing listens there in a test environment.
  auto body = fetcher.Get("http://127.0.0.1:9/x", 100);
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().code, ErrorCode::kUnavailable);
}

TEST(Fetch, JoinUrlUsesOneSlash) {
  EXPECT_EQ(JoinUrl("http://h:1/store/", "fecs/a"), "http://h:1/store/fecs/a");
}

}  // namespace wharf
