#include "cli/serve_cli.h"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "archive/names.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/strings.h"
#include "cli/output.h"
#include "server/api.h"
#include "server/http.h"
#include "server/records.h"

namespace wharf {
namespace {

constexpr const char* kProgram = "wharf";

int Failed(const Error& error, int code = kExitFailure) { return ReportError(kProgram, error, code); }

std::string StateDir(const std::string& store, const std::string& state) {
  return state.empty() ? JoinPath(AbsolutePath(store), ".wharf") : AbsolutePath(state);
}

Result<std::unique_ptr<Records>> OpenRecords(std::string store, const std::string& state) {
  if (store.empty() && std::getenv("WHARF_STORE")) store = std::getenv("WHARF_STORE");
  if (store.empty())
    return Fail(ErrorCode::kInvalidArgument, "which server? pass --store DIR (the folder `wharf serve` serves)");
  if (!IsDirectory(JoinPath(AbsolutePath(store), "software")))
    return Fail(ErrorCode::kNotFound, AbsolutePath(store) + " is not a wharf store; check --store");
  std::string dir = StateDir(store, state);
  WHARF_TRY(MakeDirs(dir));
  ::chmod(dir.c_str(), 0700);
  return Records::Open(JoinPath(dir, "records.db"));
}

// "HOST:PORT", "[V6]:PORT" or ":PORT" (all addresses).
bool ParseListen(const std::string& text, std::string& host, uint16_t& port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  host = text.substr(0, colon);
  if (host.empty()) host = "0.0.0.0";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned char addr[16];
  if (::inet_pton(AF_INET, host.c_str(), addr) != 1 && ::inet_pton(AF_INET6, host.c_str(), addr) != 1)
    return false;  // an address, not a name: the server binds exactly where it is told
  std::string digits = text.substr(colon + 1);
  if (digits.empty() || digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos)
    return false;
  unsigned long value = std::stoul(digits);
  if (value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace

int RunServe(const ServeArgs& args) {
  std::string host;
  uint16_t port = 0;
  if (!ParseListen(args.listen, host, port))
    return Failed({ErrorCode::kInvalidArgument,
                   "--listen " + args.listen + ": expected IP:PORT, e.g. 0.0.0.0:8080, 127.0.0.1:8080 or [::]:8080"},
                  kExitUsage);
  auto store = Store::Open(args.store, true);
  if (!store) return Failed(store.error());
  std::string state = StateDir(args.store, args.state);
  if (auto made = MakeDirs(state); !made) return Failed(made.error());
  ::chmod(state.c_str(), 0700);
  std::string key_path = args.key.empty() ? JoinPath(state, "signing.key") : args.key;
  if (!PathExists(key_path))
    return Failed({ErrorCode::kNotFound, "no signing key at " + key_path + ": pass --key NAME.key, or run "
                                         "`wharf keygen --out " + JoinPath(state, "signing") + "`"});
  auto key = PrivateKey::Load(key_path);
  if (!key) return Failed(key.error());

  std::string db_path = JoinPath(state, "records.db");
  auto records = Records::Open(db_path);
  if (!records && args.rebuild_db) {
    std::string aside = db_path + ".broken-" + std::to_string(SystemClock().Now());
    if (std::rename(db_path.c_str(), aside.c_str()) == 0) {
      Note("wharf serve: moved the unreadable database aside to " + aside);
      for (const char* suffix : {"-wal", "-shm"}) std::remove((db_path + suffix).c_str());
      records = Records::Open(db_path);
    }
  }
  if (!records) return Failed(records.error());

  std::string uploads = JoinPath(state, "uploads");
  (void)RemoveTree(uploads);  // uploads cut by a stop or a crash: never visible, now gone
  if (auto made = MakeDirs(uploads); !made) return Failed(made.error());

  SystemClock clock;
  ApiConfig config;
  config.uploads_dir = uploads;
  config.max_upload = args.max_upload;
  config.keep_snapshots = args.keep_snapshots;
  config.silent_after_seconds = args.silent_after;
  config.snapshot_max_data = args.snapshot_max_data;
  config.snapshot_quota = args.snapshot_quota;
  Api api(std::move(*store), **records, std::move(*key), config, clock);
  if (args.rebuild_db) {
    if (auto cleared = (*records)->ClearGenerations(); !cleared) return Failed(cleared.error());
  }
  if (auto imported = api.ImportGenerations(); !imported) return Failed(imported.error());

  http::ServerOptions options;
  options.host = host;
  options.port = port;
  options.threads = args.threads;
  options.header_timeout_seconds = args.header_timeout;
  options.per_ip_connection_limit = args.per_ip_connections;
  options.pending_connection_limit = args.pending_connections;
  options.min_body_rate = args.min_body_rate;
  if (!args.tls_cert.empty() || !args.tls_key.empty()) {
    if (args.tls_cert.empty() || args.tls_key.empty())
      return Failed({ErrorCode::kInvalidArgument, "HTTPS needs both --tls-cert and --tls-key"}, kExitUsage);
    auto cert = ReadFile(args.tls_cert, 1 << 20);
    if (!cert) return Failed(cert.error());
    auto tls_key = ReadFile(args.tls_key, 1 << 20);
    if (!tls_key) return Failed(tls_key.error());
    options.tls_cert_pem = *cert;
    options.tls_key_pem = *tls_key;
  }

  // A fleet keeps many connections open: take every file descriptor the system allows.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }

  // Signals are taken by this thread alone: block them before any server thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  http::Router router;
  api.Register(router);
  auto server = http::Server::Start(options, std::move(router),
                                    [&api](const std::string& route, int status, uint64_t bytes) {
                                      api.metrics().Observe(route, status, bytes);
                                    });
  if (!server) return Failed(server.error());
  std::string scheme = options.tls_cert_pem.empty() ? "http" : "https";
  std::string shown_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  std::fprintf(stderr, "wharf serve: %s on %s://%s:%u (API under /api/v1, state in %s)\n",
               AbsolutePath(args.store).c_str(), scheme.c_str(), shown_host.c_str(),
               static_cast<unsigned>((*server)->port()), state.c_str());
  std::fflush(stderr);
  // Retention: at the start, then hourly until a signal comes.
  auto prune = [&] {
    int64_t now = clock.Now();
    auto pruned = (*records)->Prune(args.audit_days ? now - int64_t{args.audit_days} * 86400 : 0,
                                    args.heartbeat_days ? now - int64_t{args.heartbeat_days} * 86400 : 0);
    if (!pruned) Note("wharf serve: retention: " + pruned.error().message);
  };
  int received = 0;
  for (;;) {
    prune();
    timespec hour{3600, 0};
    received = sigtimedwait(&signals, nullptr, &hour);
    if (received > 0) break;
  }
  std::fprintf(stderr, "wharf serve: stopping (signal %d)\n", received);
  (*server)->Stop();
  return kExitOk;
}

int RunTokenCreate(const TokenArgs& args) {
  auto role = ParseRole(args.role);
  if (!role)
    return Failed({ErrorCode::kInvalidArgument,
                   "--role " + args.role + ": expected admin, publisher, operator, maintainer or agent"}, kExitUsage);
  if (*role == Role::kAgent && args.fec.empty())
    return Failed({ErrorCode::kInvalidArgument, "an agent token is for one FEC: pass --fec NAME"}, kExitUsage);
  if (*role != Role::kAgent && !args.fec.empty())
    return Failed({ErrorCode::kInvalidArgument, "--fec is only for agent tokens"}, kExitUsage);
  if (!args.fec.empty()) {
    if (auto valid = ValidateFecName(args.fec); !valid) return Failed(valid.error(), kExitUsage);
  }
  if (args.name.empty() || args.name.size() > 64 ||
      args.name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-") !=
          std::string::npos)
    return Failed({ErrorCode::kInvalidArgument,
                   "token name " + args.name + ": use letters, digits and ._@- (64 at most)"}, kExitUsage);
  auto records = OpenRecords(args.store, args.state);
  if (!records) return Failed(records.error());
  auto secret = (*records)->CreateToken(args.name, *role, args.fec, SystemClock().Now());
  if (!secret) return Failed(secret.error());
  if (args.json) {
    nlohmann::ordered_json j{{"name", args.name}, {"role", args.role}, {"fec", args.fec}, {"token", *secret}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s\n", secret->c_str());
    std::fprintf(stderr, "token %s (%s%s) created; it is shown only this once\n", args.name.c_str(),
                 args.role.c_str(), args.fec.empty() ? "" : (" for " + args.fec).c_str());
  }
  return kExitOk;
}

int RunTokenList(const TokenArgs& args) {
  auto records = OpenRecords(args.store, args.state);
  if (!records) return Failed(records.error());
  auto tokens = (*records)->Tokens();
  if (!tokens) return Failed(tokens.error());
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  if (!args.json) std::printf("%-24s %-10s %-16s %-21s %s\n", "NAME", "ROLE", "FEC", "CREATED", "REVOKED");
  for (const auto& t : *tokens) {
    if (args.json) {
      out.push_back({{"name", t.name}, {"role", RoleName(t.role)}, {"fec", t.fec},
                     {"created", FormatTime(t.created)},
                     {"revoked", t.revoked ? nlohmann::ordered_json(FormatTime(*t.revoked)) : nullptr}});
    } else {
      std::printf("%-24s %-10s %-16s %-21s %s\n", t.name.c_str(), RoleName(t.role),
                  t.fec.empty() ? "-" : t.fec.c_str(), FormatTime(t.created).c_str(),
                  t.revoked ? FormatTime(*t.revoked).c_str() : "-");
    }
  }
  if (args.json) std::printf("%s\n", out.dump(2).c_str());
  return kExitOk;
}

int RunTokenRevoke(const TokenArgs& args) {
  auto records = OpenRecords(args.store, args.state);
  if (!records) return Failed(records.error());
  if (auto revoked = (*records)->RevokeToken(args.name, SystemClock().Now()); !revoked)
    return Failed(revoked.error());
  std::fprintf(stderr, "token %s revoked\n", args.name.c_str());
  return kExitOk;
}

}  // namespace wharf
