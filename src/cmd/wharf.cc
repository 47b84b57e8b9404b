// wharf: package, publish and assign software for the FECs. Only parses arguments.
#include <CLI/CLI.hpp>

#include <thread>

#include "cli/commands.h"
#include "cli/dev_cli.h"
#include "cli/serve_cli.h"

namespace {

constexpr const char* kFooter = R"(Exit codes: 0 done (or nothing to do), 1 failed, 2 usage error.
Every store command works on a folder (--store DIR) or through a server
(--server URL --token T, or WHARF_SERVER and WHARF_TOKEN) with the same output.
Typical release:
  wharf keygen --out release
  wharf pack build/ --name demo-ioc --version 1.0.0 --prefix /opt/epics/demo-ioc
  wharf publish demo-ioc-1.0.0.tar.zst --store /srv/wharf
  wharf assign fec01 demo-ioc@1.0.0 --store /srv/wharf --key release.key
  wharf rollback fec01 --store /srv/wharf --key release.key
Names: package names [A-Za-z0-9][A-Za-z0-9._+-]* (100 max), versions
[A-Za-z0-9][A-Za-z0-9._+~-]* (64 max), FEC names [A-Za-z0-9][A-Za-z0-9._-]* (63 max).
See docs/cli.md.)";

void AddServerOptions(CLI::App* cmd, wharf::StoreArgs& args) {
  // The environment (WHARF_SERVER, WHARF_TOKEN, WHARF_STORE) is read by the command itself:
  // these variables are shared by every subcommand, and a flag must win over the environment.
  cmd->add_option("--server", args.server, "a `wharf serve` URL, e.g. http://wharf:8080 (or WHARF_SERVER)");
  cmd->add_option("--token", args.token, "API token for --server (or WHARF_TOKEN; `wharf token create`)");
}

void AddStoreOptions(CLI::App* cmd, wharf::StoreArgs& args, bool changes) {
  cmd->add_option("--store", args.store, "the store folder (or WHARF_STORE)");
  AddServerOptions(cmd, args);
  cmd->add_flag("--json", args.json, "print the result as JSON on stdout");
  if (!changes) return;
  cmd->add_option("--key", args.key, "the signing key (NAME.key from `wharf keygen`; or WHARF_KEY)");
  cmd->add_option("--expires-in", args.expires_in,
                  "lifetime of the new generation: 90s, 12h, 30d (FECs refuse it after)")
      ->capture_default_str();
  cmd->add_flag("--dry-run", args.dry_run, "print the generation it would write, write nothing");
}

// publish, assign: --prune / --no-prune / --keep N (store/retention.h).
void AddPruneOptions(CLI::App* cmd, wharf::StoreArgs& args, bool& prune, bool& no_prune) {
  auto* on = cmd->add_flag("--prune", prune,
                           "remove the released packages' versions older than the newest --keep that no FEC's "
                           "generation within the retention names, as gc would (default: the store's "
                           "prune_on_release, `wharf retention`)");
  cmd->add_flag("--no-prune", no_prune, "do not prune, whatever the store's retention says")->excludes(on);
  cmd->add_option("--keep", args.keep, "with pruning: versions kept per package (default: the store's, 3)")
      ->check(CLI::Range(1, 1000));
}

