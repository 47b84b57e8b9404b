// The agent updating itself: the timing rules with a fake clock, the verification of a
// delivered agent against its real package index (packed by PackTree), and RunLauncher
// with real processes: small shell scripts stand in for agents, installed in a FEC layout
// as real wharf-agent packages of an active generation, so that the real verification
// runs before every start.
#include "agent/launcher.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "archive/pack.h"
#include "base/clock.h"
#include "base/scratch_dir.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

// ---- Timing, pure ---------------------------------------------------------------------

TEST(LauncherTiming, BackoffDoublesFromOneSecondUpToAMinute) {
  LauncherTiming timing;
  EXPECT_EQ(CrashBackoffMs(timing, 1), 1000);
  EXPECT_EQ(CrashBackoffMs(timing, 2), 2000);
  EXPECT_EQ(CrashBackoffMs(timing, 3), 4000);
  EXPECT_EQ(CrashBackoffMs(timing, 6), 32000);
  EXPECT_EQ(CrashBackoffMs(timing, 7), 60000);  // 64 s, capped
  EXPECT_EQ(CrashBackoffMs(timing, 1000), 60000);  // no overflow however many
  EXPECT_EQ(CrashBackoffMs(timing, 0), 1000);
}

TEST(LauncherTiming, FiveCrashesWithinTenMinutesIsALoop) {
  LauncherTiming timing;
  FakeClock clock(0);  // milliseconds here
  std::vector<int64_t> crashes;
  for (int i = 0; i < 4; ++i) {
    clock.Set(i * 60'000);
    crashes.push_back(clock.Now());
    EXPECT_FALSE(CrashLooping(timing, crashes, clock.Now())) << i;
  }
  clock.Set(9 * 60'000 + 59'999);  // the fifth, just inside the window of the first
  crashes.push_back(clock.Now());
  EXPECT_TRUE(CrashLooping(timing, crashes, clock.Now()));
  crashes.pop_back();
  clock.Set(10 * 60'000);  // the fifth as the first leaves the window: four in it
  crashes.push_back(clock.Now());
  EXPECT_FALSE(CrashLooping(timing, crashes, clock.Now()));
  EXPECT_EQ(crashes.size(), 4u);
  EXPECT_EQ(crashes.front(), 60'000);
}

TEST(LauncherTiming, HealthDeadline) {
  LauncherTiming timing;
  EXPECT_EQ(timing.health_deadline_ms, 120'000);
  EXPECT_EQ(HealthLeftMs(timing, 5'000, 5'000), 120'000);
  EXPECT_EQ(HealthLeftMs(timing, 5'000, 124'999), 1);
  EXPECT_EQ(HealthLeftMs(timing, 5'000, 125'000), 0);
  EXPECT_EQ(HealthLeftMs(timing, 5'000, 900'000), 0);
}

TEST(LauncherTiming, DescribeEnd) {
  EXPECT_EQ(DescribeEnd(true, 1, 400), "exited with status 1 0.4 s after its start");
  EXPECT_EQ(DescribeEnd(false, SIGSEGV, 3000), "was killed by signal 11 (SIGSEGV) 3.0 s after its start");
}

TEST(Launcher, SignalHealthyWritesOkOnceAndCloses) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::setenv(kHealthFdEnv, std::to_string(fds[1]).c_str(), 1), 0);
  HoldHealthFd();
  EXPECT_EQ(::fcntl(fds[1], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  SignalHealthy();
  SignalHealthy();  // no second message, no second close
  ::unsetenv(kHealthFdEnv);
  char buffer[8];
  EXPECT_EQ(::read(fds[0], buffer, sizeof buffer), 3);
  EXPECT_EQ(std::string(buffer, 3), "ok\n");
  EXPECT_EQ(::read(fds[0], buffer, sizeof buffer), 0);  // closed: end of file
  EXPECT_EQ(::fcntl(fds[1], F_GETFD), -1);
  ::close(fds[0]);
}

// ---- A FEC with wharf-agent packages ----------------------------------------------------

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int CountLines(const std::string& path, const std::string& word) {
  std::istringstream in(Slurp(path));
  int n = 0;
  for (std::string line; std::getline(in, line);)
    if (line.find(word) != std::string::npos) ++n;
  return n;
}

bool WaitFor(const std::function<bool()>& done, int ms = 10'000) {
  for (auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
       std::chrono::steady_clock::now() < end;) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

class LauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.root = dir_ / "fec";
    options_.boot_binary = Script("boot", Healthy("boot"));
    options_.timing.health_deadline_ms = 3'000;
    options_.timing.backoff_first_ms = 100;
    options_.timing.backoff_max_ms = 400;
    options_.timing.crash_loop_count = 3;
    options_.timing.crash_loop_window_ms = 10'000;
    options_.timing.stop_grace_ms = 1'000;
    options_.log = [this](const std::string& line) {
      std::lock_guard lock(log_mutex_);
      log_ += line + "\n";
    };
  }

  // Whatever a failed case left running (each healthy script records its pid).
  void TearDown() override {
    auto names = ListDir(dir_.path());
    for (const auto& name : names.value_or(std::vector<std::string>{}))
      if (name.starts_with("pid-"))
        if (auto pid = std::atoi(Slurp(dir_ / name).c_str());
            pid > 0 && !WaitFor([&] { return ::kill(pid, 0) != 0; }, 2'000)) {
          ADD_FAILURE() << name << " still runs";
          ::kill(pid, SIGKILL);
        }
  }

  std::string Log() const { return dir_ / "log"; }

  // The script's body after its start is recorded in `log` as "<name> <args> sha=<sha>".
  std::string Script(const std::string& name, const std::string& body) {
    std::string path = dir_ / ("scripts/" + name);
    WriteTestFile(path, Program(name, body), 0755);
    return path;
  }
  std::string Program(const std::string& name, const std::string& body) {
    return "#!/bin/sh\necho \"" + name + " $* sha=$WHARF_AGENT_SHA256 fd=$WHARF_AGENT_HEALTH_FD\" >> " + Log() +
           "\nD=" + dir_.path() + "\n" + body + "\n";
  }
  // Healthy, then exits 0 when $D/stop-<name> exists, 75 (once) when $D/switch exists.
  static std::string Healthy(const std::string& name) {
    // The trap is set before the sign of health: a stop may come right after it.
    return "echo $$ > $D/pid-" + name + "\ntrap 'echo term-" + name + " >> $D/log; exit 0' TERM\necho ok >&3; exec 3>&-\n"
           "while :; do\n"
           "  if [ -e $D/switch ]; then rm -f $D/switch; exit 75; fi\n"
           "  if [ -e $D/stop-" + name + " ]; then exit 0; fi\n"
           "  sleep 0.02\ndone";
  }

  // Installs `program` as wharf-agent VERSION the way the agent would: packed (the real
  // package.json), its tree in the package's folder and the index beside it.
  PackageRef InstallAgent(const std::string& version, const std::string& program, bool procserv = false) {
    std::string tree = dir_ / ("trees/" + version);
    WriteTestFile(tree + "/bin/wharf-agent", program, 0755);
    if (procserv) WriteTestFile(tree + "/bin/wharf-procserv", "#!/bin/sh\n", 0755);
    PackOptions pack;
    pack.name = "wharf-agent";
    pack.version = version;
    pack.prefix = "/opt/wharf-agent";
    pack.out_dir = dir_ / ("packed/" + version);
    (void)MakeDirs(pack.out_dir);
    auto packed = PackTree(tree, pack);
    EXPECT_TRUE(packed) << packed.error().message;
    std::string json = *ReadFile(packed->index_path);
    PackageRef ref;
    ref.name = "wharf-agent";
    ref.version = version;
    ref.prefix = pack.prefix;
    ref.archive = "software/wharf-agent/" + version + "/wharf-agent-" + version + ".tar.zst";
    ref.archive_size = packed->index.archive_size;
    ref.archive_sha256 = packed->index.archive_sha256;
    ref.index = "software/wharf-agent/" + version + "/package.json";
    ref.index_size = json.size();
    ref.index_sha256 = Sha256Hex(json);
    Layout layout(options_.root);
    WriteTestFile(layout.package(ref) + "/bin/wharf-agent", program, 0755);
    if (procserv) WriteTestFile(layout.package(ref) + "/bin/wharf-procserv", "#!/bin/sh\n", 0755);
    WriteTestFile(layout.package_index(ref), json, 0444);
    return ref;
  }

  // Makes generation `number` with `packages` the active one.
  Generation Activate(uint64_t number, std::vector<PackageRef> packages) {
    Generation g;
    g.fec = "fec01";
    g.number = number;
    g.created = 1795482123;
    g.expires = g.created + 86400;
    g.packages = std::move(packages);
    Layout layout(options_.root);
    WriteTestFile(layout.profile(number) + "/.generation.json", GenerationToJson(g));
    EXPECT_TRUE(SymlinkAtomic("profiles/" + std::to_string(number), layout.current()));
    return g;
  }

  int Launch() {
    std::string root = "--root=" + options_.root;
    const char* argv[] = {"wharf-agent", "run", root.c_str(), "--interval", "5"};
    return RunLauncher(options_, 5, const_cast<char**>(argv));
  }

  // Runs the launcher while `during` acts in another thread (joined before returning).
  int LaunchWhile(const std::function<void()>& during) {
    std::thread helper(during);
    int code = Launch();
    helper.join();
    return code;
  }

  bool Touch(const std::string& rel) {
    WriteTestFile(dir_ / rel, "");
    return true;
  }

  std::string Sha(const std::string& path) { return Sha256File(path)->sha256; }

  ScratchDir dir_;
  LauncherOptions options_;
  // What the launcher said; Said() from another thread while it runs.
  std::string Said() {
    std::lock_guard lock(log_mutex_);
    return log_;
  }
  std::mutex log_mutex_;
  std::string log_;
};

TEST_F(LauncherTest, FindsAndVerifiesTheDeliveredAgent) {
  Layout layout(options_.root);
  PackageRef ref = InstallAgent("2.0", Program("v2", ""), /*procserv=*/true);
  PackageRef other = ref;
  other.name = "demo";
  other.prefix = "/opt/demo";
  other.archive = "software/demo/2.0/demo-2.0.tar.zst";
  other.index = "software/demo/2.0/package.json";
  Generation none = Activate(1, {other});
  auto nothing = FindDeliveredAgent(layout, none);
  ASSERT_TRUE(nothing) << nothing.error().message;
  EXPECT_FALSE(*nothing);
  EXPECT_EQ(*NamedAgentSha256(layout, none), "");

  Generation g = Activate(2, {other, ref});
  auto found = FindDeliveredAgent(layout, g);
  ASSERT_TRUE(found) << found.error().message;
  ASSERT_TRUE(*found);
  EXPECT_EQ((*found)->version, "2.0");
  EXPECT_EQ((*found)->path, layout.package(ref) + "/bin/wharf-agent");  // the content, not the prefix link
  EXPECT_EQ((*found)->sha256, Sha((*found)->path));
  EXPECT_EQ((*found)->procserv, layout.package(ref) + "/bin/wharf-procserv");
  EXPECT_EQ((*found)->entry, "opt/wharf-agent/bin/wharf-agent");
  EXPECT_EQ(*NamedAgentSha256(layout, g), (*found)->sha256);
  EXPECT_TRUE(VerifyDeliveredAgent(**found));

  // The binary altered after the install: refused, by file, package and what to do.
  std::string binary = (*found)->path;
  ::chmod(binary.c_str(), 0755);
  WriteTestFile(binary, Program("v2", "echo evil"), 0755);
  auto altered = FindDeliveredAgent(layout, g);
  ASSERT_FALSE(altered);
  EXPECT_EQ(altered.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(altered.error().message.find("generation 2: agent wharf-agent@2.0: " + binary +
                                         " differs from its signed package index"), std::string::npos)
      << altered.error().message;
  EXPECT_NE(altered.error().message.find("so that a sync installs it again"), std::string::npos);
  auto again = VerifyDeliveredAgent(**found);
  EXPECT_FALSE(again);

  // The bundled wharf-procserv is checked as well.
  WriteTestFile(binary, Program("v2", ""), 0755);
  ASSERT_TRUE(FindDeliveredAgent(layout, g));
  WriteTestFile(layout.package(ref) + "/bin/wharf-procserv", "#!/bin/sh\nexit 1\n", 0755);
  EXPECT_FALSE(FindDeliveredAgent(layout, g));
  WriteTestFile(layout.package(ref) + "/bin/wharf-procserv", "#!/bin/sh\n", 0755);
  ASSERT_TRUE(FindDeliveredAgent(layout, g));

  // The index altered: its bytes no longer what the signed generation pins.
  std::string index = layout.package_index(ref);
  ::chmod(index.c_str(), 0644);
  std::string json = *ReadFile(index);
  WriteTestFile(index, json + " ", 0444);
  auto bad_index = FindDeliveredAgent(layout, g);
  ASSERT_FALSE(bad_index);
  EXPECT_NE(bad_index.error().message.find("differs from the package index the signed generation pins"),
            std::string::npos) << bad_index.error().message;
}

TEST_F(LauncherTest, APackageWithoutAnExecutableAgentIsRefused) {
  Layout layout(options_.root);
  std::string tree = dir_ / "trees/x";
  WriteTestFile(tree + "/bin/wharf-agent", "not executable", 0644);
  PackOptions pack;
  pack.name = "wharf-agent";
  pack.version = "9.0";
  pack.prefix = "/opt/wharf-agent";
  pack.out_dir = dir_ / "packed/x";
  (void)MakeDirs(pack.out_dir);
  auto packed = PackTree(tree, pack);
  ASSERT_TRUE(packed);
  std::string json = *ReadFile(packed->index_path);
  PackageRef ref{"wharf-agent", "9.0", pack.prefix, "software/wharf-agent/9.0/wharf-agent-9.0.tar.zst",
                 packed->index.archive_size, packed->index.archive_sha256, "software/wharf-agent/9.0/package.json",
                 json.size(), Sha256Hex(json)};
  WriteTestFile(layout.package(ref) + "/bin/wharf-agent", "not executable", 0644);
  WriteTestFile(layout.package_index(ref), json, 0444);
  auto found = FindDeliveredAgent(layout, Activate(1, {ref}));
  ASSERT_FALSE(found);
  EXPECT_NE(found.error().message.find("bin/wharf-agent is not an executable file in the package"),
            std::string::npos) << found.error().message;
}

// ---- RunLauncher with real processes ----------------------------------------------------

TEST_F(LauncherTest, WithoutADeliveredAgentRunsTheBootBinary) {
  options_.boot_binary = Script("boot", "echo ok >&3; echo \"watchdog=$WATCHDOG_PID\" >> $D/log; exit 0");
  ASSERT_EQ(::setenv("WATCHDOG_PID", "1", 1), 0);
  EXPECT_EQ(Launch(), 0) << log_;
  ::unsetenv("WATCHDOG_PID");
  EXPECT_EQ(Slurp(Log()), "boot run --delegate --root=" + options_.root + " --interval 5 sha=" +
                              Sha(options_.boot_binary) + " fd=3\nwatchdog=\n");
  LauncherState state = ReadLauncherState(Layout(options_.root));
  ASSERT_TRUE(state.current);
  EXPECT_TRUE(state.current->boot);
  EXPECT_TRUE(state.good.empty());
  EXPECT_EQ(LauncherReport(Layout(options_.root)), "");
}

// Acceptance 4, the launcher's part: v2 delivered and healthy; a broken v3 (exits 1 at its
// start) delivered: refused, v2 again, and the report says why.
TEST_F(LauncherTest, ABrokenAgentIsRefusedAndThePreviousGoodOneRuns) {
  Layout layout(options_.root);
  PackageRef v2 = InstallAgent("2.0", Program("v2", Healthy("v2")));
  PackageRef v3 = InstallAgent("3.0", Program("v3", "exit 1"));
  Activate(1, {v2});
  std::string v2_path = layout.package(v2) + "/bin/wharf-agent";
  int code = LaunchWhile([&] {
    // v2 healthy: a generation naming v3 is applied, and the delegate asks to choose again.
    ASSERT_TRUE(WaitFor([&] { return !ReadLauncherState(layout).good.empty(); })) << Said();
    Activate(2, {v3});
    Touch("switch");
    // v3 refused, v2 healthy again: stop.
    ASSERT_TRUE(WaitFor([&] { return CountLines(Log(), "v2 run") == 2 && !ReadLauncherState(layout).refused.empty() &&
                                     ReadLauncherState(layout).good.size() == 1; })) << Said();
    ASSERT_TRUE(WaitFor([&] {
      std::string said = Said();
      return said.find("wharf-agent 2.0 is healthy", said.find("refusing")) != std::string::npos;
    })) << Said();
    Touch("stop-v2");
  });
  EXPECT_EQ(code, 0) << log_;
  EXPECT_EQ(CountLines(Log(), "v3 run --delegate"), 1);
  EXPECT_EQ(CountLines(Log(), "v2 run --delegate"), 2);
  EXPECT_EQ(CountLines(Log(), "boot"), 0);
  EXPECT_NE(Slurp(Log()).find("v2 run --delegate --root=" + options_.root + " --interval 5 sha=" + Sha(v2_path)),
            std::string::npos);
  LauncherState state = ReadLauncherState(layout);
  ASSERT_EQ(state.refused.size(), 1u);
  EXPECT_EQ(state.refused[0].version, "3.0");
  EXPECT_EQ(state.refused[0].sha256, Sha(layout.package(v3) + "/bin/wharf-agent"));
  EXPECT_TRUE(state.refused[0].why.starts_with("exited with status 1 ")) << state.refused[0].why;
  EXPECT_TRUE(state.refused[0].why.ends_with(" s after its start")) << state.refused[0].why;
  EXPECT_GT(state.refused[0].time, 1795482123);
  ASSERT_TRUE(state.current);
  EXPECT_EQ(state.current->version, "2.0");
  std::string report = LauncherReport(layout);
  EXPECT_TRUE(report.starts_with("agent wharf-agent@3.0 refused: exited with status 1 ")) << report;
  EXPECT_TRUE(report.ends_with(" s after its start; running wharf-agent@2.0")) << report;

  // What the delegate (v2) decides after applying a generation: not to switch to the
  // refused v3, to switch to a v4.
  ASSERT_EQ(::setenv(kAgentSha256Env, Sha(v2_path).c_str(), 1), 0);
  EXPECT_FALSE(*ShouldSwitchAgent(layout, Activate(2, {v3})));
  EXPECT_FALSE(*ShouldSwitchAgent(layout, Activate(2, {v2})));
  PackageRef v4 = InstallAgent("4.0", Program("v4", "echo ok >&3; exit 0"));
  EXPECT_TRUE(*ShouldSwitchAgent(layout, Activate(2, {v4})));
  ::unsetenv(kAgentSha256Env);
  Activate(2, {v3});

  // A new launcher (a reboot): v3 is not tried again while the generation names it.
  log_.clear();
  Touch("stop-v2");
  EXPECT_EQ(Launch(), 0) << log_;
  EXPECT_EQ(CountLines(Log(), "v3 run --delegate"), 1);
  EXPECT_EQ(CountLines(Log(), "v2 run --delegate"), 3);
  EXPECT_NE(log_.find("wharf-agent 3.0 was refused; not trying it again"), std::string::npos) << log_;

  // A generation naming another agent lifts the refusal: v4 is tried.
  Activate(3, {v4});
  EXPECT_EQ(Launch(), 0) << log_;
  EXPECT_EQ(CountLines(Log(), "v4 run --delegate"), 1);
  EXPECT_EQ(LauncherReport(layout), "");
  EXPECT_TRUE(ReadLauncherState(layout).refused.empty());
}

TEST_F(LauncherTest, ADelegateKilledOnTrialIsRefused) {
  Layout layout(options_.root);
  options_.boot_binary = Script("boot", "echo ok >&3; exit 0");
  PackageRef v3 = InstallAgent("3.0", Program("v3", "kill -SEGV $$"));
  Activate(1, {v3});
  EXPECT_EQ(Launch(), 0) << log_;
  EXPECT_EQ(CountLines(Log(), "boot run"), 1);
  auto state = ReadLauncherState(layout);
  ASSERT_EQ(state.refused.size(), 1u);
  EXPECT_TRUE(state.refused[0].why.starts_with("was killed by signal 11 (SIGSEGV) ")) << state.refused[0].why;
}

TEST_F(LauncherTest, NoSignOfHealthWithinTheDeadlineIsRefused) {
  Layout layout(options_.root);
  options_.timing.health_deadline_ms = 1'000;
  options_.boot_binary = Script("boot", "echo ok >&3; exit 0");
  PackageRef v3 = InstallAgent("3.0", Program("v3", "trap 'exit 0' TERM; while :; do sleep 0.02; done"));
  Activate(1, {v3});
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Launch(), 0) << log_;
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, std::chrono::milliseconds(1'000));
  EXPECT_EQ(CountLines(Log(), "v3 run"), 1);
  EXPECT_EQ(CountLines(Log(), "boot run"), 1);  // no good delivered agent: the boot binary
  LauncherState state = ReadLauncherState(layout);
  ASSERT_EQ(state.refused.size(), 1u);
  EXPECT_EQ(state.refused[0].why, "sent no sign of health within 1 s");
  EXPECT_EQ(LauncherReport(layout), "agent wharf-agent@3.0 refused: sent no sign of health within 1 s; running "
                                    "the boot binary " + options_.boot_binary);
}

// The boot binary is not on trial: a server that is away (no heartbeat delivered, so no
// sign of health) must not make the agent start over at every deadline.
TEST_F(LauncherTest, TheBootBinaryIsNotStoppedForALateSignOfHealth) {
  options_.timing.health_deadline_ms = 300;
  options_.boot_binary = Script("boot", "trap 'echo term-boot >> $D/log; exit 0' TERM\n"
                                        "while :; do sleep 0.02; done");
  int code = LaunchWhile([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1'200));  // four deadlines
    ::kill(::getpid(), SIGTERM);
  });
  EXPECT_EQ(code, 0) << log_;
  EXPECT_EQ(CountLines(Log(), "boot run"), 1) << log_;  // started once, never stopped for it
  EXPECT_EQ(log_.find("sign of health"), std::string::npos) << log_;
  EXPECT_EQ(CountLines(Log(), "term-boot"), 1);
}

TEST_F(LauncherTest, AStubbornDelegateIsKilledAfterTheGrace) {
  Layout layout(options_.root);
  options_.timing.health_deadline_ms = 500;
  options_.timing.stop_grace_ms = 300;
  options_.boot_binary = Script("boot", "echo ok >&3; exit 0");
  PackageRef v3 = InstallAgent("3.0", Program("v3", "trap '' TERM; while :; do sleep 0.02; done"));
  Activate(1, {v3});
  EXPECT_EQ(Launch(), 0) << log_;
  EXPECT_EQ(CountLines(Log(), "boot run"), 1);
  EXPECT_EQ(ReadLauncherState(layout).refused.at(0).why, "sent no sign of health within 0.5 s");
}

// Healthy, then crashes: started again after 0.1, 0.2 s; the third crash within the window
// is a crash loop: refused, and the previous good one (here the boot binary) runs.
TEST_F(LauncherTest, ACrashLoopAfterHealthIsRefusedAfterBackoffs) {
  Layout layout(options_.root);
  options_.boot_binary = Script("boot", "echo ok >&3; exit 0");
  PackageRef v3 = InstallAgent("3.0", Program("v3", "echo ok >&3; sleep 0.05; exit 2"));
  Activate(1, {v3});
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Launch(), 0) << log_;
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, std::chrono::milliseconds(100 + 200));  // the back-offs were kept
  EXPECT_EQ(CountLines(Log(), "v3 run"), 3);
  EXPECT_EQ(CountLines(Log(), "boot run"), 1);
  EXPECT_NE(log_.find("starting it again in 0.1 s"), std::string::npos) << log_;
  EXPECT_NE(log_.find("starting it again in 0.2 s"), std::string::npos) << log_;
  LauncherState state = ReadLauncherState(layout);
  ASSERT_EQ(state.refused.size(), 1u);
  EXPECT_TRUE(state.refused[0].why.starts_with("crashed 3 times within 10 s (last: exited with status 2 "))
      << state.refused[0].why;
  EXPECT_TRUE(state.good.empty());  // healthy once, but not good any more
}

// The boot binary is never refused: retried with the back-off (capped) however often it
// crashes.
TEST_F(LauncherTest, TheBootBinaryIsRetriedForever) {
  Layout layout(options_.root);
  options_.timing.backoff_max_ms = 200;
  // Crashes (before or after health) five times, then stays healthy and exits 0.
  options_.boot_binary = Script("boot", "n=$(grep -c '^boot' $D/log)\n"
                                        "if [ $n -le 2 ]; then exit 1; fi\n"
                                        "echo ok >&3; if [ $n -le 5 ]; then exit 3; fi\nexit 0");
  EXPECT_EQ(Launch(), 0) << log_;
  EXPECT_EQ(CountLines(Log(), "boot run"), 6);
  EXPECT_TRUE(ReadLauncherState(layout).refused.empty());
  EXPECT_NE(log_.find("starting it again in 0.2 s"), std::string::npos) << log_;
}

// A delivered binary that no longer matches its signed index is never started: the
// previous good one runs, and the report says why.
TEST_F(LauncherTest, AnAlteredDeliveredBinaryIsNotRun) {
  Layout layout(options_.root);
  PackageRef v2 = InstallAgent("2.0", Program("v2", Healthy("v2")));
  PackageRef v3 = InstallAgent("3.0", Program("v3", Healthy("v3")));
  Activate(1, {v2});
  Touch("stop-v2");
  EXPECT_EQ(Launch(), 0) << log_;
  ASSERT_EQ(ReadLauncherState(layout).good.size(), 1u);
  Activate(2, {v3});
  std::string v3_path = layout.package(v3) + "/bin/wharf-agent";
  WriteTestFile(v3_path, Program("v3-evil", "echo ok >&3; exit 0"), 0755);
  EXPECT_EQ(Launch(), 0) << log_;
  EXPECT_EQ(CountLines(Log(), "v3"), 0);
  EXPECT_EQ(CountLines(Log(), "v2 run"), 2);
  std::string report = LauncherReport(layout);
  EXPECT_TRUE(report.starts_with("generation 2: agent wharf-agent@3.0: " + v3_path +
                                 " differs from its signed package index")) << report;
  EXPECT_TRUE(report.ends_with("; running wharf-agent@2.0")) << report;

  // The last good one altered too: the boot binary.
  std::string v2_path = layout.package(v2) + "/bin/wharf-agent";
  WriteTestFile(v2_path, Program("v2-evil", "echo ok >&3; exit 0"), 0755);
  Touch("stop-boot");
  EXPECT_EQ(Launch(), 0) << log_;
  EXPECT_EQ(CountLines(Log(), "evil"), 0);
  EXPECT_EQ(CountLines(Log(), "boot run"), 1);
  EXPECT_TRUE(ReadLauncherState(layout).good.empty());
}

// A binary that crashed is verified again before it starts again: altered in between, it
// is not run (the boot binary is).
TEST_F(LauncherTest, ACrashedAgentIsVerifiedAgainBeforeItsRestart) {
  Layout layout(options_.root);
  options_.boot_binary = Script("boot", "echo ok >&3; exit 0");
  // Healthy, then replaces its own file (a new inode: the running shell keeps the old) and crashes.
  PackageRef v3 = InstallAgent("3.0", Program("v3", "echo ok >&3; sleep 0.05\n"
                                                    "printf '#!/bin/sh\\necho evil >> $D/log\\n' > $D/evil\n"
                                                    "chmod 755 $D/evil; mv -f $D/evil $0; exit 2"));
  Activate(1, {v3});
  EXPECT_EQ(Launch(), 0) << log_;
  EXPECT_EQ(CountLines(Log(), "v3 run"), 1);
  EXPECT_EQ(CountLines(Log(), "evil"), 0);
  EXPECT_EQ(CountLines(Log(), "boot run"), 1);
  EXPECT_NE(log_.find("differs from its signed package index"), std::string::npos) << log_;
  EXPECT_NE(LauncherReport(layout).find("differs from its signed package index"), std::string::npos);
}

// A launcher killed outright takes its delegate with it (PR_SET_PDEATHSIG): no agent runs
// unwatched. (Services are not the delegate's children: they stay.)
TEST_F(LauncherTest, ADelegateDoesNotOutliveItsLauncher) {
  pid_t launcher = ::fork();
  ASSERT_GE(launcher, 0);
  if (launcher == 0) _exit(Launch());
  ASSERT_TRUE(WaitFor([&] { return CountLines(Log(), "boot run") == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // its trap is set
  ::kill(launcher, SIGKILL);
  int status = 0;
  ::waitpid(launcher, &status, 0);
  EXPECT_TRUE(WaitFor([&] { return CountLines(Log(), "term-boot") == 1; }, 5'000)) << Slurp(Log());
}

// SIGTERM to the launcher reaches the delegate, whose end is awaited.
TEST_F(LauncherTest, StopSignalsAreForwarded) {
  Layout layout(options_.root);
  int code = LaunchWhile([&] {
    ASSERT_TRUE(WaitFor([&] { return Said().find("is healthy") != std::string::npos; }));
    ::kill(::getpid(), SIGTERM);
  });
  EXPECT_EQ(code, 0) << log_;
  EXPECT_EQ(CountLines(Log(), "term-boot"), 1);
  // The handlers are the test's again.
  struct sigaction now{};
  ::sigaction(SIGTERM, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
}

// The test seam: a delivered agent that is a plain script, verified by its hash.
TEST_F(LauncherTest, TheVerificationSeam) {
  std::string v5 = Script("v5", "echo ok >&3; exit 0");
  DeliveredAgent agent;
  agent.version = "5.0";
  agent.path = v5;
  agent.sha256 = Sha(v5);
  options_.find_delivered = [&]() -> Result<std::optional<DeliveredAgent>> { return agent; };
  int verified = 0;
  options_.verify = [&](const DeliveredAgent& a) -> Status {
    ++verified;
    if (Sha(a.path) != a.sha256) return Fail(ErrorCode::kCorrupt, a.path + " altered");
    return {};
  };
  EXPECT_EQ(Launch(), 0) << log_;
  EXPECT_EQ(CountLines(Log(), "v5 run"), 1);
  EXPECT_EQ(ReadLauncherState(Layout(options_.root)).good.size(), 1u);
}

}  // namespace
}  // namespace wharf
