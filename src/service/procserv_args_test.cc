#include "service/procserv_args.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/scratch_dir.h"

namespace wharf {
namespace {

class ProcServArgs : public ::testing::Test {
 protected:
  void SetUp() override { ::chmod(dir_.path().c_str(), 0755); }
  std::string At(const std::string& rel) const { return JoinPath(dir_.path(), rel); }
  // A spec file written as is, with `mode`.
  std::string Spec(const std::string& data, mode_t mode = 0600) {
    std::string path = At("specs/x.args");
    EXPECT_TRUE(MakeDirs(At("specs"), 0755));
    EXPECT_TRUE(WriteFileAtomic(path, data, 0600));
    ::chmod(path.c_str(), mode);
    return path;
  }
  ScratchDir dir_;
};

ProcServOptions Awkward() {
  ProcServOptions o;
  o.name = "ioc-1";
  o.argv = {"/opt/ioc/bin/st cmd", "--not-an-option", "-", "--", "a=b", "two\nlines", "", " lead", "-x"};
  o.workdir = "/opt/ioc dir/iocBoot";
  o.env = {"EPICS_CA_ADDR_LIST=10.0.0.1 10.0.0.2", "MULTI=one\ntwo", "EQ=a=b==c", "DASH=--help", "EMPTY="};
  o.user = "ioc";
  o.group = "-odd group";
  o.console_socket = "/r/run/wharf/console/ioc-1.sock";
  o.log_socket = "";
  o.socket_mode = 0640;
  o.socket_group = "wharf";
  o.log_file = "/r/var/log/ioc 1.log";
  o.log_max_bytes = 123456789012;
  o.log_keep = 0;
  o.log_timestamps = true;
  o.mode = RestartMode::kOneShot;
  o.holdoff_seconds = 0;
  o.stop_signal = 2;
  o.grace_seconds = 86400;
  o.kill_key = 0;
  o.toggle_key = 'q';
  o.restart_key = 0x01;
  o.status_file = "/r/run/wharf/status/ioc-1.json";
  o.configuration = {"ioc-db@2", "site@7"};
  return o;
}

TEST_F(ProcServArgs, RoundTripsEveryOption) {
  ProcServOptions o = Awkward();
  std::string fingerprint = "sha 1234 \n--name x=y";
  auto parsed = ParseProcServArguments(ProcServArguments(o, fingerprint));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->options, o);
  EXPECT_EQ(parsed->fingerprint, fingerprint);
  EXPECT_FALSE(parsed->help);

  ProcServOptions plain;  // the defaults, with the paths filled in
  plain.name = "svc";
  plain.argv = {"/bin/sleep", "10"};
  DefaultServicePaths(plain, At("root"));
  auto again = ParseProcServArguments(ProcServArguments(plain, ""));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->options, plain);
  EXPECT_EQ(again->fingerprint, "");
  EXPECT_FALSE(ParseProcServArguments({"--name", "s", "--configuration", "", "--", "/bin/true"}));
}

TEST_F(ProcServArgs, RoundTripsThroughASpecFile) {
  ProcServOptions o = Awkward();
  ASSERT_TRUE(WriteServiceSpec(At("root"), "ioc-1", ProcServArguments(o, "fp")));
  std::string path = ServiceSpecPath(At("root"), "ioc-1");
  EXPECT_EQ(path, At("root/run/wharf/services/ioc-1.args"));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(At("root/run/wharf/services").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto parsed = ParseProcServArguments({"--spec", path});
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->options, o);
  EXPECT_EQ(parsed->fingerprint, "fp");
  auto inline_form = ParseProcServArguments({"--spec=" + path});
  ASSERT_TRUE(inline_form) << inline_form.error().message;
  EXPECT_EQ(inline_form->options, o);
  // Written again (a new generation): replaced whole.
  o.argv = {"/bin/true"};
  ASSERT_TRUE(WriteServiceSpec(At("root"), "ioc-1", ProcServArguments(o, "fp2")));
  parsed = ParseProcServArguments({"--spec", path});
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->options.argv, std::vector<std::string>{"/bin/true"});
  EXPECT_EQ(parsed->fingerprint, "fp2");
}

