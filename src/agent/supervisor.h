// The built-in supervisor of `wharf-agent run`: one process server (wharf-procserv) per
// service the active generation asks for, started by level, stopped in reverse, and after a
// sync only the services whose package or definition changed are restarted. The process
// servers run in sessions of their own and outlive the agent: a new agent adopts them.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/layout.h"
#include "base/error.h"
#include "generation/generation.h"
#include "service/definition.h"
#include "service/procserv.h"

namespace wharf {

struct DesiredService {
  ServiceDef def;           // the package's definition with the generation's overrides
  std::string package;      // "name@version"
  std::string prefix;       // the package's prefix under the root (the link, so that a
                            // switched version is what the next start runs)
  /// The configuration packages it reads ("NAME@VERSION", ConfigurationsRead): a new
  /// version of one is a new fingerprint. Passed to its process server, whose status file
  /// shows them (`wharf-agent list -v`).
  std::vector<std::string> configuration;
  std::string fingerprint;  // changes when the package's bytes, the definition, or the
                            // bytes of a configuration it reads change
};

/// The services of `generation` that should run, in start order. Left out: services
/// marked dev, and every service of a package installed here as a dev version
/// (install-dev); the names of those packages go to `held_back` when given. `errors` collects definitions
/// that cannot be used (the others still run). The fingerprint of a service that reads no
/// configuration is what it was before configurations were read.
std::vector<DesiredService> DesiredServices(const Layout& layout, const Generation& generation,
                                            std::vector<std::string>& errors,
                                            std::vector<std::string>* held_back = nullptr);

/// The process server's settings for `service` (paths under `root`).
ProcServOptions ServiceOptions(const std::string& root, const DesiredService& service);
/// The settings of service `name` of the active generation under `root`
/// (`wharf-agent procserv --from-generation`, which the supervisor and systemd start).
Result<ProcServOptions> ServiceOptionsFromGeneration(const std::string& root, const std::string& name);

class Supervisor {
 public:
  /// `procserv`: the process server program (wharf-procserv beside the agent).
  Supervisor(std::string root, std::string procserv) : root_(std::move(root)), procserv_(std::move(procserv)) {}
  /// Called about once a second while a stop waits for a process server to end (the
  /// daemon pings systemd's watchdog from it: a slow stop is not a hung loop).
  void SetWaitHook(std::function<void()> hook) { wait_hook_ = std::move(hook); }
  /// The group that may use the consoles (their sockets are 0660).
  void SetSocketGroup(std::string group) { socket_group_ = std::move(group); }
  /// Hands the services to systemd instead: wharf-svc@NAME.service units (`--user` ones
  /// when `user`), started, restarted and stopped with systemctl.
  void UseSystemd(bool user) {
    systemd_ = true;
    user_units_ = user;
  }

  /// Takes over the process servers that run already (those of an agent before this one):
  /// each one whose status file names a live process. Returns one line per service adopted.
  std::vector<std::string> Adopt();
  /// Makes the running process servers match `desired`; returns one line per action, and
  /// once per dev version installed under the root a line saying its services stay down.
  /// A process server whose fingerprint still matches is left alone, adopted or not.
  std::vector<std::string> Reconcile(const std::vector<DesiredService>& desired);
  /// Notes process servers that ended and starts again those whose restart time came
  /// (RestartAtMs: hold-off, then back-off for a crash loop). Cheap: call every second.
  std::vector<std::string> Check();
  /// Stops every process server, highest level first.
  void StopAll();
  /// How many process servers run or wait to be started again.
  size_t size() const { return running_.size(); }

 private:
  struct Running {
    pid_t pid = -1;             // the process server; -1 when it ended
    uint64_t start_ticks = 0;   // with the PID, names the process (ProcessStartTicks)
    bool child = false;         // started by this agent (then reaped by it)
    std::string fingerprint;    // of what it runs
    std::optional<DesiredService> service;  // unknown for an adopted one until Reconcile
    int level = 50;
    int64_t started_ms = 0;
    int quick_deaths = 0;       // in a row (DiedYoung)
  };
  Status Start(const DesiredService& service);
  void Stop(const std::string& name);
  bool Alive(Running& running);
  Status Systemctl(const char* verb, const std::string& name);

  std::string root_;
  std::string procserv_;
  bool systemd_ = false;
  bool user_units_ = false;
  std::string socket_group_;
  std::map<std::string, Running> running_;
  std::set<std::string> dev_noted_;  // dev versions already said to be held back
  std::map<std::string, std::string> start_failures_;
  std::function<void()> wait_hook_;  // service -> why its last start failed
};

}  // namespace wharf
