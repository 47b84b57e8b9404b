#include "cli/serve_cli.h"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "archive/names.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/strings.h"
#include "cli/output.h"
#include "crypto/sha256.h"
#include "crypto/sign.h"
#include "ops/ops.h"
#include "server/api.h"
#include "server/http.h"
#include "server/records.h"

namespace wharf {
namespace {

constexpr const char* kProgram = "wharf";

int Failed(const Error& error, int code = kExitFailure) { return ReportError(kProgram, error, code); }

// The server's state (signing key, records.db with the tokens, uploads) lives beside the
// store, never in it: copying the store to a mirror or serving it with any web server must
// not hand the key or the database out.
std::string StateDir(const std::string& store, const std::string& state) {
  return state.empty() ? AbsolutePath(store) + ".state" : AbsolutePath(state);
}

Status MakeStateDir(const std::string& state) {
  WHARF_TRY(MakeDirs(state, 0700));
  if (::chmod(state.c_str(), 0700) != 0) return IoError("chmod", state);
  return {};
}

// A copy of the file, folder or link `from` at the new path `to`, modes kept, each file's
// bytes compared with the original's.
Status CopyVerified(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto status = fs::symlink_status(from, ec);
  if (ec) return IoError("inspect", from);
  if (fs::is_symlink(status)) {
    fs::copy_symlink(from, to, ec);
  } else if (fs::is_directory(status)) {
    WHARF_TRY(MakeDirs(to, 0700));
    auto names = ListDir(from);
    if (!names) return std::unexpected(names.error());
    for (const auto& name : *names) WHARF_TRY(CopyVerified(JoinPath(from, name), JoinPath(to, name)));
  } else {
    WHARF_TRY(CopyFile(from, to));
    auto original = Sha256File(from), copy = Sha256File(to);
    if (!original || !copy || original->sha256 != copy->sha256)
      return Fail(ErrorCode::kIo, to + ": the copy of " + from + " differs from it; check the disk, then move it by hand");
  }
  if (!ec) fs::permissions(to, status.permissions(), fs::perm_options::replace | fs::perm_options::nofollow, ec);
  if (ec && !fs::is_symlink(status)) return Fail(ErrorCode::kIo, "copy " + from + " to " + to + ": " + ec.message());
  return {};
}

// rename(2), or across file systems a verified copy under a temporary name, then the original
// removed.
Status Move(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) == 0) return SyncPath(Dirname(to));
  if (errno != EXDEV) return IoError("move " + from + " to", to);
  std::string temp = TempSibling(to);
  if (auto copied = CopyVerified(from, temp); !copied) {
    (void)RemoveTree(temp);
    return copied;
  }
  WHARF_TRY(RenameDurable(temp, to));
  return RemoveTree(from);
}

// Before --state, the state lived in <store>/.wharf beside the store lock. Moves all of it
// but the lock to `state`; resumable, so a move cut short goes on at the next start.
Status MoveLegacyState(const std::string& store, const std::string& state) {
  std::string legacy = JoinPath(AbsolutePath(store), ".wharf");
  if (legacy == state || !IsDirectory(legacy)) return {};
  auto names = ListDir(legacy);
  if (!names) return std::unexpected(names.error());
  std::vector<std::string> moving;
  for (const auto& name : *names) {
    if (name == "lock") continue;  // the store's own lock: not the server's
    if (name == "uploads" && PathExists(JoinPath(state, name))) {
      WHARF_TRY(RemoveTree(JoinPath(legacy, name)));  // cut uploads, never used again
      continue;
    }
    if (PathExists(JoinPath(state, name)))
      return Fail(ErrorCode::kAlreadyExists,
                  JoinPath(legacy, name) + " and " + JoinPath(state, name) +
                      " both exist: the server's state is in two places; keep the one in use in " + state +
                      ", remove the other from the store, and start again");
    moving.push_back(name);
  }
  if (moving.empty()) return {};
  WHARF_TRY(MakeStateDir(state));
  for (const auto& name : moving) WHARF_TRY(Move(JoinPath(legacy, name), JoinPath(state, name)));
  Note("wharf: moved the server's state from " + legacy + " to " + state + ", out of the store it serves");
  return {};
}

