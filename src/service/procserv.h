// The process server: one per service. It runs the child on a pseudo-terminal, offers a
// console on a UNIX socket (any number of clients; what one types is echoed to the others;
// the last output replayed to whoever attaches), a read-only log socket, a log file that it
// rotates itself, and restarts the child by its policy with a hold-off measured from the
// previous start. Its state is written to a status file for `wharf-agent list`.
//
// Console keys (configurable; 0 disables): ^X kills the child (it then restarts by policy),
// ^T cycles the mode restart -> norestart -> oneshot, ^R starts a stopped child. Messages
// from the server itself start with "@@@ ". Signals: SIGUSR1 stops the child (and keeps it
// stopped), SIGUSR2 starts it, or restarts it at once when it runs (`wharf-agent stop`,
// `start`, `restart`); SIGHUP reopens the log file; SIGTERM stops child and server.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace wharf {

enum class RestartMode { kRestart, kNoRestart, kOneShot, kOnFailure };
const char* RestartModeName(RestartMode mode);

struct ProcServOptions {
  std::string name;
  std::vector<std::string> argv;  // the command and its arguments
  std::string workdir;            // resolved again at every start (a switched version is seen)
  std::vector<std::string> env;   // KEY=VALUE added to the server's environment
  std::string user;               // run the child as (needs root); empty: as the server
  std::string group;
  std::string console_socket;     // required
  std::string log_socket;         // read-only output; empty: none
  mode_t socket_mode = 0660;
  std::string socket_group;       // the sockets' group (e.g. "wharf"); empty: the server's
  std::string log_file;           // empty: none
  uint64_t log_max_bytes = 10u << 20;  // rotate when the file would grow past this
  int log_keep = 5;                    // rotated files kept: FILE.1 ... FILE.N
  bool log_timestamps = false;         // prefix each line with an RFC 3339 UTC time
  RestartMode mode = RestartMode::kRestart;
  int holdoff_seconds = 15;  // between two starts
  int stop_signal = 15;      // SIGTERM
  int grace_seconds = 10;    // then SIGKILL
  char kill_key = 0x18;      // ^X
  char toggle_key = 0x14;    // ^T
  char restart_key = 0x12;   // ^R
  bool strip_keys = true;    // the keys never reach the child
  size_t replay_bytes = 64 * 1024;
  size_t client_buffer_bytes = 1 << 20;  // a client that reads slower than this is dropped
  std::string status_file;  // JSON, rewritten atomically on every change; empty: none
  /// The configuration packages the service reads ("NAME@VERSION"), shown in the status
  /// file as "configuration": what it started with.
  std::vector<std::string> configuration;

  bool operator==(const ProcServOptions&) const = default;
};

/// Runs until SIGTERM/SIGINT (the child is stopped with stop_signal, then SIGKILL after
/// the grace period) or, in oneshot mode, until the child exits. Returns the exit code.
/// `fingerprint` is written to the status file as "fingerprint" (what the supervisor
/// compares to know whether a running server matches a generation's definition).
int RunProcServ(const ProcServOptions& options, const std::string& fingerprint = {});

}  // namespace wharf