TEST_F(ProcServArgs, FillsTheDefaultPathsUnderTheRoot) {
  auto parsed = ParseProcServArguments({"--root", At("r"), "--name", "a", "/bin/sleep", "--holdoff", "5"});
  ASSERT_TRUE(parsed) << parsed.error().message;
  const ProcServOptions& o = parsed->options;
  EXPECT_EQ(o.argv, (std::vector<std::string>{"/bin/sleep", "--holdoff", "5"})) << "the command begins at its first word";
  EXPECT_EQ(o.holdoff_seconds, 15);
  EXPECT_EQ(o.console_socket, At("r/run/wharf/console/a.sock"));
  EXPECT_EQ(o.log_socket, At("r/run/wharf/console/a.log.sock"));
  EXPECT_EQ(o.status_file, At("r/run/wharf/status/a.json"));
  EXPECT_EQ(o.log_file, At("r/var/log/wharf/a.log"));
  auto none = ParseProcServArguments({"--name=a", "--log-file=none", "--status", "none", "--log-socket", "none",
                                      "--stop-signal", "SIGINT", "--", "x"});
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(none->options.console_socket, "/run/wharf/console/a.sock");
  EXPECT_EQ(none->options.log_file, "");
  EXPECT_EQ(none->options.status_file, "");
  EXPECT_EQ(none->options.log_socket, "");
  EXPECT_EQ(none->options.stop_signal, 2);
  auto help = ParseProcServArguments({"--name", "a", "--help"});
  ASSERT_TRUE(help);
  EXPECT_TRUE(help->help);
}

void ExpectUsageError(const std::vector<std::string>& args, const std::string& says) {
  auto parsed = ParseProcServArguments(args);
  ASSERT_FALSE(parsed) << "accepted: " << testing::PrintToString(args);
  EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument) << parsed.error().message;
  EXPECT_NE(parsed.error().message.find(says), std::string::npos) << parsed.error().message;
  EXPECT_EQ(parsed.error().message.find('\n'), std::string::npos) << "one line: " << parsed.error().message;
}

TEST_F(ProcServArgs, RefusesBadArguments) {
  ExpectUsageError({"--name", "a", "--frobnicate", "--", "x"}, "unknown option --frobnicate");
  ExpectUsageError({"--name", "a", "--from-generation", "--", "x"}, "unknown option --from-generation");
  ExpectUsageError({"--name", "a", "-v", "--", "x"}, "unknown option -v");
  ExpectUsageError({"--name", "a", "--holdoff"}, "--holdoff: give a value");
  ExpectUsageError({"--name"}, "--name: give a value");
  ExpectUsageError({"--name", "a", "--mode", "sometimes", "--", "x"}, "--mode sometimes");
  ExpectUsageError({"--name", "a", "--stop-signal", "SIGNOPE", "--", "x"}, "--stop-signal SIGNOPE");
  ExpectUsageError({"--name", "a", "--stop-signal", "65", "--", "x"}, "--stop-signal 65");
  ExpectUsageError({"--name", "a", "--stop-signal", "0", "--", "x"}, "--stop-signal 0");
  ExpectUsageError({"--name", "a", "--kill-key", "^a", "--", "x"}, "--kill-key ^a");
  ExpectUsageError({"--name", "a", "--restart-key", "ab", "--", "x"}, "--restart-key ab");
  ExpectUsageError({"--name", "a", "--holdoff", "-1", "--", "x"}, "--holdoff -1");
  ExpectUsageError({"--name", "a", "--holdoff", "86401", "--", "x"}, "--holdoff 86401");
  ExpectUsageError({"--name", "a", "--grace", "1s", "--", "x"}, "--grace 1s");
  ExpectUsageError({"--name", "a", "--log-keep", "101", "--", "x"}, "--log-keep 101");
  ExpectUsageError({"--name", "a", "--log-max", "10M", "--", "x"}, "--log-max 10M");
  ExpectUsageError({"--name", "a", "--socket-mode", "0666", "--", "x"}, "never world-writable");
  ExpectUsageError({"--name", "a", "--socket-mode", "0999", "--", "x"}, "--socket-mode 0999");
  ExpectUsageError({"--name", "a", "--env", "NOVALUE", "--", "x"}, "--env NOVALUE");
  ExpectUsageError({"--name", "a", "--env", "=x", "--", "x"}, "--env =x");
  ExpectUsageError({"--name", "a", "--timestamps=yes", "--", "x"}, "--timestamps takes no value");
  ExpectUsageError({"--name", "a"}, "give the command after --");
  ExpectUsageError({"--name", "a", "--"}, "give the command after --");
  ExpectUsageError({"--name", "a", "--", ""}, "give the command after --");
  ExpectUsageError({"--", "x"}, "--name NAME is required");
  ExpectUsageError({"--name", "../a", "--", "x"}, "--name ../a");
  ExpectUsageError({"--name", ".a", "--", "x"}, "--name .a");
  ExpectUsageError({"--name", "", "--", "x"}, "--name ");
  ExpectUsageError({"--spec", At("x"), "--name", "a"}, "--spec FILE comes alone");
  ExpectUsageError({"--name", "a", "--spec", At("x")}, "--spec FILE comes alone");
}

