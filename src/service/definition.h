// Service definitions: defaults a package carries (package.json "services", from
// `wharf pack --service` and the tree's services.toml), overridden per FEC in its
// generation ("services": {"NAME": {...}}, from `wharf service set`).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "archive/names.h"
#include "base/error.h"

namespace wharf {

struct ServiceDef {
  std::string name;
  std::string command;             // relative to the package's prefix, or absolute
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string workdir;             // relative to the prefix (default: the prefix), or absolute
  std::string user;                // run as (the agent must be root); empty: the agent's
  std::string group;
  std::string restart = "always";  // always | on-failure | never
  int holdoff = 15;                // seconds between two starts
  std::string stop_signal = "SIGTERM";
  int grace = 10;                  // seconds before SIGKILL
  int level = 50;                  // start order: lower first, stopped in reverse
  bool dev = false;                // not started unless the generation enables it
  /// The configuration packages it reads (names): a new version of one restarts it. None
  /// given: those of the generation whose `matches` names the service's package
  /// (ConfigurationsRead, generation/generation.h); an empty list: none.
  std::optional<std::vector<std::string>> configuration;

  bool operator==(const ServiceDef&) const = default;
};

/// The name (archive/names.h, ValidateServiceName) and every field.
Status ValidateService(const ServiceDef& service);

/// `NAME=COMMAND ARG...` (arguments split at spaces; '...' and "..." group).
Result<ServiceDef> ParseServiceSpec(std::string_view spec);
/// Merges the tables of a services.toml ([NAME] with the fields above) into `services`.
Status MergeServicesToml(const std::string& path, std::vector<ServiceDef>& services);
/// What a packed tree defines: `file` (a services.toml kept outside the tree), else
/// DIR/services.toml when there is one, merged into `services`; then every one checked.
Status AddTreeServices(const std::string& dir, const std::string& file, std::vector<ServiceDef>& services);

/// A JSON array; "" for none.
std::string ServicesToJson(const std::vector<ServiceDef>& services);
Result<std::vector<ServiceDef>> ServicesFromJson(std::string_view json);

/// Applies `KEY=VALUE` settings (command, args, workdir, user, group, restart, holdoff,
/// stop_signal, grace, level, dev, configuration (names split at ',' or ' '), env.NAME; "KEY=" clears to the default) to the
/// overrides object of one service in a generation's "services" JSON; returns the new JSON.
Result<std::string> SetServiceOverrides(std::string_view services_json, const std::string& name,
                                        const std::vector<std::string>& settings);
/// The definition `base` with the generation's overrides for it.
Result<ServiceDef> ApplyOverrides(ServiceDef base, std::string_view services_json);
/// The signal number of "SIGTERM", "TERM" or "15".
int SignalNumber(std::string_view name);

}  // namespace wharf
