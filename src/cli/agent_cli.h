// The `wharf-agent` commands. Exit codes:
//   0 applied, or already up to date     1 failed or refused (the active generation stays)
//   2 usage error                        3 offline: no store answered (the active one stays)
#pragma once

#include <string>
#include <vector>

namespace wharf {

inline constexpr int kAgentExitOffline = 3;
/// `verify`: installed files differ from their signed package indexes (not repaired).
inline constexpr int kAgentExitDrift = 4;

struct AgentArgs {
  std::string root = "/";
  std::string config;               // default <root>/etc/wharf/agent.toml, if present
  std::vector<std::string> stores;  // each may hold several URLs separated by commas
  std::string fec;
  std::vector<std::string> trust;   // .pub files
  int keep = 0;                     // 0: from the config, else 3
  bool dry_run = false;
  bool json = false;
  bool repair = false;              // verify: fetch again what differs
  // Reporting to a `wharf serve` (optional): heartbeats after each sync and every
  // `heartbeat_seconds` in `run`; failures never change what the agent does.
  std::string server;
  std::string token;       // or the first line of token_file
  std::string token_file;
  int interval_seconds = 60;   // run: time between syncs
  int heartbeat_seconds = 30;  // run: time between heartbeats
  int verify_interval_seconds = 6 * 3600;  // run: installed files re-hashed this often (0: never)
  // run: who keeps the services up: "builtin" (one process server each, in its own session),
  // "systemd" (wharf-svc@NAME units), "none"; empty: from agent.toml, else builtin.
  std::string supervisor;
  bool stop_services = false;
  int health_deadline_seconds = 0;  // run: 0: agent.toml's agent_health_deadline, else 120
  bool delegate = false;            // run: the daemon itself, under the launcher  // run: stop the services when the agent stops (agent.toml)
  std::string console_group;  // the group that may attach to consoles (agent.toml)
  int keep_snapshots = 0;     // with a file:// store: snapshots kept (0: agent.toml, else 5)
  // Each transfer's deadline: base + size / floor rate (fetch.h TransferDeadline); -1: from
  // agent.toml (transfer_base_seconds, transfer_floor_rate), else the defaults.
  long transfer_base_seconds = -1;
  long long transfer_floor_rate = -1;  // bytes/s; 0: no deadline
  uint64_t rollback_to = 0;            // rollback: the kept generation; 0: the previous one
};

int RunAgentSync(const AgentArgs& args);
/// Re-hashes the active generation's installed packages against their signed indexes;
/// with args.repair, fetches again what differs. Exit 0 clean (or repaired and clean),
/// kAgentExitDrift drift found, 1 failed, 3 no store answered for a repair.
int RunAgentVerify(const AgentArgs& args);
int RunAgentStatus(const AgentArgs& args);
/// Activates a kept generation (the previous one by default) without any store.
int RunAgentRollback(const AgentArgs& args);
/// Syncs every interval and reports heartbeats until SIGTERM or SIGINT (exit 0); snapshots
/// the persistent data at the generation's interval and after stopping the services.
int RunAgentDaemon(const AgentArgs& args);
/// `run`: the launcher, which runs the agent build the generation delivers (or this one) as
/// `run --delegate` and falls back to the previous build when a new one is not healthy.
int RunAgentLauncher(const AgentArgs& args, int argc, char** argv);
/// Takes a snapshot of the persistent data now and sends it to the store.
int RunAgentSnapshot(const AgentArgs& args);

}  // namespace wharf
