// The agent updating itself (docs/agent.md, "Updating the agent"). `wharf-agent run` is a
// small launcher: it picks the agent binary to run (the one the active generation delivers,
// when verified and not refused; else the last one that came up healthy; else the binary
// the FEC booted with), runs it as a child `BINARY run --delegate ARGS...`, and watches it:
// a delegate on trial that exits, is killed or sends no sign of health within the deadline
// is refused (by sha256) and the previous good one started; a healthy delegate that crashes
// is started again after a back-off, and refused after a crash loop (never the boot binary).
//
//   ROOT/var/lib/wharf/agent.json   the choice, the good agents, the refused ones (atomic)
//
// A delegate says it is healthy by SignalHealthy(); it exits kAgentExitNewAgent after
// applying a generation that names another agent, and the launcher chooses again.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/layout.h"
#include "base/error.h"
#include "generation/generation.h"

namespace wharf {

/// The package name that delivers an agent, and the files it carries (under its prefix).
inline constexpr const char* kAgentPackage = "wharf-agent";
inline constexpr const char* kAgentBinary = "bin/wharf-agent";
inline constexpr const char* kProcservBinary = "bin/wharf-procserv";
/// A delegate's exit status that asks the launcher to choose the agent again.
inline constexpr int kAgentExitNewAgent = 75;
/// The environment of a delegate: the descriptor to write "ok\n" to once healthy (always 3),
/// and the sha256 of the binary it runs.
inline constexpr const char* kHealthFdEnv = "WHARF_AGENT_HEALTH_FD";
inline constexpr const char* kAgentSha256Env = "WHARF_AGENT_SHA256";

/// An agent binary that a generation delivers, as verified against its signed package index.
struct DeliveredAgent {
  std::string version;       // the package's
  std::string path;          // the binary in the package's content folder (not the prefix link)
  std::string sha256;        // of the binary, as the index records it (and the file hashed)
  uint64_t size = 0;
  std::string procserv;      // bin/wharf-procserv beside it (verified too), "" when absent
  // What re-verification needs: the index that the signed generation pins, and the entries.
  std::string index;         // layout.package_index(ref)
  uint64_t index_size = 0;
  std::string index_sha256;
  std::string entry;         // the binary's path in the index: "<prefix less '/'>/bin/wharf-agent"