TEST_F(ProcServArgs, RefusesBadSpecs) {
  std::string good = std::string("--name\0a\0--\0/bin/true\0", 22);
  ASSERT_TRUE(ParseProcServArguments({"--spec", Spec(good)})) << "the fixture itself is fine";

  auto expect = [&](const std::string& path, ErrorCode code, const std::string& says) {
    auto parsed = ParseProcServArguments({"--spec", path});
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().code, code) << parsed.error().message;
    EXPECT_NE(parsed.error().message.find(says), std::string::npos) << parsed.error().message;
  };
  expect(Spec(good, 0602), ErrorCode::kUnsafe, "writable by group or others");
  expect(Spec(good, 0620), ErrorCode::kUnsafe, "writable by group or others");
  expect(Spec(std::string(kMaxServiceSpecBytes + 1, 'a') + '\0'), ErrorCode::kCorrupt, "larger than");
  expect(Spec(good.substr(0, good.size() - 1)), ErrorCode::kCorrupt, "no NUL after it");
  expect(Spec(std::string("--spec\0/x\0", 10)), ErrorCode::kInvalidArgument, "--spec in a spec file");
  expect(Spec(std::string("--name\0a\0--bogus\0", 17)), ErrorCode::kInvalidArgument, "unknown option --bogus");
  expect(At("specs/missing.args"), ErrorCode::kNotFound, "no such file");

  Spec(good);
  ASSERT_EQ(::symlink("x.args", At("specs/link.args").c_str()), 0);
  expect(At("specs/link.args"), ErrorCode::kUnsafe, "symlink");
  ASSERT_EQ(::symlink("specs", At("speclink").c_str()), 0);
  expect(At("speclink/x.args"), ErrorCode::kUnsafe, "symlink");
  ASSERT_EQ(::chmod(At("specs").c_str(), 0777), 0);
  expect(At("specs/x.args"), ErrorCode::kUnsafe, "writable by everyone");
  ASSERT_EQ(::chmod(At("specs").c_str(), 0775), 0);
  expect(At("specs/x.args"), ErrorCode::kUnsafe, "writable by group or others");
}

TEST_F(ProcServArgs, WriteServiceSpecRefusesWhatItCannotCarry) {
  EXPECT_FALSE(WriteServiceSpec(At("root"), "../x", {"--name", "x"}));
  EXPECT_FALSE(WriteServiceSpec(At("root"), "a", {"--name", std::string("a\0b", 3)}));
  auto big = WriteServiceSpec(At("root"), "a", {std::string(kMaxServiceSpecBytes, 'a')});
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("more than"), std::string::npos) << big.error().message;
  EXPECT_FALSE(PathExists(ServiceSpecPath(At("root"), "a")));
  // A services folder that others may write to is not used.
  ASSERT_TRUE(MakeDirs(At("root/run/wharf/services"), 0755));
  ASSERT_EQ(::chmod(At("root/run/wharf/services").c_str(), 0777), 0);
  auto refused = WriteServiceSpec(At("root"), "a", {"--name", "a", "--", "x"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kUnsafe) << refused.error().message;
}

}  // namespace
}  // namespace wharf