// --keep N alone asks for pruning.
void ResolvePrune(wharf::StoreArgs& args, bool prune, bool no_prune) {
  if (prune || args.keep > 0) args.prune = true;
  if (no_prune) args.prune = false;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wharf: package, publish and assign software for accelerator front-end computers"};
  app.footer(kFooter);
  app.require_subcommand(1);
  app.set_version_flag("--version", "wharf 0.1.0");
  int code = 0;
  wharf::StoreArgs store_args;
  bool json = false;
  bool prune = false, no_prune = false;

  std::string key_out;
  auto* keygen = app.add_subcommand("keygen", "make an Ed25519 signing key pair (NAME.key, NAME.pub)");
  keygen->add_option("--out", key_out, "NAME: writes NAME.key (mode 0600) and NAME.pub")->required();
  keygen->add_flag("--json", json, "print the result as JSON");
  keygen->callback([&] { code = wharf::RunKeygen(key_out, json); });

  std::string pack_dir;
  wharf::PackOptions pack;
  auto* pack_cmd = app.add_subcommand(
      "pack", "pack a folder into NAME-VERSION.tar.zst and NAME-VERSION.package.json");
  pack_cmd->add_option("DIR", pack_dir, "the folder whose contents install under --prefix")
      ->required();
  pack_cmd->add_option("--name", pack.name, "package name")->required();
  pack_cmd->add_option("--version", pack.version, "version")->required();
  pack_cmd->add_option("--prefix", pack.prefix, "absolute install location, e.g. /opt/fesa/MyClass")
      ->required();
  pack_cmd->add_option("-o,--out", pack.out_dir, "folder for the two files")->capture_default_str();
  pack_cmd->add_option("--level", pack.level, "zstd level (1-19)")->capture_default_str()
      ->check(CLI::Range(1, 19));
  pack_cmd->add_option("--frame-size", pack.frame_size, "target uncompressed bytes per frame")
      ->capture_default_str()->check(CLI::Range(uint64_t{4096}, uint64_t{16} << 20));
  pack_cmd->add_option("--threads", pack.threads, "compression threads (0: one per core)");
  pack_cmd->add_flag("--keep-owners", pack.keep_owners, "keep uid/gid (default: 0)");
  pack_cmd->add_flag("--keep-mtimes", pack.keep_mtimes, "keep modification times (default: 0)");
  std::vector<std::string> service_specs;
  pack_cmd->add_option("--service", service_specs,
                       "a service the package runs: 'NAME=COMMAND ARGS' (COMMAND relative to the "
                       "prefix or absolute; repeatable; DIR/services.toml adds the other fields)");
  std::vector<std::string> matches;
  pack_cmd->add_flag("--configuration", pack.configuration,
                     "a configuration package (published under configuration/): instance files, "
                     "databases, settings");
  pack_cmd->add_option("--fec", pack.fec, "a configuration of this FEC only (under fecs/FEC/configuration/)");
  pack_cmd->add_option("--matches", matches,
                       "NAME@VERSION: the software version this configuration is made for (a FESA "
                       "instance file's class version); assign refuses other versions unless --force");
  pack_cmd->add_flag("--json", json, "print the result as JSON");
  std::string services_file;
  pack_cmd->add_option("--services", services_file,
                       "a services.toml kept outside the tree (default: DIR/services.toml, if there)")
      ->check(CLI::ExistingFile);
  pack_cmd->callback([&] { code = wharf::RunPack(pack_dir, pack, service_specs, services_file, matches, json); });

  wharf::DevDeployArgs dev;
  auto* dev_deploy = app.add_subcommand(
      "dev-deploy", "pack a folder as version dev and install it straight on a FEC (over ssh, or --root DIR "
                    "here), in place of the generation's version until the next generation or "
                    "`wharf-agent drop-dev NAME`; never through the store, services not started");
  dev_deploy->add_option("DIR", dev.dir, "the folder whose contents install under --prefix")
      ->required()->check(CLI::ExistingDirectory);
  dev_deploy->add_option("--name", dev.name, "package name")->required();
  dev_deploy->add_option("--prefix", dev.prefix, "absolute install location (the generation's, for a package it assigns)")
      ->required();
  dev_deploy->add_option("--fec", dev.fec, "the FEC's host name: install over ssh");
  dev_deploy->add_option("--root", dev.root, "a FEC folder on this machine instead (no ssh)");
  dev_deploy->add_option("--ssh", dev.ssh, "the ssh command, e.g. 'ssh -l root' (default: WHARF_SSH, else ssh)");
  dev_deploy->add_option("--remote-agent", dev.remote_agent, "the agent command on the FEC, e.g. 'sudo wharf-agent'")
      ->capture_default_str();
  dev_deploy->add_option("--remote-root", dev.remote_root, "--root of the agent on the FEC (default /)");
  dev_deploy->add_option("--service", dev.service_specs,
                         "a service the package defines: 'NAME=COMMAND ARGS' (as `wharf pack`; not started "
                         "while it is a dev version)");
  dev_deploy->add_option("--level", dev.level, "zstd level (1-19)")->capture_default_str()->check(CLI::Range(1, 19));
  dev_deploy->add_flag("--dry-run", dev.dry_run, "pack, send and check everything on the FEC; change nothing");
  dev_deploy->add_flag("--json", dev.json, "print the FEC's answer as JSON");
  dev_deploy->callback([&] { code = wharf::RunDevDeploy(dev); });

  std::vector<std::string> archives;
  auto* publish = app.add_subcommand("publish", "check archives and add them to the store");
  publish->add_option("FILE", archives, "NAME-VERSION.tar.zst (its .package.json beside it)")
      ->required()->check(CLI::ExistingFile);
  AddStoreOptions(publish, store_args, false);
  publish->add_flag("--dry-run", store_args.dry_run, "check only, write nothing");
  publish->add_option("--deltas", store_args.delta_bases,
                      "write patches of changed big files against this many earlier versions")
      ->capture_default_str()->check(CLI::Range(0, 10));
  AddPruneOptions(publish, store_args, prune, no_prune);
  publish->callback([&] {
    ResolvePrune(store_args, prune, no_prune);
    code = wharf::RunPublish(archives, store_args);
  });

  std::string fec;
  std::vector<std::string> items;
  auto* assign = app.add_subcommand("assign", "put package versions on a FEC (a new generation)");
  assign->add_option("FEC", fec, "FEC name")->required();
  assign->add_option("NAME@VERSION", items, "packages to assign")->required();
  AddStoreOptions(assign, store_args, true);
  assign->add_flag("--force", store_args.force,
                   "accept a configuration made for another software version (recorded in the generation)");
  AddPruneOptions(assign, store_args, prune, no_prune);
  assign->callback([&] {
    ResolvePrune(store_args, prune, no_prune);
    code = wharf::RunAssign(fec, items, store_args);
  });

  std::string persist_interval = "1h";
  bool persist_none = false;
  auto* persist = app.add_subcommand(
      "persist", "the FEC's persistent data: paths its agent snapshots to the store and restores at boot");
  persist->add_option("FEC", fec, "FEC name")->required();
  persist->add_option("PATH", items, "absolute paths on the FEC (folders or files) to keep across reboots");
  persist->add_option("--interval", persist_interval, "time between snapshots: 15m, 1h, 1d")->capture_default_str();
  persist->add_flag("--none", persist_none, "declare no persistent data (snapshots already taken stay)");
  AddStoreOptions(persist, store_args, true);
  persist->callback([&] { code = wharf::RunPersist(fec, items, persist_interval, persist_none, store_args); });

  auto* unassign = app.add_subcommand("unassign", "take packages off a FEC (a new generation)");
  unassign->add_option("FEC", fec, "FEC name")->required();
  unassign->add_option("NAME", items, "package names")->required();
  AddStoreOptions(unassign, store_args, true);
  unassign->callback([&] { code = wharf::RunUnassign(fec, items, store_args); });

  std::optional<uint64_t> to;
  auto* rollback = app.add_subcommand(
      "rollback", "publish a new generation with the packages of an earlier one");
  rollback->add_option("FEC", fec, "FEC name")->required();
  rollback->add_option("--to", to, "generation number to restore (default: the last one with "
                                   "other packages)");
  AddStoreOptions(rollback, store_args, true);
  rollback->callback([&] { code = wharf::RunRollback(fec, to, store_args); });

  std::string service_name;
  auto* service = app.add_subcommand("service", "per-FEC settings of the services packages define");
  service->require_subcommand(1);
  auto* service_set = service->add_subcommand(
      "set", "set (KEY=VALUE) or clear (KEY=) settings of one service on a FEC: a new generation");
  service_set->add_option("FEC", fec, "FEC name")->required();
  service_set->add_option("SERVICE", service_name, "service name")->required();
  service_set->add_option("KEY=VALUE", items,
                          "command, args, workdir, user, group, restart (always|on-failure|never), "
                          "holdoff, stop_signal, grace, level, dev (true|false), env.NAME")->required();
  AddStoreOptions(service_set, store_args, true);
  service_set->callback([&] { code = wharf::RunServiceSet(fec, service_name, items, store_args); });

  auto* refresh = app.add_subcommand(
      "refresh", "re-sign FECs' current packages with a later expiry (for a daily timer)");
  refresh->add_option("FEC", items, "FEC names (default: every FEC)");
  AddStoreOptions(refresh, store_args, true);
  refresh->callback([&] { code = wharf::RunRefresh(items, store_args); });

  std::string store_lifetime;
  auto* store_cmd = app.add_subcommand(
      "store", "the store's settings: offline (a DVD or copied folder FECs boot from) or online");
  store_cmd->require_subcommand(1);
  auto* store_show = store_cmd->add_subcommand("show", "whether the store is offline, and its generations' lifetime");
  AddStoreOptions(store_show, store_args, false);
  store_show->callback([&] { code = wharf::RunStoreMode(std::nullopt, "", store_args); });
  auto* store_offline = store_cmd->add_subcommand(
      "offline", "mark the store offline: every generation written for it (now: each FEC's current one, "
                 "re-signed) is signed offline and lives --expires-in (default 10y)");
  AddStoreOptions(store_offline, store_args, false);
  store_offline->add_option("--key", store_args.key, "the signing key (NAME.key; or WHARF_KEY)");
  store_offline->add_option("--expires-in", store_lifetime, "lifetime of its generations: 10y, 3650d (default: "
                                                            "as set before, else 10y)");
  store_offline->add_flag("--dry-run", store_args.dry_run, "print what it would re-sign, change nothing");
  store_offline->callback([&] { code = wharf::RunStoreMode(true, store_lifetime, store_args); });
  auto* store_online = store_cmd->add_subcommand(
      "online", "mark the store online again: each FEC's current generation re-signed without the offline marker");
  AddStoreOptions(store_online, store_args, false);
  store_online->add_option("--key", store_args.key, "the signing key (NAME.key; or WHARF_KEY)");
  store_online->add_option("--expires-in", store_args.expires_in, "lifetime of the re-signed generations")
      ->capture_default_str();
  store_online->add_flag("--dry-run", store_args.dry_run, "print what it would re-sign, change nothing");
  store_online->callback([&] { code = wharf::RunStoreMode(false, "", store_args); });

  auto* show = app.add_subcommand("show", "a FEC's current generation and its history");
  show->add_option("FEC", fec, "FEC name")->required();
  AddStoreOptions(show, store_args, false);
  show->callback([&] { code = wharf::RunShow(fec, store_args); });

  bool packages = false;
  auto* list = app.add_subcommand("list", "FECs and their generations (or --packages)");
  list->add_flag("--packages", packages, "list published packages and versions instead");
  AddStoreOptions(list, store_args, false);
  list->callback([&] { code = wharf::RunList(store_args, packages); });

  wharf::InitEdit init_edit;
  std::string init_file, init_fec;
  auto* init = app.add_subcommand("init", "a FEC's boot scripts, run after activation in name order");
  init->require_subcommand(1);
  auto add_init_common = [&](CLI::App* cmd) {
    cmd->add_option("--timeout", init_edit.timeout, "seconds before the script is killed (default 60)")
        ->check(CLI::Range(1, 86400));
    cmd->add_option("--on-failure", init_edit.on_failure, "stop or continue with the scripts after a failing one")
        ->check(CLI::IsMember({"stop", "continue"}));
    AddStoreOptions(cmd, store_args, true);
  };
  auto* init_add = init->add_subcommand("add", "store FILE as a script of FEC (or of `global`, for FECs to link)");
  init_add->add_option("FEC", init_fec, "FEC name, or global")->required();
  init_add->add_option("FILE", init_file, "the script")->required()->check(CLI::ExistingFile);
  init_add->add_option("--name", init_edit.name, "its name (default: the file's name); names set the order");
  add_init_common(init_add);
  init_add->callback([&] {
    init_edit.kind = wharf::InitEdit::kAdd;
    init_edit.file = init_file;
    if (init_edit.name.empty()) init_edit.name = init_file.substr(init_file.rfind('/') + 1);
    code = wharf::RunInitEdit(init_fec, init_edit, store_args);
  });
  auto* init_link = init->add_subcommand("link", "run a global script on FEC (stored once)");
  init_link->add_option("FEC", init_fec, "FEC name")->required();
  init_link->add_option("SCRIPT", init_edit.name, "global script name")->required();
  add_init_common(init_link);
  init_link->callback([&] {
    init_edit.kind = wharf::InitEdit::kLink;
    code = wharf::RunInitEdit(init_fec, init_edit, store_args);
  });
  auto* init_remove = init->add_subcommand("remove", "stop running a script on FEC");
  init_remove->add_option("FEC", init_fec, "FEC name")->required();
  init_remove->add_option("SCRIPT", init_edit.name, "script name")->required();
  add_init_common(init_remove);
  init_remove->callback([&] {
    init_edit.kind = wharf::InitEdit::kRemove;
    code = wharf::RunInitEdit(init_fec, init_edit, store_args);
  });

  std::string snapshot_id;
  auto* data = app.add_subcommand("data", "a FEC's persistent data snapshots in the store");
  data->require_subcommand(1);
  auto* data_list = data->add_subcommand("list", "the FEC's snapshots, newest first; * marks the latest");
  data_list->add_option("FEC", fec, "FEC name")->required();
  AddStoreOptions(data_list, store_args, false);
  data_list->callback([&] { code = wharf::RunDataList(fec, store_args); });
  auto* data_restore = data->add_subcommand(
      "restore", "make a snapshot the latest: the FEC (e.g. replaced hardware) restores it at its next boot");
  data_restore->add_option("FEC", fec, "FEC name")->required();
  data_restore->add_option("--snapshot", snapshot_id, "snapshot id from `wharf data list`")->required();
  AddStoreOptions(data_restore, store_args, false);
  data_restore->callback([&] { code = wharf::RunDataRestore(fec, snapshot_id, store_args); });

  int gc_keep = 0, gc_generations = 0;
  auto* gc = app.add_subcommand("gc", "remove old package versions no FEC uses (keeps the newest --keep)");
  gc->add_option("--keep", gc_keep, "versions of each package to keep (default: the store's retention, 3)")
      ->check(CLI::Range(1, 1000));
  gc->add_option("--generations", gc_generations,
                 "releases of each FEC kept for rollback: its generations back to the one where the "
                 "(G+1)-th different release (packages, service settings, boot scripts) begins (default: the store's retention, 3: the agents' `keep`)")
      ->check(CLI::Range(1, 1000));
  AddStoreOptions(gc, store_args, false);
  gc->add_flag("--dry-run", store_args.dry_run, "print what would be removed, remove nothing");
  gc->callback([&] { code = wharf::RunGc(gc_keep, gc_generations, store_args); });

  std::optional<int> retention_keep, retention_generations;
  std::optional<bool> retention_prune;
  auto* retention = app.add_subcommand(
      "retention", "the store's retention: versions kept per package, releases kept per FEC for rollback, "
                   "and whether publish and assign prune (shows it; changes what is given)");
  retention->add_option("--keep", retention_keep, "versions of each package to keep, besides those in use")
      ->check(CLI::Range(1, 1000));
  retention->add_option("--generations", retention_generations,
                        "releases (packages, service settings, boot scripts) of each FEC kept for rollback")
      ->check(CLI::Range(1, 1000));
  retention->add_option("--prune-on-release", retention_prune,
                        "true: every publish and assign prunes the released packages (as `--prune`)");
  AddStoreOptions(retention, store_args, false);
  retention->callback(
      [&] { code = wharf::RunRetention(retention_keep, retention_generations, retention_prune, store_args); });

  auto* status = app.add_subcommand("status", "the fleet from the server: each FEC's wanted and running "
                                               "generation, last heartbeat, services, errors");
  status->add_option("FEC", fec, "one FEC (default: all)");
  AddServerOptions(status, store_args);
  status->add_flag("--json", store_args.json, "print the result as JSON on stdout");
  status->callback([&] { code = wharf::RunStatus(fec, store_args); });

  std::string at;
  auto* history = app.add_subcommand("history", "a FEC's generations (marked when they cannot be rolled back "
                                                 "to), activations and dev versions, or what it ran at a "
                                                 "time (--at, dev versions included; from the server)");
  history->add_option("FEC", fec, "FEC name")->required();
  history->add_option("--at", at, "a UTC time, e.g. 2026-11-24T03:00:00Z: what ran then");
  history->add_option("--store", store_args.store, "a store folder: its generations only (or WHARF_STORE)");
  AddServerOptions(history, store_args);
  history->add_flag("--json", store_args.json, "print the result as JSON on stdout");
  history->callback([&] { code = wharf::RunHistory(fec, at, store_args); });

  std::string target;
  int limit = 100;
  auto* audit = app.add_subcommand("audit", "who did what, when and from where (from the server)");
  audit->add_option("--target", target, "only entries about this FEC or NAME@VERSION");
  audit->add_option("--limit", limit, "newest entries to show")->capture_default_str()->check(CLI::Range(1, 100000));
  AddServerOptions(audit, store_args);
  audit->add_flag("--json", store_args.json, "print the result as JSON on stdout");
  audit->callback([&] { code = wharf::RunAudit(target, limit, store_args); });

  wharf::ServeArgs serve_args;
  auto* serve = app.add_subcommand(
      "serve", "the central server: the store over HTTP at /, the API under /api/v1, /metrics");
  serve->add_option("--store", serve_args.store, "the store folder (made if missing)")
      ->required()->envname("WHARF_STORE");
  serve->add_option("--listen", serve_args.listen, "HOST:PORT to listen on ([::]:8080 for IPv6)")
      ->capture_default_str();
  serve->add_option("--key", serve_args.key, "signing key for generations (default STATE/signing.key)");
  serve->add_option("--state", serve_args.state, "the server's private folder (0700): signing key, records.db with the tokens, uploads; "
                    "default STORE.state, beside the store and never in it (a STORE/.wharf of an older "
                    "wharf is moved there)");
  serve->add_option("--threads", serve_args.threads, "server threads")->capture_default_str()
      ->check(CLI::Range(1u, 64u));
  serve->add_option("--tls-cert", serve_args.tls_cert, "PEM certificate: serve HTTPS");
  serve->add_option("--tls-key", serve_args.tls_key, "PEM private key of --tls-cert");
  serve->add_option("--max-upload", serve_args.max_upload, "largest publish upload in bytes")
      ->capture_default_str();
  serve->add_option("--silent-after", serve_args.silent_after,
                    "seconds without a heartbeat before a FEC shows as silent")->capture_default_str();
  serve->add_option("--keep-snapshots", serve_args.keep_snapshots, "persistent data snapshots kept per FEC")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  serve->add_option("--header-timeout", serve_args.header_timeout,
                    "seconds a client has to send a whole request header (0: no limit)")->capture_default_str();
  serve->add_option("--per-ip-connections", serve_args.per_ip_connections,
                    "connections open at once from one address (0: no limit)")->capture_default_str();
  serve->add_option("--pending-connections", serve_args.pending_connections,
                    "connections still sending their header; past this the oldest is cut (at most half the connection limit)")
      ->capture_default_str();
  serve->add_option("--min-body-rate", serve_args.min_body_rate,
                    "bytes/s a request body must average after --header-timeout (0: no limit)")
      ->capture_default_str();
  serve->add_option("--snapshot-max-data", serve_args.snapshot_max_data,
                    "largest unpacked size in bytes of one persistent data snapshot")->capture_default_str();
  serve->add_option("--snapshot-quota", serve_args.snapshot_quota,
                    "bytes of persistent data snapshots kept per FEC (0: no quota)")->capture_default_str();
  serve->add_option("--audit-days", serve_args.audit_days, "days the audit log is kept (0: forever)")
      ->capture_default_str()->check(CLI::Range(0, 100000));
  serve->add_option("--heartbeat-days", serve_args.heartbeat_days,
                    "days of heartbeat history (activations) kept (0: forever)")
      ->capture_default_str()->check(CLI::Range(0, 100000));
  serve->add_option("--refresh-before", serve_args.refresh_before,
                    "re-sign a FEC's current generation when it expires within this (0: never; the server "
                    "looks at start and every --refresh-every)")->capture_default_str();
  serve->add_option("--refresh-every", serve_args.refresh_every, "how often the server looks for generations to re-sign")
      ->capture_default_str();
  serve->add_option("--refresh-expires-in", serve_args.refresh_expires_in,
                    "lifetime of the generations the server re-signs (more than --refresh-before)")->capture_default_str();
  serve->add_flag("--rebuild-db", serve_args.rebuild_db,
                  "re-index the store's generations (a damaged database is moved aside first)");
  serve->callback([&] { code = wharf::RunServe(serve_args); });

  wharf::TokenArgs token_args;
  auto* token = app.add_subcommand("token", "API tokens of the server (run on the server host)");
  token->require_subcommand(1);
  auto add_token_store = [&](CLI::App* cmd) {
    cmd->add_option("--store", token_args.store, "the server's store folder (or WHARF_STORE)");
    cmd->add_option("--state", token_args.state, "the server's --state folder (default STORE.state)");
    cmd->add_flag("--json", token_args.json, "print the result as JSON on stdout");
  };
  auto* token_create = token->add_subcommand("create", "make a token and print it (only this once)");
  token_create->add_option("NAME", token_args.name, "who or what holds it, e.g. ci or fec01")->required();
  token_create->add_option("--role", token_args.role, "admin, publisher, operator, maintainer (operator + service settings, boot scripts, persistent folders: what runs as root on FECs) or agent")->required();
  token_create->add_option("--fec", token_args.fec, "agent tokens: the one FEC it reports for");
  add_token_store(token_create);
  token_create->callback([&] { code = wharf::RunTokenCreate(token_args); });
  auto* token_list = token->add_subcommand("list", "tokens, their roles and whether revoked");
  add_token_store(token_list);
  token_list->callback([&] { code = wharf::RunTokenList(token_args); });
  auto* token_revoke = token->add_subcommand("revoke", "stop a token from working");
  token_revoke->add_option("NAME", token_args.name, "token name")->required();
  add_token_store(token_revoke);
  token_revoke->callback([&] { code = wharf::RunTokenRevoke(token_args); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int exit = app.exit(e);
    return exit == 0 ? 0 : wharf::kExitUsage;
  }
  return code;
}
