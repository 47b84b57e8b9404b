#include "cli/commands.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>

#include "archive/names.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/strings.h"
#include "cli/output.h"
#include "crypto/sign.h"
#include "fetch/api_client.h"
#include "ops/ops.h"
#include "service/definition.h"
#include "store/changes.h"
#include "store/data.h"
#include "store/store.h"

namespace wharf {
namespace {

using nlohmann::ordered_json;
using ops::Json;
constexpr const char* kProgram = "wharf";
constexpr int kGcKeep = 3;

int Failed(const Error& error) { return ReportError(kProgram, error); }

void PrintJson(const ordered_json& j) { std::printf("%s\n", j.dump(2).c_str()); }

std::string PackagesText(const Json& generation) {
  std::string text;
  for (const auto& p : generation["packages"])
    text += (text.empty() ? "" : " ") + p["name"].get<std::string>() + "@" + p["version"].get<std::string>();
  return text.empty() ? "(nothing)" : text;
}

// Where the commands act: a store folder here, or a server's API. Both give the same JSON.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual Result<Json> Publish(const std::string& archive, const std::string& index) = 0;
  virtual Result<Json> Change(const ops::ChangeRequest& request) = 0;
  virtual Result<Json> Show(const std::string& fec) = 0;
  virtual Result<Json> ListFecs() = 0;
  virtual Result<Json> ListPackages() = 0;
  virtual Result<Json> Gc(int keep, int generations) = 0;
  virtual Result<Json> Retention() = 0;
  virtual Result<Json> SetRetention(std::optional<int> keep, std::optional<int> generations,
                                    std::optional<bool> prune_on_release) = 0;
  virtual Result<Json> Init(const std::string& fec, const InitEdit& edit) = 0;
  virtual Result<Json> DataList(const std::string& fec) = 0;
  virtual Result<Json> DataRestore(const std::string& fec, const std::string& id) = 0;
  /// The store's settings; with `offline`, sets them and re-signs every FEC (ops::StoreMode).
  virtual Result<Json> StoreMode(std::optional<bool> offline, std::optional<std::string> lifetime) = 0;
};

class LocalBackend : public Backend {
 public:
  LocalBackend(Store store, std::optional<PrivateKey> key, const StoreArgs& args)
      : store_(std::move(store)), key_(std::move(key)), args_(args) {}
  Result<Json> Publish(const std::string& archive, const std::string& index) override {
    return ops::Publish(store_, archive, index, args_.dry_run, args_.delta_bases, {args_.prune, args_.keep});
  }
  Result<Json> Change(const ops::ChangeRequest& given) override {
    auto options = Options();
    if (!options) return std::unexpected(options.error());
    ops::ChangeRequest request = given;
    request.prune = {args_.prune, args_.keep};
    return ops::Change(store_, request, *options);
  }
  Result<Json> Init(const std::string& fec, const InitEdit& edit) override {
    auto options = Options();
    if (!options) return std::unexpected(options.error());
    return ops::Init(store_, fec, edit, *options);
  }
  Result<Json> Show(const std::string& fec) override { return ops::Show(store_, fec); }
  Result<Json> ListFecs() override { return ops::ListFecs(store_); }
  Result<Json> ListPackages() override { return ops::ListPackages(store_); }
  Result<Json> Gc(int keep, int generations) override {
    return ops::Gc(store_, keep, generations, args_.dry_run);
  }
  Result<Json> Retention() override { return ops::RetentionJson(store_); }
  Result<Json> SetRetention(std::optional<int> keep, std::optional<int> generations,
                            std::optional<bool> prune_on_release) override {
    return ops::SetRetention(store_, keep, generations, prune_on_release);
  }
  Result<Json> DataList(const std::string& fec) override { return ops::DataList(store_, fec); }
  Result<Json> DataRestore(const std::string& fec, const std::string& id) override {
    return ops::DataRestore(store_, fec, id);
  }
  Result<Json> StoreMode(std::optional<bool> offline, std::optional<std::string> lifetime) override {
    std::optional<int64_t> seconds;
    if (lifetime) {
      auto parsed = ops::ParseDuration(*lifetime);
      if (!parsed) return std::unexpected(parsed.error());
      seconds = *parsed;
    }
    auto options = Options();
    if (!options) return std::unexpected(options.error());
    return ops::StoreMode(store_, offline, seconds, *options);
  }

 private:
  Result<ChangeOptions> Options() const {
    auto lifetime = ops::ParseDuration(args_.expires_in);
    if (!lifetime) return std::unexpected(lifetime.error());
    ChangeOptions options;
    options.key = key_ ? &*key_ : nullptr;
    options.now = SystemClock().Now();
    options.lifetime_seconds = *lifetime;
    options.dry_run = args_.dry_run;
    options.force = args_.force;
    return options;
  }