bool Inside(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

// Whether the regular file `path` is a private key: named *.key, the signing key itself, or
// content that parses as one.
bool HoldsPrivateKey(const std::filesystem::path& path, const std::filesystem::path& signing_key) {
  std::error_code ec;
  if (path.extension() == ".key" || std::filesystem::equivalent(path, signing_key, ec)) return true;
  std::ifstream in(path, std::ios::binary);
  std::string head(64 << 10, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  return IsPrivateKey(head);
}

// Whatever serves or copies the store (this server, nginx, rsync to a mirror, a DVD) would
// hand out a state folder inside it.
Status RefuseStateInStore(const std::string& store, const std::string& state) {
  std::error_code ec;
  std::string root = std::filesystem::weakly_canonical(store, ec).string();
  if (ec) return IoError("resolve", store);
  std::string state_real = std::filesystem::weakly_canonical(state, ec).string();
  if (!ec && Inside(state_real, root))
    return Fail(ErrorCode::kUnsafe, "the state folder " + state + " lies inside the store " + root +
                                        ", which anyone who can read the store could copy; pass a --state outside "
                                        "it (the default is " + root + ".state)");
  return {};
}

// The state folder, made (and an older store's state moved there); refused inside the
// store, for every command that opens it (serve and the token commands alike).
Result<std::string> PrepareStateDir(const std::string& store, const std::string& state_arg) {
  std::string state = StateDir(store, state_arg);
  WHARF_TRY(RefuseStateInStore(store, state));
  WHARF_TRY(MoveLegacyState(store, state));
  WHARF_TRY(MakeStateDir(state));
  return state;
}

// Refuses to serve a tree that holds a private key, for the same reason.
Status RefuseKeysInStore(const std::string& store, const std::string& state, const std::string& key_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string root = fs::weakly_canonical(store, ec).string();
  if (ec) return IoError("resolve", store);
  auto where = [&](const std::string& found) {
    return Fail(ErrorCode::kUnsafe,
                "refusing to serve " + root + ": it holds a private key at " + found +
                    ", which whoever reads or copies the store gets; move it out (the server's own key to " +
                    JoinPath(state, "signing.key") + "), and make a new key if the store was served or copied with it");
  };
  std::string key_real = fs::weakly_canonical(key_path, ec).string();
  if (!ec && Inside(key_real, root)) return where(key_real);
  for (fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end; !ec && it != end;
       it.increment(ec)) {
    // A link is followed to a file (nginx would serve it), never into a folder (no loops).
    std::error_code broken;  // a dangling link is no file to serve, not an error
    if (it->is_symlink(broken) && it->is_directory(broken)) continue;
    if (it->is_regular_file(broken) && HoldsPrivateKey(it->path(), key_path)) return where(it->path().string());
  }
  if (ec) return Fail(ErrorCode::kIo, "cannot look through " + root + " for private keys: " + ec.message());
  return {};
}

Result<std::unique_ptr<Records>> OpenRecords(std::string store, const std::string& state) {
  if (store.empty() && std::getenv("WHARF_STORE")) store = std::getenv("WHARF_STORE");
  if (store.empty())
    return Fail(ErrorCode::kInvalidArgument, "which server? pass --store DIR (the folder `wharf serve` serves)");
  if (!IsDirectory(JoinPath(AbsolutePath(store), "software")))
    return Fail(ErrorCode::kNotFound, AbsolutePath(store) + " is not a wharf store; check --store");
  auto dir = PrepareStateDir(store, state);
  if (!dir) return std::unexpected(dir.error());
  return Records::Open(JoinPath(*dir, "records.db"));
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

// The automatic refresh's timing: none when --refresh-before is 0.
struct RefreshTiming {
  int64_t before = 0, every = 0, lifetime = 0;
};
Result<RefreshTiming> ParseRefreshTiming(const ServeArgs& args) {
  RefreshTiming timing;
  if (args.refresh_before == "0") return timing;
  auto before = ops::ParseDuration(args.refresh_before, "--refresh-before");
  if (!before) return std::unexpected(before.error());
  auto every = ops::ParseDuration(args.refresh_every, "--refresh-every");
  if (!every) return std::unexpected(every.error());
  auto lifetime = ops::ParseDuration(args.refresh_expires_in, "--refresh-expires-in");
  if (!lifetime) return std::unexpected(lifetime.error());
  if (*lifetime <= *before)
    return Fail(ErrorCode::kInvalidArgument,
                "--refresh-expires-in " + args.refresh_expires_in + " must be longer than --refresh-before " +
                    args.refresh_before + ", or every look would re-sign again");
  timing = {*before, *every, *lifetime};
  return timing;
}

}  // namespace

int RunServe(const ServeArgs& args) {
  std::string host;
  uint16_t port = 0;
  if (!ParseListen(args.listen, host, port))
    return Failed({ErrorCode::kInvalidArgument,
                   "--listen " + args.listen + ": expected IP:PORT, e.g. 0.0.0.0:8080, 127.0.0.1:8080 or [::]:8080"},
                  kExitUsage);
  auto refresh = ParseRefreshTiming(args);
  if (!refresh) return Failed(refresh.error(), kExitUsage);
  auto store = Store::Open(args.store, true);
  if (!store) return Failed(store.error());
  auto prepared = PrepareStateDir(args.store, args.state);
  if (!prepared) return Failed(prepared.error());
  std::string state = *prepared;
  std::string key_path = args.key.empty() ? JoinPath(state, "signing.key") : args.key;
  if (auto clean = RefuseKeysInStore(store->root(), state, key_path); !clean) return Failed(clean.error());
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
    auto tls_key = ReadPrivateKeyFile(args.tls_key);
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
  // No lock-out by expiry: generations close to expiring are re-signed at the start, then
  // every --refresh-every.
  if (refresh->before > 0)
    std::fprintf(stderr, "wharf serve: re-signing generations that expire within %llds, every %llds\n",
                 static_cast<long long>(refresh->before), static_cast<long long>(refresh->every));
  auto refresh_expiring = [&] {
    for (const auto& line : api.RefreshExpiring(refresh->before, refresh->lifetime)) Note("wharf serve: " + line);
  };
  int received = 0;
  int64_t next_prune = 0, next_refresh = 0;
  for (;;) {
    int64_t now = clock.Now();
    if (now >= next_prune) {
      prune();
      next_prune = now + 3600;
    }
    if (refresh->before > 0 && now >= next_refresh) {
      refresh_expiring();
      next_refresh = clock.Now() + refresh->every;
    }
    int64_t wake = refresh->before > 0 ? std::min(next_prune, next_refresh) : next_prune;
    timespec wait{std::max<int64_t>(1, wake - clock.Now()), 0};
    received = sigtimedwait(&signals, nullptr, &wait);
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
