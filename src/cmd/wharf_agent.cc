// wharf-agent: the FEC side. Only parses arguments.
#include <CLI/CLI.hpp>

#include "cli/agent_cli.h"
#include "cli/dev_cli.h"
#include "cli/service_cli.h"
#include "agent/supervisor.h"
#include "cli/output.h"

namespace {

constexpr const char* kFooter = R"(Exit codes: 0 applied or up to date; 1 failed or refused (the active
generation stays); 2 usage error; 3 offline: no store answered (the active generation stays);
4 verify: installed files differ from their signed indexes.
Settings may come from <root>/etc/wharf/agent.toml instead of flags:
  fec = "fec01"
  store = ["http://wharf.example:8080", "file:///media/dvd/store"]
  trust = ["/etc/wharf/keys/release.pub"]   # FEC paths, read under --root
  keep = 3
  server = "http://wharf.example:8080"        # heartbeats (optional)
  token_file = "/etc/wharf/token"             # this FEC's agent token
  keep_snapshots = 5                          # persistent data kept in a file:// store
  transfer_base_seconds = 30                  # each transfer's deadline: this + its size
  transfer_floor_rate = 4096                  #   at this many bytes/s (0: no deadline)
See docs/agent.md.)";

void AddDeadline(CLI::App* cmd, wharf::AgentArgs& args) {
  cmd->add_option("--transfer-base", args.transfer_base_seconds,
                  "seconds each transfer may take beyond its size at the floor rate (default 30)")
      ->check(CLI::Range(0L, 86400L));
  cmd->add_option("--floor-rate", args.transfer_floor_rate,
                  "bytes/s a mirror must beat: a file's deadline is --transfer-base + size / this; "
                  "then the next mirror (default 4096; 0: no deadline)")
      ->check(CLI::Range(0LL, 1LL << 40));
}

void AddCommon(CLI::App* cmd, wharf::AgentArgs& args) {
  cmd->add_option("--root", args.root, "the FEC's root: a folder instead of / for tests or an unprivileged user")
      ->capture_default_str();
  cmd->add_option("--config", args.config, "settings file (default <root>/etc/wharf/agent.toml)");
  cmd->add_option("--fec", args.fec, "this FEC's name (default: fec in agent.toml, else the host name up to its first dot)");
  cmd->add_flag("--json", args.json, "print the result as JSON on stdout");
}

}  // namespace