  Store store_;
  std::optional<PrivateKey> key_;
  StoreArgs args_;
};

Result<Json> ParseAnswer(const Result<std::string>& body) {
  if (!body) return std::unexpected(body.error());
  try {
    return Json::parse(*body);
  } catch (const std::exception&) {
    return Fail(ErrorCode::kCorrupt, "the server's answer is not JSON; is --server a wharf server?");
  }
}

class RemoteBackend : public Backend {
 public:
  explicit RemoteBackend(const StoreArgs& args) : client_(args.server, args.token), args_(args) {}
  Result<Json> Publish(const std::string& archive, const std::string& index) override {
    std::string path = "/api/v1/packages?deltas=" + std::to_string(args_.delta_bases);
    if (args_.dry_run) path += "&dry_run=1";
    if (args_.prune) path += *args_.prune ? "&prune=1" : "&prune=0";
    if (args_.keep > 0) path += "&keep=" + std::to_string(args_.keep);
    return ParseAnswer(client_.Upload(path, {{"index", index}, {"archive", archive}}));
  }
  Result<Json> Change(const ops::ChangeRequest& request) override {
    WHARF_TRY(ValidateFecName(request.fec));
    static constexpr const char* kVerbs[] = {"assign", "unassign", "rollback", "refresh", "services/", "persist"};
    Json body{{"expires_in", args_.expires_in}, {"dry_run", args_.dry_run}};
    if (args_.force) body["force"] = true;
    if (request.kind == ops::ChangeKind::kAssign && args_.prune) body["prune"] = *args_.prune;
    if (request.kind == ops::ChangeKind::kAssign && args_.keep > 0) body["keep"] = args_.keep;
    bool service = request.kind == ops::ChangeKind::kServiceSet;
    if (request.kind == ops::ChangeKind::kPersist) {
      body["paths"] = request.items;
      body["interval"] = request.interval;
    } else if (!request.items.empty()) {
      body[service ? "set" : "packages"] = request.items;
    }
    if (request.to) body["to"] = *request.to;
    std::string verb = kVerbs[static_cast<int>(request.kind)];
    if (service) {
      WHARF_TRY(ValidateServiceName(request.service));
      verb += request.service;
    }
    return ParseAnswer(client_.Call("POST", "/api/v1/fecs/" + request.fec + "/" + verb, body.dump()));
  }
  Result<Json> Show(const std::string& fec) override {
    WHARF_TRY(ValidateFecName(fec));
    return ParseAnswer(client_.Call("GET", "/api/v1/fecs/" + fec + "/generation"));
  }
  Result<Json> ListFecs() override { return ParseAnswer(client_.Call("GET", "/api/v1/generations")); }
  Result<Json> ListPackages() override { return ParseAnswer(client_.Call("GET", "/api/v1/packages")); }
  Result<Json> Gc(int keep, int generations) override {
    Json body{{"dry_run", args_.dry_run}};
    if (keep > 0) body["keep"] = keep;
    if (generations > 0) body["generations"] = generations;
    return ParseAnswer(client_.Call("POST", "/api/v1/gc", body.dump()));
  }
  Result<Json> Retention() override { return ParseAnswer(client_.Call("GET", "/api/v1/retention")); }
  Result<Json> SetRetention(std::optional<int> keep, std::optional<int> generations,
                            std::optional<bool> prune_on_release) override {
    Json body = Json::object();
    if (keep) body["keep"] = *keep;
    if (generations) body["generations"] = *generations;
    if (prune_on_release) body["prune_on_release"] = *prune_on_release;
    return ParseAnswer(client_.Call("POST", "/api/v1/retention", body.dump()));
  }
  Result<Json> DataList(const std::string& fec) override {
    WHARF_TRY(ValidateFecName(fec));
    return ParseAnswer(client_.Call("GET", "/api/v1/fecs/" + fec + "/data"));
  }
  Result<Json> DataRestore(const std::string& fec, const std::string& id) override {
    WHARF_TRY(ValidateFecName(fec));
    return ParseAnswer(client_.Call("POST", "/api/v1/fecs/" + fec + "/data/latest", Json{{"snapshot", id}}.dump()));
  }
  Result<Json> StoreMode(std::optional<bool> offline, std::optional<std::string> lifetime) override {
    if (!offline) return ParseAnswer(client_.Call("GET", "/api/v1/store"));
    Json body{{"offline", *offline}, {"expires_in", args_.expires_in}, {"dry_run", args_.dry_run}};
    if (lifetime) body["offline_expires_in"] = *lifetime;
    return ParseAnswer(client_.Call("POST", "/api/v1/store", body.dump()));
  }
  Result<Json> Init(const std::string& fec, const InitEdit& edit) override {
    if (fec != "global") WHARF_TRY(ValidateFecName(fec));
    WHARF_TRY(ValidateInitName(edit.name));
    static constexpr const char* kActions[] = {"add", "link", "remove"};
    Json body{{"action", kActions[edit.kind]}, {"dry_run", args_.dry_run}};
    if (edit.kind == InitEdit::kAdd) {
      auto content = ReadFile(edit.file, 700u << 10);
      if (!content) return std::unexpected(content.error());
      body["content_base64"] = Base64Encode(*content);
    }
    if (edit.timeout > 0) body["timeout"] = edit.timeout;
    if (!edit.on_failure.empty()) body["on_failure"] = edit.on_failure;
    return ParseAnswer(client_.Call("POST", "/api/v1/fecs/" + fec + "/init/" + edit.name, body.dump()));
  }

