// wharf-agent: the FEC side. Only parses arguments.
#include <CLI/CLI.hpp>

#include "cli/agent_cli.h"
#include "cli/output.h"

namespace {

constexpr const char* kFooter = R"(Exit codes: 0 applied or up to date; 1 failed or refused (the active
generation stays); 2 usage error; 3 offline: no store answered (the active generation stays).
Settings may come from <root>/etc/wharf/agent.toml instead of flags:
  fec = "fec01"
  store = ["http://wharf.example:8080", "file:///media/dvd/store"]
  trust = ["/etc/wharf/keys/release.pub"]   # FEC paths, read under --root
  keep = 3
  server = "http://wharf.example:8080"        # heartbeats (optional)
  token_file = "/etc/wharf/token"             # this FEC's agent token
See docs/agent.md.)";

void AddCommon(CLI::App* cmd, wharf::AgentArgs& args) {
  cmd->add_option("--root", args.root, "the FEC's root: a folder instead of / for tests or an unprivileged user")
      ->capture_default_str();
  cmd->add_option("--config", args.config, "settings file (default <root>/etc/wharf/agent.toml)");
  cmd->add_option("--fec", args.fec, "this FEC's name");
  cmd->add_flag("--json", args.json, "print the result as JSON on stdout");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wharf-agent: install and switch a FEC's signed generation from a wharf store"};
  app.footer(kFooter);
  app.require_subcommand(1);
  app.set_version_flag("--version", "wharf-agent 0.1.0");
  wharf::AgentArgs args;
  int code = 0;

  auto* sync = app.add_subcommand("sync", "fetch, verify and switch to the FEC's generation");
  AddCommon(sync, args);
  sync->add_option("--store", args.stores, "store URLs (http://, https://, file://), tried in order");
  sync->add_option("--trust", args.trust, "public keys (.pub) whose signatures are trusted");
  sync->add_option("--keep", args.keep, "generations to keep on disk (default 3)")
      ->check(CLI::Range(1, 100));
  sync->add_flag("--dry-run", args.dry_run, "check the generation and print the plan; change nothing");
  sync->callback([&] { code = wharf::RunAgentSync(args); });

  auto add_reporting = [&](CLI::App* cmd) {
    // WHARF_SERVER and WHARF_TOKEN are read by the command: flags win over them, they win over
    // agent.toml.
    cmd->add_option("--server", args.server, "a `wharf serve` URL to send heartbeats to (or WHARF_SERVER)");
    cmd->add_option("--token", args.token, "this FEC's agent token (or WHARF_TOKEN)");
    cmd->add_option("--token-file", args.token_file, "a file holding the token");
  };
  add_reporting(sync);

  auto* run = app.add_subcommand("run", "sync every --interval seconds and report heartbeats, until "
                                         "SIGTERM (for a service manager)");
  AddCommon(run, args);
  run->add_option("--store", args.stores, "store URLs (http://, https://, file://), tried in order");
  run->add_option("--trust", args.trust, "public keys (.pub) whose signatures are trusted");
  run->add_option("--keep", args.keep, "generations to keep on disk (default 3)")->check(CLI::Range(1, 100));
  run->add_option("--interval", args.interval_seconds, "seconds between syncs")->capture_default_str()
      ->check(CLI::Range(1, 86400));
  run->add_option("--heartbeat", args.heartbeat_seconds, "seconds between heartbeats")
      ->capture_default_str()->check(CLI::Range(1, 86400));
  add_reporting(run);
  run->callback([&] { code = wharf::RunAgentDaemon(args); });

  auto* status = app.add_subcommand("status", "the active generation, its packages, leftovers");
  AddCommon(status, args);
  status->callback([&] { code = wharf::RunAgentStatus(args); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int exit = app.exit(e);
    return exit == 0 ? 0 : wharf::kExitUsage;
  }
  return code;
}
