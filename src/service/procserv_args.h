// The process server's command line, the one grammar of `wharf-procserv` (and of
// `wharf-agent procserv`, which hands its words to it), and the spec file through which a
// supervisor starts it: `wharf-procserv --spec ROOT/run/wharf/services/NAME.args`, the
// arguments NUL-terminated one after the other (like /proc/PID/cmdline), read through
// TrustedDir (service/trusted.h). Arguments and the spec round-trip exactly:
// ParseProcServArguments(ProcServArguments(o, f)) gives back o and f.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "service/procserv.h"

namespace wharf {

/// What a command line asks for.
struct ParsedProcServ {
  ProcServOptions options;  // paths filled in (DefaultServicePaths) from --root
  std::string fingerprint;  // --fingerprint: copied into the status file ("fingerprint")
  bool help = false;        // --help: print ProcServUsage() and do nothing else
};

/// The largest spec file read (1 MiB).
inline constexpr size_t kMaxServiceSpecBytes = 1 << 20;

/// Parses the arguments after the program name. `--spec FILE` (then the only argument)
/// reads them from FILE (ReadServiceSpec). Errors are kInvalidArgument (a usage error:
/// exit code 2), or from reading the spec.
Result<ParsedProcServ> ParseProcServArguments(const std::vector<std::string>& args);

/// The arguments that make ParseProcServArguments return `options` and `fingerprint`:
/// every setting spelled out, the command last after "--". Fill the paths first
/// (DefaultServicePaths): an empty console socket is left to the parser's default under
/// "/"; an empty log socket, log file or status file is written as "none".
std::vector<std::string> ProcServArguments(const ProcServOptions& options, const std::string& fingerprint);

/// Fills the runtime paths that are empty with the defaults of service `options.name`
/// under `root`: ROOT/run/wharf/console/NAME.sock and NAME.log.sock, ROOT/run/wharf/status/
/// NAME.json, ROOT/var/log/wharf/NAME.log.
void DefaultServicePaths(ProcServOptions& options, const std::string& root);

/// ROOT/run/wharf/services/NAME.args: where the supervisor keeps a service's spec.
std::string ServiceSpecPath(const std::string& root, const std::string& name);

/// Writes `args` to ServiceSpecPath(root, name), NUL-terminated, atomically, mode 0600; the
/// folder is made (0700) when missing. Opened through TrustedDir.
Status WriteServiceSpec(const std::string& root, const std::string& name, const std::vector<std::string>& args);

/// The arguments of the spec file `path`: a regular file of root or this user, writable by
/// no one else, in a folder no one else may write to, not through a symlink, at most
/// kMaxServiceSpecBytes, every argument NUL-terminated.
Result<std::vector<std::string>> ReadServiceSpec(const std::string& path);

/// Parses a console key: "^X" (^@.. ^_), "none" (or empty: 0, off), or one character.
bool ParseConsoleKey(const std::string& text, char& key);

/// The --help text of wharf-procserv.
const char* ProcServUsage();

}  // namespace wharf