 private:
  ApiClient client_;
  StoreArgs args_;
};

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// Flags win; without --store or --server, WHARF_SERVER and then WHARF_STORE say where.
StoreArgs WithEnvironment(StoreArgs args) {
  if (args.server.empty() && args.store.empty()) {
    args.server = Env("WHARF_SERVER");
    if (args.server.empty()) args.store = Env("WHARF_STORE");
  }
  if (args.token.empty()) args.token = Env("WHARF_TOKEN");
  if (args.key.empty()) args.key = Env("WHARF_KEY");
  // The agents' way of naming a store folder works here too.
  if (args.store.starts_with("file://")) args.store = args.store.substr(7);
  return args;
}

// The backend the arguments (and the WHARF_* environment) name; `changes`: it will sign
// (a key is needed locally).
Result<std::unique_ptr<Backend>> OpenBackend(const StoreArgs& given, bool create, bool changes) {
  const StoreArgs args = WithEnvironment(given);
  if (!args.server.empty()) {
    if (!args.store.empty())
      return Fail(ErrorCode::kInvalidArgument, "pass --store DIR or --server URL, not both");
    if (args.token.empty())
      return Fail(ErrorCode::kInvalidArgument,
                  "--server needs a token: pass --token T or set WHARF_TOKEN (`wharf token create` makes one)");
    return std::unique_ptr<Backend>(std::make_unique<RemoteBackend>(args));
  }
  if (args.store.empty())
    return Fail(ErrorCode::kInvalidArgument,
                "say where: --store DIR (a store folder) or --server URL (a `wharf serve`)");
  if (args.store.find("://") != std::string::npos)
    return Fail(ErrorCode::kInvalidArgument,
                "--store " + args.store + ": a store is changed in its folder (--store DIR or file://DIR), "
                "or through a `wharf serve` (--server URL --token T); a plain web server cannot take writes");
  if (changes) {
    if (auto lifetime = ops::ParseDuration(args.expires_in); !lifetime)
      return std::unexpected(lifetime.error());
  }
  auto store = Store::Open(args.store, create);
  if (!store) return std::unexpected(store.error());
  std::optional<PrivateKey> key;
  if (changes && !args.dry_run) {
    if (args.key.empty())
      return Fail(ErrorCode::kInvalidArgument,
                  "a signing key is needed: pass --key NAME.key (made by `wharf keygen`)");
    auto loaded = PrivateKey::Load(args.key);
    if (!loaded) return std::unexpected(loaded.error());
    key = std::move(*loaded);
  }
  return std::unique_ptr<Backend>(std::make_unique<LocalBackend>(std::move(*store), std::move(key), args));
}

// "  (cannot be rolled back to: demo@1 removed)" for a history entry naming versions the
// store no longer holds; "" otherwise.
std::string MissingNote(const Json& entry) {
  std::string missing;
  for (const auto& m : entry.value("missing", Json::array()))
    missing += (missing.empty() ? "" : ", ") + m.get<std::string>();
  return missing.empty() ? "" : "  (cannot be rolled back to: " + missing + " no longer in the store)";
}

// Mismatched configurations accepted with --force: said on every command that shows them.
void PrintForced(const Json& g) {
  for (const auto& f : g.value("forced", Json::array()))
    PrintHuman(stdout, "  FORCED: configuration %s is made for %s, the FEC runs %s\n",
                f["configuration"].get<std::string>().c_str(), f["wanted"].get<std::string>().c_str(),
                f["found"].get<std::string>().empty() ? "none of it" : f["found"].get<std::string>().c_str());
}

// What a release's pruning removed (publish, assign): one line each, as gc prints them.
void PrintPruned(const Json& answer) {
  if (!answer.contains("pruned")) return;
  const Json& p = answer["pruned"];
  for (const auto& v : p["removed"])
    PrintHuman(stdout, "  pruned %s@%s (%s): older than the newest %d, and no FEC's generation within the retention "
                       "names it\n",
               v["name"].get<std::string>().c_str(), v["version"].get<std::string>().c_str(),
               HumanBytes(v["bytes"].get<uint64_t>()).c_str(), p["keep"].get<int>());
  for (const auto& v : p["kept_assigned"])
    PrintHuman(stdout, "  kept %s@%s: a FEC's generation within the retention names it\n",
               v["name"].get<std::string>().c_str(), v["version"].get<std::string>().c_str());
}

// Prints what a change did (or would do, with --dry-run).
int ReportChange(const Result<Json>& result, const StoreArgs& args, const char* verb) {
  if (!result) return Failed(result.error());
  const Json& g = *result;
  if (args.json) {
    PrintJson(g);
  } else {
    PrintHuman(stdout, "%s%s: %s generation %llu: %s (expires %s)\n", args.dry_run ? "dry run: " : "",
                g["fec"].get<std::string>().c_str(), verb,
                static_cast<unsigned long long>(g["number"].get<uint64_t>()), PackagesText(g).c_str(),
                g["expires"].get<std::string>().c_str());
    PrintForced(g);
    PrintPruned(g);
  }
  return kExitOk;
}

int RunChange(const ops::ChangeRequest& request, const StoreArgs& args, const char* verb) {
  auto backend = OpenBackend(args, false, true);
  if (!backend) return Failed(backend.error());
  return ReportChange((*backend)->Change(request), args, verb);
}

int RunChange(ops::ChangeKind kind, const std::string& fec, std::vector<std::string> items,
              std::optional<uint64_t> to, const StoreArgs& args, const char* verb,
              const std::string& service = "") {
  return RunChange({kind, fec, std::move(items), to, service}, args, verb);
}

}  // namespace

int RunKeygen(const std::string& out, bool json) {
  auto key = GenerateKeyPair(out);
  if (!key) return Failed(key.error());
  if (json) {
    PrintJson({{"private", out + ".key"}, {"public", out + ".pub"}, {"key_id", key->id}});
  } else {
    PrintHuman(stdout, "%s.key (keep it secret) and %s.pub written; key id %s\n", out.c_str(),
                out.c_str(), key->id.c_str());
  }
  return kExitOk;
}