int main(int argc, char** argv) {
  // The privileged entry (packaging/sudoers.d/wharf) has its own fixed grammar: its words
  // never reach the option parser below, so no option of another command can slip in.
  if (argc >= 2 && std::string_view(argv[1]) == "svc")
    return wharf::RunServiceEntry(std::vector<std::string>(argv + 2, argv + argc));
  // The process server has its own program and parser (wharf-procserv): its words go there.
  if (argc >= 2 && std::string_view(argv[1]) == "procserv")
    return wharf::RunProcServCommand(std::vector<std::string>(argv + 2, argv + argc));
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
  AddDeadline(sync, args);
  sync->callback([&] { code = wharf::RunAgentSync(args); });

  auto* verify = app.add_subcommand("verify", "re-hash the installed packages of the active generation against "
                                               "their signed indexes; list every difference (exit 4 when any)");
  AddCommon(verify, args);
  verify->add_flag("--repair", args.repair, "fetch again exactly what differs, remove what is extra, restore "
                                            "modes and links; exit 0 when the tree is then exactly the index");
  verify->add_option("--store", args.stores, "store URLs for --repair (default: agent.toml's)");
  verify->add_option("--trust", args.trust, "public keys (.pub), as for sync (default: agent.toml's)");
  AddDeadline(verify, args);
  verify->callback([&] { code = wharf::RunAgentVerify(args); });

  auto add_reporting = [&](CLI::App* cmd) {
    // WHARF_SERVER and WHARF_TOKEN are read by the command: flags win over them, they win over
    // agent.toml.
    cmd->add_option("--server", args.server,
                    "a `wharf serve` URL for heartbeats and persistent data (or WHARF_SERVER)");
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
  run->add_option("--supervisor", args.supervisor, "who keeps the services up: builtin, systemd or none "
                                                    "(default: agent.toml's supervisor, else builtin)")
      ->check(CLI::IsMember({"builtin", "systemd", "none"}));
  run->add_option("--interval", args.interval_seconds, "seconds between syncs")->capture_default_str()
      ->check(CLI::Range(1, 86400));
  run->add_option("--heartbeat", args.heartbeat_seconds, "seconds between heartbeats")
      ->capture_default_str()->check(CLI::Range(1, 86400));
  run->add_option("--verify-interval", args.verify_interval_seconds,
                  "seconds between background checks of the installed files against their signed "
                  "indexes (at 8 MiB/s; drift goes into heartbeats; 0: never)")
      ->capture_default_str()->check(CLI::Range(0, 30 * 86400));
  AddDeadline(run, args);
  run->add_flag("--stop-services", args.stop_services,
                "stop the services when the agent stops (default: they keep running, and the next agent "
                "adopts them; agent.toml: stop_services = true)");
  run->add_option("--health-deadline", args.health_deadline_seconds,
                  "seconds a delivered agent build has to send its first heartbeat before the previous "
                  "build takes over again (default 120; agent.toml: agent_health_deadline)")
      ->check(CLI::Range(5, 86400));
  // The agent build that runs under the launcher (docs/agent.md, "Updating the agent").
  run->add_flag("--delegate", args.delegate)->group("");
  add_reporting(run);
  run->callback([&] { code = args.delegate ? wharf::RunAgentDaemon(args) : wharf::RunAgentLauncher(args, argc, argv); });

  // Listed for --help only: `procserv` is handled before parsing (above), by wharf-procserv.
  app.add_subcommand("procserv", "run one service's child on a pseudo-terminal with a console socket, a log and "
                                 "restarts (usually started for you): runs wharf-procserv, see "
                                 "`wharf-agent procserv --help`; --from-generation takes the service of the "
                                 "active generation")
      ->allow_extras();

  std::string service, socket;
  bool read_only = false;
  auto* attach = app.add_subcommand("attach", "connect this terminal to a service's console (^] detaches)");
  attach->add_option("SERVICE", service, "service name")->required();
  attach->add_option("--root", args.root, "the FEC's root")->capture_default_str();
  attach->add_option("--socket", socket, "a console socket path instead of the service's");
  attach->add_flag("--read-only", read_only, "watch the output only (the log socket)");
  attach->callback([&] { code = wharf::RunAttach(args.root, service, socket, read_only); });

  int verbosity = 0;
  auto* list = app.add_subcommand("list", "this FEC's services: state, PID, uptime, restarts, last exit");
  list->add_option("--root", args.root, "the FEC's root")->capture_default_str();
  list->add_flag("-v", verbosity, "-v: clients, CPU, RSS; -vv: sockets, log, last lines");
  list->add_flag("--json", args.json, "print the result as JSON (docs/services.md)");
  list->callback([&] { code = wharf::RunList(args.root, verbosity, args.json); });

  for (const char* verb : {"start", "stop", "restart"}) {
    auto* control = app.add_subcommand(verb, std::string(verb) + " a service's child (its process server stays)");
    control->add_option("SERVICE", service, "service name")->required();
    control->add_option("--root", args.root, "the FEC's root")->capture_default_str();
    control->callback([&, verb] { code = wharf::RunControl(args.root, service, verb); });
  }

  // Listed for --help only: `svc` is handled before parsing (above).
  app.add_subcommand("svc", "svc list | svc start|stop|restart|attach|logs SERVICE: the one entry the wharf "
                            "group may run through sudo (packaging/sudoers.d/wharf); no options, root /")
      ->allow_extras()
      ->callback([&] {
        code = wharf::ReportError("wharf-agent", {wharf::ErrorCode::kInvalidArgument,
                                                  "svc comes first: wharf-agent svc VERB [SERVICE]"},
                                  wharf::kExitUsage);
      });

  bool user_units = false;
  std::string units_dest, console_group;
  auto* install_units = app.add_subcommand(
      "install-units", "install wharf-agent.service and wharf-svc@.service for systemd (--user: "
                       "the user's own systemd, no root needed)");
  install_units->add_flag("--user", user_units, "install for `systemctl --user`");
  install_units->add_option("--root", args.root, "the FEC root the units run on")->capture_default_str();
  install_units->add_option("--dest", units_dest, "write the files into this folder instead (for review)");
  install_units->add_option("--console-group", console_group, "the group that may attach to consoles");
  install_units->callback([&] { code = wharf::RunInstallUnits(user_units, args.root, units_dest, console_group); });

  bool follow = false;
  auto* logs = app.add_subcommand("logs", "a service's log file (-f: follow its output live)");
  logs->add_option("SERVICE", service, "service name")->required();
  logs->add_option("--root", args.root, "the FEC's root")->capture_default_str();
  logs->add_flag("-f,--follow", follow, "follow the output until interrupted");
  logs->callback([&] { code = wharf::RunLogs(args.root, service, follow); });

  auto* snapshot = app.add_subcommand(
      "snapshot", "pack the generation's persistent folders now and send them to the server (or a file:// store)");
  AddCommon(snapshot, args);
  snapshot->add_option("--store", args.stores, "store URLs: a file:// one is written when no server is set");
  snapshot->add_option("--keep-snapshots", args.keep_snapshots, "with a file:// store: snapshots kept (default 5)")
      ->check(CLI::Range(1, 1000));
  add_reporting(snapshot);
  snapshot->callback([&] { code = wharf::RunAgentSnapshot(args); });

  std::string dev_name;
  auto* install_dev = app.add_subcommand(
      "install-dev", "install a dev version from the stream `wharf dev-deploy` sends on stdin, in place of "
                     "the generation's version until the next generation or drop-dev");
  install_dev->add_option("--name", dev_name, "the package's name")->required();
  install_dev->add_option("--root", args.root, "the FEC's root")->capture_default_str();
  install_dev->add_flag("--dry-run", args.dry_run, "check the stream and the plan; change nothing");
  install_dev->add_flag("--json", args.json, "print the result as JSON");
  install_dev->callback([&] { code = wharf::RunInstallDev(args.root, dev_name, args.dry_run, args.json); });

  auto* drop_dev = app.add_subcommand("drop-dev", "go back from a dev version to the generation's own version");
  drop_dev->add_option("NAME", dev_name, "the package's name")->required();
  drop_dev->add_option("--root", args.root, "the FEC's root")->capture_default_str();
  drop_dev->add_flag("--dry-run", args.dry_run, "say what would change; change nothing");
  drop_dev->add_flag("--json", args.json, "print the result as JSON");
  drop_dev->callback([&] { code = wharf::RunDropDev(args.root, dev_name, args.dry_run, args.json); });

  auto* rollback = app.add_subcommand(
      "rollback", "activate a kept generation (the previous one by default) without any store, until a newer "
                  "signed generation comes");
  AddCommon(rollback, args);
  rollback->add_option("--to", args.rollback_to, "the kept generation to activate (see `status`)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 62));
  rollback->add_option("--trust", args.trust, "public keys (.pub) whose signatures are trusted");
  rollback->add_option("--keep", args.keep, "generations to keep on disk (default 3)")->check(CLI::Range(1, 100));
  add_reporting(rollback);
  rollback->add_flag("--dry-run", args.dry_run, "check the kept generation and say what would change; change nothing");
  rollback->callback([&] { code = wharf::RunAgentRollback(args); });

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
