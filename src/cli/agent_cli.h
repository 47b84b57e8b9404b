// The `wharf-agent` commands. Exit codes:
//   0 applied, or already up to date     1 failed or refused (the active generation stays)
//   2 usage error                        3 offline: no store answered (the active one stays)
#pragma once

#include <string>
#include <vector>

namespace wharf {

inline constexpr int kAgentExitOffline = 3;

struct AgentArgs {
  std::string root = "/";
  std::string config;               // default <root>/etc/wharf/agent.toml, if present
  std::vector<std::string> stores;  // each may hold several URLs separated by commas
  std::string fec;
  std::vector<std::string> trust;   // .pub files
  int keep = 0;                     // 0: from the config, else 3
  bool dry_run = false;
  bool json = false;
};

int RunAgentSync(const AgentArgs& args);
int RunAgentStatus(const AgentArgs& args);

}  // namespace wharf