int RunPack(const std::string& dir, PackOptions options, const std::vector<std::string>& service_specs,
            const std::string& services_file, const std::vector<std::string>& matches, bool json) {
  for (const auto& text : matches) {
    auto match = ParseNameVersion(text);
    if (!match) return ReportError(kProgram, Prefix("--matches", match.error()).error(), kExitUsage);
    options.matches.push_back({match->name, match->version});
  }
  // --fec and --matches say it is a configuration package.
  if (!options.fec.empty() || !options.matches.empty()) options.configuration = true;
  if (!options.fec.empty()) {
    if (auto valid = ValidateFecName(options.fec); !valid)
      return ReportError(kProgram, Prefix("--fec", valid.error()).error(), kExitUsage);
  }
  std::vector<ServiceDef> services;
  for (const auto& spec : service_specs) {
    auto parsed = ParseServiceSpec(spec);
    if (!parsed) return ReportError(kProgram, parsed.error(), kExitUsage);
    services.push_back(*parsed);
  }
  if (!IsDirectory(dir))
    return ReportError(kProgram, Error{ErrorCode::kInvalidArgument, dir + " is not a folder; pack the folder "
                                                                          "whose contents install under --prefix"},
                       kExitUsage);
  if (auto added = AddTreeServices(dir, services_file, services); !added) return Failed(added.error());
  if (options.configuration && !services.empty())
    return ReportError(kProgram, Error{ErrorCode::kInvalidArgument,
                                       "a configuration package runs no services; define them in "
                                       "the software package it configures"}, kExitUsage);
  options.services = ServicesToJson(services);
  bool tty = ::isatty(2);
  if (tty && !json)
    options.progress = [](uint64_t done, uint64_t total) {
      std::fprintf(stderr, "\rpacking: %s of %s", HumanBytes(done).c_str(), HumanBytes(total).c_str());
    };
  auto result = PackTree(dir, options);
  if (tty && !json) std::fprintf(stderr, "\r\033[K");
  if (!result) return Failed(result.error());
  const PackageIndex& index = result->index;
  if (json) {
    PrintJson({{"archive", result->archive_path}, {"index", result->index_path},
               {"name", index.name}, {"version", index.version}, {"prefix", index.prefix},
               {"files", index.files.size()}, {"frames", index.frames.size()},
               {"raw_size", index.raw_size}, {"size", index.archive_size},
               {"sha256", index.archive_sha256}, {"services", services.size()}});
  } else {
    PrintHuman(stdout, "%s: %zu entries, %s -> %s in %zu frames%s\n", result->archive_path.c_str(),
                index.files.size(), HumanBytes(index.raw_size).c_str(),
                HumanBytes(index.archive_size).c_str(), index.frames.size(),
                services.empty() ? "" : (", " + std::to_string(services.size()) + " service(s)").c_str());
  }
  return kExitOk;
}

int RunPublish(const std::vector<std::string>& archives, const StoreArgs& args) {
  auto backend = OpenBackend(args, true, false);
  if (!backend) return Failed(backend.error());
  ordered_json out = ordered_json::array();
  for (const auto& archive : archives) {
    if (!archive.ends_with(".tar.zst"))
      return ReportError(kProgram, {ErrorCode::kInvalidArgument,
                                    archive + ": not a .tar.zst made by `wharf pack`"}, kExitUsage);
    std::string index = archive.substr(0, archive.size() - 8) + ".package.json";
    if (!PathExists(index))
      return Failed({ErrorCode::kNotFound, index + " is missing: publish the archive together "
                                                   "with the package.json `wharf pack` wrote beside it"});
    auto outcome = (*backend)->Publish(archive, index);
    if (!outcome) return Failed(outcome.error());
    const Json& i = *outcome;
    bool present = i["already_present"].get<bool>();
    std::string state = present ? "already published (same bytes)"
                        : args.dry_run ? "would be published"
                                       : "published";
    if (args.json) {
      out.push_back(i);
    } else {
      PrintHuman(stdout, "%s@%s: %s (%s)\n", i["name"].get<std::string>().c_str(),
                  i["version"].get<std::string>().c_str(), state.c_str(),
                  HumanBytes(i["size"].get<uint64_t>()).c_str());
      PrintPruned(i);
    }
    if (!i.contains("pruned") && i.value("versions", 0) > kGcKeep)
      Note("wharf: warning: " + i["name"].get<std::string>() + " has " + std::to_string(i["versions"].get<int>()) +
           " versions; `wharf gc` keeps the newest " + std::to_string(kGcKeep) +
           " and every one a FEC uses (`publish --prune` does it on release; `wharf retention "
           "--prune-on-release true` on every release)");
  }
  if (args.json) PrintJson(out);
  return kExitOk;
}

int RunAssign(const std::string& fec, const std::vector<std::string>& specs, const StoreArgs& args) {
  for (const auto& spec : specs) {
    auto nv = ParseNameVersion(spec);
    if (!nv) return ReportError(kProgram, nv.error(), kExitUsage);
  }
  return RunChange(ops::ChangeKind::kAssign, fec, specs, std::nullopt, args, "assigned");
}

int RunPersist(const std::string& fec, const std::vector<std::string>& paths, const std::string& interval,
               bool none, const StoreArgs& args) {
  if (none == !paths.empty())
    return ReportError(kProgram, Error{ErrorCode::kInvalidArgument,
                                       "give the persistent paths, or --none to declare no persistent data"},
                       kExitUsage);
  auto seconds = ops::ParseDuration(interval, "--interval");
  if (!seconds) return ReportError(kProgram, seconds.error(), kExitUsage);
  ops::ChangeRequest request{ops::ChangeKind::kPersist, fec, paths, std::nullopt, ""};
  request.interval = *seconds;
  return RunChange(request, args, none ? "no persistent data from" : "persistent data in");
}

