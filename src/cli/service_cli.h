// `wharf-agent procserv | attach | list | logs`: the FEC's services and their consoles.
// Under --root, a service NAME has its console at <root>/run/wharf/console/NAME.sock, its
// read-only output at NAME.log.sock beside it, its status at <root>/run/wharf/status/NAME.json
// and its log at <root>/var/log/wharf/NAME.log.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "service/procserv.h"

namespace wharf {

struct ServicePaths {
  std::string console, log_socket, status, log_file;
};
ServicePaths PathsOf(const std::string& root, const std::string& service);

/// The status files of the services under `root` (a JSON array; a service whose process
/// server is gone shows state "dead").
nlohmann::ordered_json ReadServiceStatuses(const std::string& root);
/// This program's own path (what the supervisor and the units start).
std::string SelfBinary();

/// `wharf-agent procserv ARGS`: runs wharf-procserv (beside this program) with ARGS. With
/// --from-generation, the settings of service --name of the active generation under --root,
/// with the other words given on top, are written as the service's spec
/// (service/procserv_args.h) and run as `wharf-procserv --spec FILE`. Returns only on error.
int RunProcServCommand(const std::vector<std::string>& args);
/// Connects the terminal to a console until ^] (or the server goes away).
int RunAttach(const std::string& root, const std::string& service, const std::string& socket,
              bool read_only);
/// The services of this FEC: state, PID, uptime, restarts, last exit (and more with -v, -vv).
int RunList(const std::string& root, int verbosity, bool json);
/// start | stop | restart: signals the service's process server (SIGUSR2 / SIGUSR1).
int RunControl(const std::string& root, const std::string& service, const std::string& verb);
/// Writes wharf-agent.service and wharf-svc@.service (for this binary) and their settings
/// file, for the system (/etc/systemd/system) or the user's own systemd (`user`), or into
/// `dest`; then asks systemd to reload.
int RunInstallUnits(bool user, const std::string& root, const std::string& dest,
                    const std::string& console_group);
int RunLogs(const std::string& root, const std::string& service, bool follow);

/// `wharf-agent svc VERB [SERVICE]` (`args`: the words after "svc"): the one entry the
/// sudoers policy (packaging/sudoers.d/wharf) lets the wharf group run as root. Its grammar
/// is fixed: `list`, or start | stop | restart | attach | logs and the name of a service of
/// the active generation; no option at all, so no root, socket or path: the root is "/".
int RunServiceEntry(const std::vector<std::string>& args);

}  // namespace wharf