  bool operator==(const DeliveredAgent&) const = default;
};

/// The `wharf-agent` package of `generation`, verified now: its package.json against the
/// size and sha256 the generation pins, the binary's entry (a file, executable) and the
/// binary itself re-hashed. Nothing when the generation carries no such package; an error
/// (naming file, package and what to do) when anything differs.
Result<std::optional<DeliveredAgent>> FindDeliveredAgent(const Layout& layout, const Generation& generation);
/// Verifies `agent` again as FindDeliveredAgent did (before every start of it).
Status VerifyDeliveredAgent(const DeliveredAgent& agent);

/// The agent whose (sha256 of the) binary a generation names: what a delegate compares to
/// WHARF_AGENT_SHA256 after applying it. "" when the generation carries no agent.
/// Reads the index only (no re-hash of the binary).
Result<std::string> NamedAgentSha256(const Layout& layout, const Generation& generation);

/// For a delegate that has applied `applied`: true when it names an agent other than the
/// one running (WHARF_AGENT_SHA256) that the launcher has not refused; then the delegate
/// exits kAgentExitNewAgent. False when it names none: the running agent stays.
Result<bool> ShouldSwitchAgent(const Layout& layout, const Generation& applied);

// ---- The timing rules, pure (unit-tested with a fake clock) ------------------------------

struct LauncherTiming {
  int64_t health_deadline_ms = 120'000;  // a delegate on trial must be healthy within this
  int64_t backoff_first_ms = 1'000;      // after a healthy delegate's crash, doubling ...
  int64_t backoff_max_ms = 60'000;       // ... up to this
  int crash_loop_count = 5;              // this many crashes ...
  int64_t crash_loop_window_ms = 600'000;  // ... within this: unhealthy
  int64_t stop_grace_ms = 10'000;        // SIGTERM to SIGKILL for a delegate that is stopped
};

/// The wait before starting a crashed delegate again, the `crashes`-th crash in a row (1:
/// the first): first, doubled per crash, at most the maximum.
int64_t CrashBackoffMs(const LauncherTiming& timing, int crashes);
/// Drops crash times older than the window before `now_ms`; true when as many crashes as
/// the crash-loop count remain (the delegate is unhealthy).
bool CrashLooping(const LauncherTiming& timing, std::vector<int64_t>& crash_times_ms, int64_t now_ms);
/// Milliseconds left until a delegate on trial started at `started_ms` must be healthy
/// (0: overdue).
int64_t HealthLeftMs(const LauncherTiming& timing, int64_t started_ms, int64_t now_ms);

/// How a delegate ended, for the record: "exited with status 1 0.4 s after its start",
/// "was killed by signal 11 (SIGSEGV) 3.0 s after its start".
std::string DescribeEnd(bool exited, int code_or_signal, int64_t ran_ms);

// ---- The launcher's record -----------------------------------------------------------

struct AgentChoice {
  std::string version;  // "" for the boot binary
  std::string path;
  std::string sha256;
  bool boot = false;
  std::optional<DeliveredAgent> delivered;  // what re-verification needs; none for the boot binary
};

struct RefusedAgent {
  std::string sha256;
  std::string version;
  std::string why;      // "exited with status 1 0.4 s after its start"
  int64_t time = 0;     // seconds since the epoch
};

struct LauncherState {
  std::optional<AgentChoice> current;
  std::vector<DeliveredAgent> good;     // healthy once, newest first (a few)
  std::vector<RefusedAgent> refused;
  std::string named_sha256;             // the agent the active generation named when last chosen
  std::string named_version;
  std::string note;                     // why the named agent is not run other than a refusal
                                        // (a verification failure), "" when none
};

/// The state file: layout.base()/agent.json.
std::string LauncherStatePath(const Layout& layout);
/// The record; an empty one when there is none (or it is unreadable: the launcher starts over).
LauncherState ReadLauncherState(const Layout& layout);
Status WriteLauncherState(const Layout& layout, const LauncherState& state);

/// One line for the heartbeat when the agent the active generation names is not run
/// ("agent wharf-agent@3.0 refused: exited with status 1 0.4 s after its start; running
/// wharf-agent@2.0"); empty otherwise.
std::string LauncherReport(const Layout& layout);

// ---- The launcher ------------------------------------------------------------------------

struct LauncherOptions {
  std::string root = "/";
  /// The binary the FEC booted with (trusted as installed): /proc/self/exe, resolved.
  std::string boot_binary = "/proc/self/exe";
  LauncherTiming timing;
  /// Seams for tests (empty: the real ones): the agent the active generation delivers,
  /// verified (default: ReadActive + FindDeliveredAgent), and the re-verification before
  /// each start (default: VerifyDeliveredAgent).
  std::function<Result<std::optional<DeliveredAgent>>()> find_delivered;
  std::function<Status(const DeliveredAgent&)> verify;
  /// Messages go to stderr; tests may collect them.
  std::function<void(const std::string&)> log;
};

/// Runs delegates until one exits 0 or the launcher is told to stop (SIGTERM, SIGINT,
/// SIGHUP are forwarded to the delegate, whose end is then awaited). `argv` is the agent's
/// own: argv[1] is "run", argv[2..] go to every delegate after "run --delegate". Returns the
/// exit status (the delegate's, or 128 + signal when it was killed).
/// REQUIRES: a single-threaded process (it forks and handles signals).
int RunLauncher(const LauncherOptions& options, int argc, char** argv);

/// For a delegate, first thing in `run --delegate`: marks WHARF_AGENT_HEALTH_FD
/// close-on-exec, so that the process servers and scripts it starts before it is healthy do
/// not inherit it. A no-op without it.
void HoldHealthFd();
/// For a delegate: writes "ok\n" to WHARF_AGENT_HEALTH_FD once and closes it; a no-op
/// without it (or on later calls). Thread-safe.
void SignalHealthy();

}  // namespace wharf