int RunUnassign(const std::string& fec, const std::vector<std::string>& names, const StoreArgs& args) {
  return RunChange(ops::ChangeKind::kUnassign, fec, names, std::nullopt, args, "unassigned, now");
}

int RunServiceSet(const std::string& fec, const std::string& service,
                  const std::vector<std::string>& settings, const StoreArgs& args) {
  if (auto valid = ValidateServiceName(service); !valid) return ReportError(kProgram, valid.error(), kExitUsage);
  std::string verb = "set service " + service + " in";
  return RunChange(ops::ChangeKind::kServiceSet, fec, settings, std::nullopt, args, verb.c_str(), service);
}

int RunRollback(const std::string& fec, std::optional<uint64_t> to, const StoreArgs& args) {
  return RunChange(ops::ChangeKind::kRollback, fec, {}, to, args, "rolled back in");
}

int RunRefresh(const std::vector<std::string>& fecs, const StoreArgs& args) {
  auto backend = OpenBackend(args, false, true);
  if (!backend) return Failed(backend.error());
  std::vector<std::string> targets = fecs;
  if (targets.empty()) {
    auto all = (*backend)->ListFecs();  // FECs that have a generation
    if (!all) return Failed(all.error());
    for (const auto& g : *all) targets.push_back(g["fec"].get<std::string>());
  }
  int code = kExitOk;
  for (const auto& fec : targets) {
    int one = ReportChange((*backend)->Change({ops::ChangeKind::kRefresh, fec, {}, std::nullopt, ""}), args,
                           "refreshed as");
    if (one != kExitOk) code = one;
  }
  return code;
}

int RunStoreMode(std::optional<bool> offline, const std::string& lifetime, const StoreArgs& args) {
  auto backend = OpenBackend(args, false, offline.has_value());
  if (!backend) return Failed(backend.error());
  auto answer = (*backend)->StoreMode(offline, lifetime.empty() ? std::nullopt : std::optional<std::string>(lifetime));
  if (!answer) return Failed(answer.error());
  const Json& j = *answer;
  if (args.json) {
    PrintJson(j);
    return kExitOk;
  }
  const char* dry = j.value("dry_run", false) ? "dry run: " : "";
  int64_t lifetime_s = j["offline_lifetime_seconds"].get<int64_t>();
  std::string lived = lifetime_s % 86400 == 0 ? std::to_string(lifetime_s / 86400) + " days"
                                              : std::to_string(lifetime_s) + " s";
  std::string since = j["changed"].is_null() ? "" : " (since " + j["changed"].get<std::string>() + ")";
  if (j["offline"].get<bool>())
    PrintHuman(stdout, "%sstore is offline: generations written for it are signed offline and live %s%s\n", dry,
               lived.c_str(), since.c_str());
  else
    PrintHuman(stdout, "%sstore is online: generations live as long as each change asks (--expires-in)%s%s\n", dry,
               j["changed"].is_null() ? "" : ", since ", j["changed"].is_null() ? "" : j["changed"].get<std::string>().c_str());
  for (const auto& g : j.value("refreshed", Json::array()))
    PrintHuman(stdout, "%s%s: re-signed as generation %llu: %s (expires %s%s)\n", dry, g["fec"].get<std::string>().c_str(),
               static_cast<unsigned long long>(g["number"].get<uint64_t>()), PackagesText(g).c_str(),
               g["expires"].get<std::string>().c_str(), g.value("offline", false) ? ", offline" : "");
  return kExitOk;
}

int RunShow(const std::string& fec, const StoreArgs& args) {
  auto backend = OpenBackend(args, false, false);
  if (!backend) return Failed(backend.error());
  auto shown = (*backend)->Show(fec);
  if (!shown) return Failed(shown.error());
  const Json& g = *shown;
  if (args.json) {
    PrintJson(g);
    return kExitOk;
  }
  PrintHuman(stdout, "FEC %s: generation %llu, created %s, expires %s%s\n", fec.c_str(),
              static_cast<unsigned long long>(g["number"].get<uint64_t>()),
              g["created"].get<std::string>().c_str(), g["expires"].get<std::string>().c_str(),
              g.value("offline", false) ? " (offline: runs past it from a file:// store)" : "");
  PrintHuman(stdout, "  %-24s %-16s %-32s %10s\n", "PACKAGE", "VERSION", "PREFIX", "SIZE");
  for (const auto& p : g["packages"])
    PrintHuman(stdout, "  %-24s %-16s %-32s %10s\n", p["name"].get<std::string>().c_str(),
                p["version"].get<std::string>().c_str(), p["prefix"].get<std::string>().c_str(),
                HumanBytes(p["size"].get<uint64_t>()).c_str());
  PrintForced(g);
  if (g.contains("persist")) {
    std::string paths;
    for (const auto& p : g["persist"]["paths"]) paths += " " + p.get<std::string>();
    PrintHuman(stdout, "  persistent data:%s, every %llds\n", paths.c_str(),
                static_cast<long long>(g["persist"]["interval"].get<int64_t>()));
  }
  PrintHuman(stdout, "history:\n");
  for (const auto& h : g["history"])
    PrintHuman(stdout, "  %4llu  %s  %s%s%s\n", static_cast<unsigned long long>(h["number"].get<uint64_t>()),
                h["created"].get<std::string>().c_str(), h["packages"].get<std::string>().c_str(),
                h.value("offline", false) ? "  (offline)" : "",
                MissingNote(h).c_str());
  return kExitOk;
}

