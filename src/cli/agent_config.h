// agent.toml: the agent's settings file (<root>/etc/wharf/agent.toml, or --config), read
// apart from the commands so that it can be tested and fuzzed on its own.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "cli/agent_cli.h"

namespace wharf {

/// Appends the URLs of a comma-separated list (empty items skipped).
void AddUrls(std::vector<std::string>& out, const std::string& text);

/// Fills what `args` does not set yet (flags win) from the TOML file `path`: store, fec,
/// trust, keep, server, supervisor, console_group, keep_snapshots, token_file,
/// transfer_base_seconds, transfer_floor_rate. Absolute
/// paths in it (trust, token_file) are taken under `root`.
Status ReadConfigFile(const std::string& path, const std::string& root, AgentArgs& args);

}  // namespace wharf
