// The built-in supervisor of `wharf-agent run`: one process server (`wharf-agent procserv`)
// per service the active generation asks for, started by level, stopped in reverse, and
// after a sync only the services whose package or definition changed are restarted.
#pragma once

#include <sys/types.h>

#include <map>
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
  std::string fingerprint;  // changes when the package's bytes or the definition change
};

/// The services of `generation` that should run, in start order. Left out: services
/// marked dev, and every service of a package installed here as a dev version
/// (install-dev); the names of those packages go to `held_back` when given. `errors` collects definitions
/// that cannot be used (the others still run).
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
  Supervisor(std::string root, std::string agent_binary)
      : root_(std::move(root)), agent_(std::move(agent_binary)) {}
  /// Hands the services to systemd instead: wharf-svc@NAME.service units (`--user` ones
  /// when `user`), started, restarted and stopped with systemctl.
  /// The group that may use the consoles (their sockets are 0660).
  void SetSocketGroup(std::string group) { socket_group_ = std::move(group); }
  void UseSystemd(bool user) {
    systemd_ = true;
    user_units_ = user;
  }
  ~Supervisor() { StopAll(); }

  /// Makes the running process servers match `desired`; returns one line per action, and
  /// once per dev version installed under the root a line saying its services stay down.
  std::vector<std::string> Reconcile(const std::vector<DesiredService>& desired);
  /// Notes process servers that ended (call on SIGCHLD); the next Reconcile restarts them.
  void Reap();
  void StopAll();

 private:
  struct Running {
    pid_t pid = -1;
    DesiredService service;
    int64_t started_ms = 0;  // a process server that dies young waits out its hold-off
  };
  Status Start(const DesiredService& service);
  void Stop(const std::string& name);

  Status Systemctl(const char* verb, const std::string& name);

  std::string root_;
  std::string agent_;
  bool systemd_ = false;
  bool user_units_ = false;
  std::string socket_group_;
  std::map<std::string, Running> running_;
  std::set<std::string> dev_noted_;  // dev versions already said to be held back
};

}  // namespace wharf
