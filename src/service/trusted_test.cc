#include "service/trusted.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/scratch_dir.h"

namespace wharf {
namespace {

class Trusted : public ::testing::Test {
 protected:
  void SetUp() override { ::chmod(dir_.path().c_str(), 0755); }
  std::string At(const std::string& rel) const { return JoinPath(dir_.path(), rel); }
  ScratchDir dir_;
};

TEST_F(Trusted, MakesMissingFoldersAndReadsBackWhatItWrote) {
  auto dir = TrustedDir::Open(At("run/wharf/status"), true);
  ASSERT_TRUE(dir) << dir.error().message;
  ASSERT_TRUE(dir->WriteAtomic("a.json", "{}\n", 0644));
  auto text = dir->ReadFile("a.json", 100);
  ASSERT_TRUE(text) << text.error().message;
  EXPECT_EQ(*text, "{}\n");
}

TEST_F(Trusted, RefusesASymlinkedFolder) {
  ASSERT_EQ(::mkdir(At("real").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("real", At("link").c_str()), 0);
  auto dir = TrustedDir::Open(At("link/sub"), true);
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().code, ErrorCode::kUnsafe);
  EXPECT_FALSE(PathExists(At("real/sub"))) << "nothing is made through the link";
}

TEST_F(Trusted, RefusesAFolderOthersMayWrite) {
  ASSERT_EQ(::mkdir(At("open").c_str(), 0755), 0);
  ASSERT_EQ(::chmod(At("open").c_str(), 0775), 0);
  auto dir = TrustedDir::Open(At("open"), false);
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().message.find("writable by group or others"), std::string::npos) << dir.error().message;
  // Above the last folder, a sticky world-writable one (/tmp) is fine; a plain one is not.
  ASSERT_EQ(::chmod(At("open").c_str(), 01777), 0);
  EXPECT_TRUE(TrustedDir::Open(At("open/inner"), true));
  ASSERT_EQ(::chmod(At("open").c_str(), 0777), 0);
  EXPECT_FALSE(TrustedDir::Open(At("open/inner"), false));
}

TEST_F(Trusted, RefusesALinkedOrHardLinkedFile) {
  auto dir = TrustedDir::Open(dir_.path(), false);
  ASSERT_TRUE(dir);
  ASSERT_TRUE(dir->WriteAtomic("secret", "s3cret\n", 0600));
  ASSERT_EQ(::symlink("secret", At("soft.log").c_str()), 0);
  ASSERT_EQ(::link(At("secret").c_str(), At("hard.log").c_str()), 0);
  for (const char* name : {"soft.log", "hard.log"}) {
    auto read = dir->ReadFile(name, 100);
    ASSERT_FALSE(read) << name;
    EXPECT_EQ(read.error().code, ErrorCode::kUnsafe) << read.error().message;
    auto append = dir->OpenAppend(name, 0640);
    EXPECT_FALSE(append) << name;
  }
  EXPECT_FALSE(dir->ReadFile("../secret", 100)) << "one component only";
}

TEST_F(Trusted, RefusesAFileOthersMayWrite) {
  auto dir = TrustedDir::Open(dir_.path(), false);
  ASSERT_TRUE(dir);
  ASSERT_TRUE(dir->WriteAtomic("status.json", "{}", 0666));
  ASSERT_EQ(::chmod(At("status.json").c_str(), 0666), 0);
  EXPECT_FALSE(dir->ReadFile("status.json", 100));
}

TEST_F(Trusted, ConnectsToItsOwnSocketButNotThroughALink) {
  auto dir = TrustedDir::Open(At("console"), true);
  ASSERT_TRUE(dir);
  auto listener = dir->Listen("a.sock", 0660, static_cast<gid_t>(-1));
  ASSERT_TRUE(listener) << listener.error().message;
  struct stat st {};
  ASSERT_EQ(::lstat(At("console/a.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u) << "made with its mode, never wider";
  EXPECT_TRUE(dir->Connect("a.sock"));
  ASSERT_EQ(::symlink("a.sock", At("console/b.sock").c_str()), 0);
  auto linked = dir->Connect("b.sock");
  ASSERT_FALSE(linked);
  EXPECT_EQ(linked.error().code, ErrorCode::kUnsafe);
  EXPECT_TRUE(dir->Listen("c.sock", 0666, static_cast<gid_t>(-1)));
  ASSERT_EQ(::lstat(At("console/c.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0007, 0u) << "never world-writable";
}

TEST(ProcessStart, NamesOneProcess) {
  auto self = ProcessStartTicks(::getpid());
  ASSERT_TRUE(self) << self.error().message;
  EXPECT_GT(*self, 0u);
  EXPECT_EQ(ProcessStartTicks(::getpid()).value_or(0), *self);
}

TEST(SignalProcess, OnlyTheProcessThatStartedThen) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::alarm(10);  // never outlives a failed test by long
    ::pause();
    _exit(0);
  }
  auto start = ProcessStartTicks(child);
  ASSERT_TRUE(start);
  auto wrong = SignalProcess(child, *start + 1, SIGTERM, "child");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ErrorCode::kUnsafe);
  EXPECT_EQ(::kill(child, 0), 0) << "a PID with another start time is not signalled";
  EXPECT_FALSE(SignalProcess(1, 1, 0, "init"));
  ASSERT_TRUE(SignalProcess(child, *start, SIGTERM, "child"));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
}

}  // namespace
}  // namespace wharf