int RunList(const StoreArgs& args, bool packages) {
  auto backend = OpenBackend(args, false, false);
  if (!backend) return Failed(backend.error());
  auto list = packages ? (*backend)->ListPackages() : (*backend)->ListFecs();
  if (!list) return Failed(list.error());
  if (args.json) {
    PrintJson(*list);
    return kExitOk;
  }
  for (const auto& item : *list) {
    if (packages) {
      std::string text;
      for (const auto& v : item["versions"]) text += " " + v.get<std::string>();
      std::string kind = item.value("kind", std::string("software"));
      if (item.contains("fec")) kind += " of " + item["fec"].get<std::string>();
      PrintHuman(stdout, "%-24s %-16s%s\n", item["name"].get<std::string>().c_str(), kind.c_str(), text.c_str());
    } else {
      PrintHuman(stdout, "%-16s %4llu  %s\n", item["fec"].get<std::string>().c_str(),
                  static_cast<unsigned long long>(item["number"].get<uint64_t>()), PackagesText(item).c_str());
    }
  }
  return kExitOk;
}

int RunInitEdit(const std::string& fec, const InitEdit& edit, const StoreArgs& args) {
  bool global = fec == "global";  // stores a script for FECs to link: no generation, no key
  auto backend = OpenBackend(args, false, !global);
  if (!backend) return Failed(backend.error());
  auto answer = (*backend)->Init(fec, edit);
  if (!answer) return Failed(answer.error());
  const Json& g = *answer;
  if (args.json) {
    PrintJson(g);
    return kExitOk;
  }
  if (global) {
    PrintHuman(stdout, "global init script %s stored; FECs run it after `wharf init link FEC %s`\n", edit.name.c_str(),
                edit.name.c_str());
    return kExitOk;
  }
  std::string names;
  for (const auto& s : g.value("init", Json::array())) names += (names.empty() ? "" : " ") + s["name"].get<std::string>();
  PrintHuman(stdout, "%s%s: init scripts in generation %llu: %s (on failure: %s)\n", args.dry_run ? "dry run: " : "",
              fec.c_str(), static_cast<unsigned long long>(g["number"].get<uint64_t>()),
              names.empty() ? "(none)" : names.c_str(), g.value("init_on_failure", std::string("continue")).c_str());
  return kExitOk;
}

int RunDataList(const std::string& fec, const StoreArgs& args) {
  auto backend = OpenBackend(args, false, false);
  if (!backend) return Failed(backend.error());
  auto list = (*backend)->DataList(fec);
  if (!list) return Failed(list.error());
  if (args.json) {
    PrintJson(*list);
    return kExitOk;
  }
  const Json& l = *list;
  if (l["snapshots"].empty()) {
    PrintHuman(stdout, "%s: no snapshots yet (`wharf persist %s PATH...` declares what to keep)\n", fec.c_str(), fec.c_str());
    return kExitOk;
  }
  PrintHuman(stdout, "  %-22s %-21s %6s %10s %8s  %s\n", "SNAPSHOT", "TAKEN", "GEN", "SIZE", "ENTRIES", "PATHS");
  for (const auto& r : l["snapshots"]) {
    std::string paths;
    for (const auto& p : r["paths"]) paths += (paths.empty() ? "" : " ") + p.get<std::string>();
    bool latest = r["id"] == l["latest"];
    PrintHuman(stdout, "%s %-22s %-21s %6llu %10s %8llu  %s\n", latest ? "*" : " ", r["id"].get<std::string>().c_str(),
                r["created"].get<std::string>().c_str(), static_cast<unsigned long long>(r["generation"].get<uint64_t>()),
                HumanBytes(r["size"].get<uint64_t>()).c_str(), static_cast<unsigned long long>(r["entries"].get<uint64_t>()),
                paths.c_str());
  }
  PrintHuman(stdout, "* latest: what %s restores into missing or empty folders at boot\n", fec.c_str());
  return kExitOk;
}

int RunDataRestore(const std::string& fec, const std::string& id, const StoreArgs& args) {
  if (auto valid = ValidateSnapshotId(id); !valid) return ReportError(kProgram, valid.error(), kExitUsage);
  auto backend = OpenBackend(args, false, false);
  if (!backend) return Failed(backend.error());
  auto chosen = (*backend)->DataRestore(fec, id);
  if (!chosen) return Failed(chosen.error());
  if (args.json) {
    PrintJson(*chosen);
    return kExitOk;
  }
  PrintHuman(stdout, "%s: snapshot %s (taken %s) is now the latest; the FEC restores it into persistent folders "
              "that are missing or empty at its next boot or sync\n",
              fec.c_str(), id.c_str(), (*chosen)["created"].get<std::string>().c_str());
  return kExitOk;
}

int RunGc(int keep, int generations, const StoreArgs& args) {
  auto backend = OpenBackend(args, false, false);
  if (!backend) return Failed(backend.error());
  auto report = (*backend)->Gc(keep, generations);
  if (!report) return Failed(report.error());
  const Json& r = *report;
  if (args.json) {
    PrintJson(r);
    return kExitOk;
  }
  const char* verb = args.dry_run ? "would remove" : "removed";
  for (const auto& v : r["removed"])
    PrintHuman(stdout, "%s %s@%s (%s)\n", verb, v["name"].get<std::string>().c_str(), v["version"].get<std::string>().c_str(),
                HumanBytes(v["bytes"].get<uint64_t>()).c_str());
  for (const auto& s : r.value("removed_scripts", Json::array()))
    PrintHuman(stdout, "%s boot script %s (%s): no kept generation names it\n", verb, s["path"].get<std::string>().c_str(),
               HumanBytes(s["bytes"].get<uint64_t>()).c_str());
  for (const auto& v : r["kept_assigned"])
    PrintHuman(stdout, "kept %s@%s: a FEC's generation within the retention names it\n", v["name"].get<std::string>().c_str(),
                v["version"].get<std::string>().c_str());
  PrintHuman(stdout, "%s%s freed (%zu versions)\n", args.dry_run ? "dry run: " : "",
              HumanBytes(r["freed_bytes"].get<uint64_t>()).c_str(), r["removed"].size());
  return kExitOk;
}

int RunRetention(std::optional<int> keep, std::optional<int> generations, std::optional<bool> prune_on_release,
                 const StoreArgs& given) {
  bool change = keep || generations || prune_on_release;
  const StoreArgs& args = given;
  auto backend = OpenBackend(args, false, false);
  if (!backend) return Failed(backend.error());
  auto shown = change ? (*backend)->SetRetention(keep, generations, prune_on_release) : (*backend)->Retention();
  if (!shown) return Failed(shown.error());
  const Json& r = *shown;
  if (args.json) {
    PrintJson(r);
    return kExitOk;
  }
  PrintHuman(stdout, "keep %d versions of each package, besides those a FEC's last %d releases name; %s\n",
              r["keep"].get<int>(), r["generations"].get<int>(),
              r["prune_on_release"].get<bool>() ? "publish and assign prune the released packages"
                                                : "only `wharf gc` (or publish/assign --prune) prunes");
  return kExitOk;
}

namespace {

Result<Json> ServerCall(const StoreArgs& given, const std::string& path) {
  const StoreArgs args = WithEnvironment(given);
  if (args.server.empty())
    return Fail(ErrorCode::kInvalidArgument,
                "this command asks a server: pass --server URL (or set WHARF_SERVER) and --token T");
  ApiClient client(args.server, args.token);
  return ParseAnswer(client.Call("GET", path));
}

std::string OrDash(const Json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>().empty() ? "-" : value.get<std::string>();
  return value.dump();
}

}  // namespace

int RunStatus(const std::string& fec, const StoreArgs& args) {
  if (!fec.empty()) {
    if (auto valid = ValidateFecName(fec); !valid) return ReportError(kProgram, valid.error(), kExitUsage);
  }
  auto answer = ServerCall(args, fec.empty() ? "/api/v1/fecs" : "/api/v1/fecs/" + fec);
  if (!answer) return Failed(answer.error());
  Json rows = fec.empty() ? *answer : Json::array({(*answer)["status"]});
  if (args.json) {
    PrintJson(fec.empty() ? *answer : *answer);
    return kExitOk;
  }
  PrintHuman(stdout, "%-16s %-9s %6s %7s %-21s %8s  %s\n", "FEC", "STATE", "WANTED", "RUNNING", "LAST HEARTBEAT",
              "SERVICES", "ERROR");
  for (const auto& r : rows) {
    std::string services = std::to_string(r["services_up"].get<int>()) + " up";
    if (r["services_down"].get<int>() > 0) services += ", " + std::to_string(r["services_down"].get<int>()) + " down";
    PrintHuman(stdout, "%-16s %-9s %6s %7s %-21s %8s  %s\n", r["fec"].get<std::string>().c_str(),
                r["state"].get<std::string>().c_str(), OrDash(r["wanted"]).c_str(), OrDash(r["running"]).c_str(),
                OrDash(r["last_heartbeat"]).c_str(), services.c_str(), OrDash(r["last_error"]).c_str());
    // What the agent was doing at its last heartbeat, under the state: "syncing: N of M bytes".
    if (std::string activity = r.value("activity", ""); !activity.empty())
      PrintHuman(stdout, "%-16s %s\n", "", activity.c_str());
    if (r.value("wanted_offline", false))
      PrintHuman(stdout, "%-16s wanted generation %s is offline (signed for an offline store), expires %s\n", "",
                  OrDash(r["wanted"]).c_str(), OrDash(r.value("wanted_expires", Json())).c_str());
    for (const auto& d : r.value("dev", Json::array()))
      PrintHuman(stdout, "%-16s DEV %s@dev runs in place of %s (wharf-agent drop-dev %s on the FEC ends it)\n", "",
                  d["name"].get<std::string>().c_str(),
                  d["replaces"].is_string() ? ("version " + d["replaces"].get<std::string>()).c_str() : "nothing (added)",
                  d["name"].get<std::string>().c_str());
  }
  return kExitOk;
}

// A store folder's history: its generations, marked; activations are the server's.
int RunLocalHistory(const std::string& fec, const StoreArgs& args) {
  auto backend = OpenBackend(args, false, false);
  if (!backend) return Failed(backend.error());
  auto shown = (*backend)->Show(fec);
  if (!shown) return Failed(shown.error());
  Json j{{"fec", fec}, {"generations", (*shown)["history"]}};
  if (args.json) {
    PrintJson(j);
    return kExitOk;
  }
  PrintHuman(stdout, "generations of %s (activations and dev versions: ask the server, --server):\n", fec.c_str());
  for (const auto& g : j["generations"])
    PrintHuman(stdout, "  %4llu  created %s  %s%s\n", static_cast<unsigned long long>(g["number"].get<uint64_t>()),
                g["created"].get<std::string>().c_str(), g["packages"].get<std::string>().c_str(),
                MissingNote(g).c_str());
  return kExitOk;
}

// "ioc@dev (sha256 1a2b3c4d) in place of ioc@1.0" for a dev version in a history answer.
std::string DevText(const Json& d) {
  std::string name = d["name"].get<std::string>();
  std::string sha = d.value("sha256", std::string());
  std::string text = name + "@dev" + (sha.empty() ? "" : " (sha256 " + sha.substr(0, 8) + ")");
  text += d["replaces"].is_string() ? " in place of " + name + "@" + d["replaces"].get<std::string>() : " (added)";
  return text;
}

int RunHistory(const std::string& fec, const std::string& at, const StoreArgs& args) {
  if (auto valid = ValidateFecName(fec); !valid) return ReportError(kProgram, valid.error(), kExitUsage);
  if (!at.empty() && !ParseTime(at))
    return ReportError(kProgram, {ErrorCode::kInvalidArgument,
                                  "--at " + at + ": expected a UTC time like 2026-11-24T10:00:00Z"}, kExitUsage);
  if (StoreArgs where = WithEnvironment(args); where.server.empty() && !where.store.empty()) {
    if (!at.empty())
      return ReportError(kProgram, {ErrorCode::kInvalidArgument,
                                    "--at asks the server's records of what FECs ran: pass --server URL and --token T"},
                         kExitUsage);
    return RunLocalHistory(fec, args);
  }
  auto answer = ServerCall(args, "/api/v1/fecs/" + fec + "/history" + (at.empty() ? "" : "?at=" + at));
  if (!answer) return Failed(answer.error());
  const Json& j = *answer;
  if (args.json) {
    PrintJson(j);
    return kExitOk;
  }
  if (!at.empty()) {
    const Json& running = j["running"];
    const Json& wanted = j["wanted"];
    if (running.is_null()) {
      PrintHuman(stdout, "%s at %s: no activation reported before then\n", fec.c_str(), at.c_str());
    } else {
      PrintHuman(stdout, "%s at %s: running generation %llu since %s: %s\n", fec.c_str(), at.c_str(),
                  static_cast<unsigned long long>(running["generation"].get<uint64_t>()),
                  running["since"].get<std::string>().c_str(), OrDash(running["packages"]).c_str());
      for (const auto& d : running.value("dev", Json::array()))
        PrintHuman(stdout, "%s at %s: dev version %s, since %s\n", fec.c_str(), at.c_str(), DevText(d).c_str(),
                    d["since"].get<std::string>().c_str());
    }
    if (!wanted.is_null())
      PrintHuman(stdout, "%s at %s: wanted generation %llu (created %s): %s\n", fec.c_str(), at.c_str(),
                  static_cast<unsigned long long>(wanted["generation"].get<uint64_t>()),
                  wanted["created"].get<std::string>().c_str(), OrDash(wanted["packages"]).c_str());
    return kExitOk;
  }
  PrintHuman(stdout, "generations of %s:\n", fec.c_str());
  for (const auto& g : j["generations"])
    PrintHuman(stdout, "  %4llu  created %s  expires %s  %s%s%s\n",
                static_cast<unsigned long long>(g["number"].get<uint64_t>()), g["created"].get<std::string>().c_str(),
                g["expires"].get<std::string>().c_str(), g["packages"].get<std::string>().c_str(),
                g.value("offline", false) ? "  (offline)" : "", MissingNote(g).c_str());
  PrintHuman(stdout, "activations (newest first):\n");
  for (const auto& a : j["activations"])
    PrintHuman(stdout, "  %s  generation %llu  %s\n", a["time"].get<std::string>().c_str(),
                static_cast<unsigned long long>(a["generation"].get<uint64_t>()), OrDash(a["packages"]).c_str());
  if (!j.value("dev", Json::array()).empty()) {
    PrintHuman(stdout, "dev versions (newest first):\n");
    for (const auto& d : j["dev"])
      PrintHuman(stdout, "  %s .. %s  %s\n", d["since"].get<std::string>().c_str(),
                  d["until"].is_string() ? d["until"].get<std::string>().c_str() : "now                 ",
                  DevText(d).c_str());
  }
  return kExitOk;
}

int RunAudit(const std::string& target, int limit, const StoreArgs& args) {
  std::string path = "/api/v1/audit?limit=" + std::to_string(limit);
  if (!target.empty()) path += "&target=" + target;
  auto answer = ServerCall(args, path);
  if (!answer) return Failed(answer.error());
  if (args.json) {
    PrintJson(*answer);
    return kExitOk;
  }
  // Refusals come aggregated per minute: "x240" says how many a row stands for.
  for (const auto& e : *answer) {
    int64_t count = e.value("count", int64_t{1});
    std::string times = count > 1 ? " x" + std::to_string(count) : "";
    PrintHuman(stdout, "%s  %-16s %-10s %-15s %-16s %-20s %3d%s  %s\n", e["time"].get<std::string>().c_str(),
                e["actor"].get<std::string>().c_str(), e["role"].get<std::string>().c_str(),
                e["remote"].get<std::string>().c_str(), e["action"].get<std::string>().c_str(),
                OrDash(e["target"]).c_str(), e["status"].get<int>(), times.c_str(),
                e["detail"].get<std::string>().c_str());
  }
  return kExitOk;
}

}  // namespace wharf
