#include "server/api.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <microhttpd.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <functional>
#include <set>

#include "archive/names.h"
#include "archive/package_index.h"
#include "base/file.h"
#include "base/strings.h"
#include "crypto/sha256.h"
#include "ops/ops.h"
#include "store/changes.h"
#include "store/data.h"
#include "store/settings.h"
#include "server/static_files.h"

namespace wharf {

using http::Request;
using http::Response;
using Json = nlohmann::ordered_json;

namespace {

// A heartbeat's activity as kept: control characters dropped, at most kMaxActivityBytes
// (cut at a character boundary: the JSON it is served in stays UTF-8).
constexpr size_t kMaxActivityBytes = 256;
std::string HeartbeatActivity(const std::string& given) {
  std::string kept;
  for (unsigned char c : given)
    if (c >= 0x20 && c != 0x7f) kept += static_cast<char>(c);
  if (kept.size() > kMaxActivityBytes) {
    size_t end = kMaxActivityBytes;
    while (end > 0 && (static_cast<unsigned char>(kept[end]) & 0xc0) == 0x80) --end;
    kept.resize(end);
  }
  return kept;
}

constexpr uint64_t kMaxIndexUpload = 64ull << 20;

// What a token must be allowed to do (docs/api.md, "Tokens and roles").
enum class Right { kNone, kPublish, kChange, kConfigure, kRead, kAudit, kReport, kAdmin };

const char* RightName(Right right) {
  switch (right) {
    case Right::kNone: return "none";
    case Right::kPublish: return "publish";
    case Right::kChange: return "change";
    case Right::kConfigure: return "configure";
    case Right::kRead: return "read";
    case Right::kAudit: return "audit";
    case Right::kReport: return "report";
    case Right::kAdmin: return "administer";
  }
  return "?";
}

const char* WhoHasIt(Right right) {
  switch (right) {
    case Right::kNone: return "anyone";
    case Right::kPublish: return "admin or publisher";
    case Right::kChange: return "admin, maintainer or operator";
    case Right::kConfigure: return "admin or maintainer (it changes what runs as root on the FEC)";
    case Right::kRead: return "admin, maintainer, operator, publisher, or the FEC's own agent";
    case Right::kAudit: return "admin, maintainer or operator";
    case Right::kReport: return "admin, or the agent token of this FEC";
    case Right::kAdmin: return "admin";
  }
  return "?";
}

bool Allowed(const TokenInfo& token, Right right, const std::string& fec) {
  switch (token.role) {
    case Role::kAdmin: return true;
    case Role::kPublisher: return right == Right::kPublish || right == Right::kRead;
    case Role::kOperator: return right == Right::kChange || right == Right::kRead || right == Right::kAudit;
    case Role::kMaintainer:
      return right == Right::kChange || right == Right::kConfigure || right == Right::kRead ||
             right == Right::kAudit;
    case Role::kAgent: return (right == Right::kReport || right == Right::kRead) && !fec.empty() && token.fec == fec;
  }
  return false;
}

// Which FEC a route acts on: none (the fleet, the store), its {fec} (validated), or its
// {fec} or "global" (boot scripts stored for FECs to link).
enum class Scope { kFleet, kFec, kFecOrGlobal };

// Strings from clients may hold any bytes: invalid UTF-8 is replaced, never thrown on.
Response JsonResponse(int status, const Json& j) {
  return Response::Json(status, j.dump(2, ' ', false, Json::error_handler_t::replace));
}

Response Refusal(int status, const char* code, const std::string& message, Right right) {
  // One line, as every refusal: {"error": what to do, "code", "missing_right"}.
  std::string error = Json(message).dump(-1, ' ', false, Json::error_handler_t::replace);
  Response r = Response::Json(status, "{\"error\": " + error + ", \"code\": \"" + code +
                                          "\", \"missing_right\": \"" + RightName(right) + "\"}");
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"wharf\"");
  return r;
}

// Parses a JSON object body; an empty body is {}.
Result<Json> ParseBody(const std::string& body) {
  if (body.empty()) return Json::object();
  try {
    Json j = Json::parse(body);
    if (!j.is_object()) return Fail(ErrorCode::kInvalidArgument, "the body must be a JSON object");
    return j;
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kInvalidArgument, std::string("malformed JSON body: ") + e.what());
  }
}

// A release's pruning (publish, assign): "prune" true/false (absent: the store's retention)
// and "keep", which only an admin may give (how much a store keeps is the store's choice).
Result<ops::Prune> ReleasePrune(const TokenInfo& token, std::optional<bool> prune, std::optional<int> keep) {
  ops::Prune out{prune, 0};
  if (keep) {
    if (!Allowed(token, Right::kAdmin, ""))
      return Fail(ErrorCode::kRejected, "keep: how many versions a release keeps is the store's retention "
                                        "(`wharf retention`); giving another needs an admin token");
    if (*keep < 1 || *keep > 1000) return Fail(ErrorCode::kInvalidArgument, "keep: expected a number from 1 to 1000");
    out.keep_versions = *keep;
    if (!prune) out.prune = true;
  }
  return out;
}

Json DevRunJson(const DevRun& run) {
  Json j{{"name", run.dev.name}, {"sha256", run.dev.sha256},
         {"replaces", run.dev.replaces ? Json(*run.dev.replaces) : Json(nullptr)},
         {"generation", run.generation ? Json(*run.generation) : Json(nullptr)}, {"since", FormatTime(run.since)}};
  j["until"] = run.until ? Json(FormatTime(*run.until)) : Json(nullptr);
  return j;
}

// "ioc@1.0 tools@2" as it ran with these dev versions: "ioc@dev tools@2".
std::string WithDev(const std::string& packages, const std::vector<DevRun>& dev) {
  std::string out;
  std::vector<std::string> added;
  for (const auto& run : dev)
    if (!run.dev.replaces) added.push_back(run.dev.name + "@dev");
  for (const auto& item : Split(packages, ' ')) {
    if (item.empty() || item == "(nothing)") continue;
    std::string name = item.substr(0, item.find('@'));
    bool replaced = std::any_of(dev.begin(), dev.end(), [&](const DevRun& r) { return r.dev.name == name && r.dev.replaces; });
    out += (out.empty() ? "" : " ") + (replaced ? name + "@dev" : item);
  }
  for (const auto& a : added) out += (out.empty() ? "" : " ") + a;
  return out.empty() ? "(nothing)" : out;
}

Result<std::vector<std::string>> StringList(const Json& body, const char* key) {
  std::vector<std::string> out;
  if (!body.contains(key)) return out;
  if (!body[key].is_array()) return Fail(ErrorCode::kInvalidArgument, std::string(key) + ": expected a list of strings");
  for (const auto& item : body[key]) {
    if (!item.is_string()) return Fail(ErrorCode::kInvalidArgument, std::string(key) + ": expected a list of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace

// ---- metrics ---------------------------------------------------------------------------

void Metrics::Observe(const std::string& route, int status, uint64_t bytes) {
  bytes_ += bytes;
  std::lock_guard lock(mutex_);
  ++requests_[{route, status}];
}

std::string Metrics::RenderHttp() const {
  std::string out =
      "# HELP wharf_http_requests_total HTTP requests answered, by route and status code.\n"
      "# TYPE wharf_http_requests_total counter\n";
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, count] : requests_)
      out += "wharf_http_requests_total{route=\"" + key.first + "\",code=\"" +
             std::to_string(key.second) + "\"} " + std::to_string(count) + "\n";
  }
  out += "# HELP wharf_http_response_bytes_total Body bytes sent (store files and API answers).\n"
         "# TYPE wharf_http_response_bytes_total counter\n"
         "wharf_http_response_bytes_total " + std::to_string(bytes_.load()) + "\n" +
         "# HELP wharf_publishes_total Package versions published through the API.\n"
         "# TYPE wharf_publishes_total counter\n"
         "wharf_publishes_total " + std::to_string(publishes_.load()) + "\n";
  return out;
}

// ---- publish: a streamed multipart upload ------------------------------------------------

class PublishExchange : public http::Exchange {
 public:
  PublishExchange(Api& api, TokenInfo token, std::string dir, bool dry_run, int deltas, ops::Prune prune)
      : api_(api), token_(std::move(token)), dir_(std::move(dir)), dry_run_(dry_run), deltas_(deltas),
        prune_(prune) {}
  ~PublishExchange() override {
    if (processor_) MHD_destroy_post_processor(processor_);
    archive_fd_ = UniqueFd();
    (void)RemoveTree(dir_);
  }

  Status Start(Request& request) {
    WHARF_TRY(MakeDirs(dir_));
    archive_part_ = JoinPath(dir_, "archive.part");
    archive_fd_ = UniqueFd(::open(archive_part_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!archive_fd_.valid()) return IoError("create", archive_part_);
    processor_ = MHD_create_post_processor(request.connection, 64 * 1024, &Iterate, this);
    if (!processor_)
      return Fail(ErrorCode::kInvalidArgument,
                  "expected a multipart/form-data body with the fields \"index\" (package.json) and "
                  "\"archive\" (.tar.zst)");
    return {};
  }

  Status OnBody(std::string_view chunk) override {
    if (MHD_post_process(processor_, chunk.data(), chunk.size()) == MHD_YES) return {};
    if (!failure_) return failure_;
    return Fail(ErrorCode::kInvalidArgument,
                "malformed multipart body; send the fields \"index\" and \"archive\" as curl -F does");
  }

  Response Finish(Request& request) override {
    auto answer = Publish(request);
    Response response = answer ? JsonResponse(dry_run_ ? 200 : (*answer)["already_present"] ? 200 : 201, *answer)
                               : Response::FromError(answer.error());
    std::string target = index_ ? index_->name + "@" + index_->version : "";
    (void)api_.records_.Audit({0, api_.clock_.Now(), token_.name, RoleName(token_.role), request.remote,
                              dry_run_ ? "publish-dry-run" : "publish", target,
                              answer ? "" : answer.error().message, response.status});
    if (answer && !dry_run_ && !(*answer)["already_present"].get<bool>()) api_.metrics_.CountPublish();
    return response;
  }

 private:
  static MHD_Result Iterate(void* cls, MHD_ValueKind, const char* key, const char*, const char*,
                            const char*, const char* data, uint64_t, size_t size) {
    auto* self = static_cast<PublishExchange*>(cls);
    Status fed = self->Feed(key ? key : "", {data, size});
    if (!fed) {
      self->failure_ = fed;
      return MHD_NO;
    }
    return MHD_YES;
  }

  Status Feed(std::string_view key, std::string_view data) {
    if (key == "index") {
      saw_index_ = true;
      if (index_json_.size() + data.size() > kMaxIndexUpload)
        return Fail(ErrorCode::kInvalidArgument, "the index field is over 64 MiB; send the package.json `wharf pack` wrote");
      index_json_.append(data);
      return {};
    }
    if (key == "archive") {
      saw_archive_ = true;
      archive_bytes_ += data.size();
      return WriteAll(archive_fd_.get(), data.data(), data.size(), archive_part_);
    }
    return Fail(ErrorCode::kInvalidArgument,
                "unknown form field \"" + std::string(key) + "\"; send \"index\" and \"archive\"");
  }

  Result<Json> Publish(Request&) {
    if (!failure_) return std::unexpected(failure_.error());
    if (processor_) {
      MHD_destroy_post_processor(processor_);
      processor_ = nullptr;
    }
    if (!saw_index_ || !saw_archive_)
      return Fail(ErrorCode::kInvalidArgument,
                  std::string("the upload has no \"") + (saw_index_ ? "archive" : "index") +
                      "\" field; send both package.json (index) and the .tar.zst (archive)");
    auto parsed = ParsePackageIndex(index_json_);
    if (!parsed) return Prefix("the uploaded package.json", parsed.error());
    index_ = *parsed;
    if (index_->archive_size != archive_bytes_)
      return Fail(ErrorCode::kCorrupt, "the uploaded archive has " + std::to_string(archive_bytes_) +
                                           " bytes but its package.json says " +
                                           std::to_string(index_->archive_size) +
                                           "; the upload was cut or the files do not belong together");
    if (::fsync(archive_fd_.get()) != 0) return IoError("fsync", archive_part_);
    archive_fd_ = UniqueFd();
    std::string archive = JoinPath(dir_, index_->archive);  // validated: NAME-VERSION.tar.zst
    std::string index_path = JoinPath(dir_, index_->name + "-" + index_->version + ".package.json");
    WHARF_TRY(RenameDurable(archive_part_, archive));
    WHARF_TRY(WriteFileAtomic(index_path, index_json_));
    return ops::Publish(api_.store_, archive, index_path, dry_run_, deltas_, prune_);
  }

  Api& api_;
  TokenInfo token_;
  std::string dir_;
  bool dry_run_;
  int deltas_;
  ops::Prune prune_;
  MHD_PostProcessor* processor_ = nullptr;
  std::string archive_part_;
  UniqueFd archive_fd_;
  uint64_t archive_bytes_ = 0;
  std::string index_json_;
  bool saw_index_ = false;
  bool saw_archive_ = false;
  Status failure_;
  std::optional<PackageIndex> index_;
};

// ---- persistent data: a snapshot streamed as the raw body --------------------------------

class SnapshotExchange : public http::Exchange {
 public:
  SnapshotExchange(Api& api, TokenInfo token, std::string dir, SnapshotRecord claimed)
      : api_(api), token_(std::move(token)), dir_(std::move(dir)), claimed_(std::move(claimed)) {}
  ~SnapshotExchange() override {
    fd_ = UniqueFd();
    (void)RemoveTree(dir_);  // a cut upload leaves nothing behind
  }

  Status Start() {
    WHARF_TRY(MakeDirs(dir_));
    path_ = JoinPath(dir_, "snapshot.tar.zst");
    fd_ = UniqueFd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd_.valid()) return IoError("create", path_);
    return {};
  }

  Status OnBody(std::string_view chunk) override {
    received_ += chunk.size();
    if (received_ > claimed_.size)
      return Fail(ErrorCode::kInvalidArgument, "the body is longer than the declared size");
    return WriteAll(fd_.get(), chunk.data(), chunk.size(), path_);
  }

  Response Finish(Request& request) override {
    auto stored = [&]() -> Result<SnapshotRecord> {
      if (::fsync(fd_.get()) != 0) return IoError("fsync", path_);
      fd_ = UniqueFd();
      return AddSnapshot(api_.store_, claimed_, path_,
                         SnapshotLimits{api_.config_.keep_snapshots, api_.config_.snapshot_max_data,
                                        api_.config_.snapshot_quota});
    }();
    Response response = stored ? JsonResponse(201, ops::SnapshotJson(*stored)) : Response::FromError(stored.error());
    (void)api_.records_.Audit({0, api_.clock_.Now(), token_.name, RoleName(token_.role), request.remote,
                              "snapshot", claimed_.fec,
                              stored ? claimed_.id + " (" + std::to_string(claimed_.size) + " bytes)"
                                     : stored.error().message,
                              response.status});
    return response;
  }

 private:
  Api& api_;
  TokenInfo token_;
  std::string dir_;
  SnapshotRecord claimed_;
  std::string path_;
  UniqueFd fd_;
  uint64_t received_ = 0;
};

// ---- the API -------------------------------------------------------------------------------

namespace {

// An admitted request: its token, and the FEC it names (validated; empty for the fleet).
struct Caller {
  TokenInfo token;
  std::string fec;
};

using BodyHandler = std::function<Response(const Caller&, Request&, const std::string& body)>;
using StreamStart =
    std::function<std::variant<std::unique_ptr<http::Exchange>, Response>(const Caller&, Request&)>;

// Collects a small body (at most the route's max_body) of an admitted request.
class BodyExchange : public http::Exchange {
 public:
  BodyExchange(Caller caller, std::shared_ptr<const BodyHandler> handler)
      : caller_(std::move(caller)), handler_(std::move(handler)) {}
  Status OnBody(std::string_view chunk) override {
    body_.append(chunk);
    return {};
  }
  Response Finish(Request& request) override { return (*handler_)(caller_, request, body_); }

 private:
  Caller caller_;
  std::shared_ptr<const BodyHandler> handler_;
  std::string body_;
};

}  // namespace

Api::Api(Store store, Records& records, PrivateKey key, ApiConfig config, const Clock& clock)
    : store_(std::move(store)), records_(records), key_(std::move(key)), config_(std::move(config)),
      clock_(clock) {}

Status Api::ImportGenerations() {
  auto fecs = store_.Fecs();
  if (!fecs) return std::unexpected(fecs.error());
  for (const auto& fec : *fecs) WHARF_TRY(ImportGenerations(fec));
  return {};
}

Status Api::ImportGenerations(const std::string& fec) {
  uint64_t known = records_.LastGeneration(fec);
  auto current = store_.CurrentGeneration(fec);
  if (!current) return std::unexpected(current.error());
  if (!*current || (*current)->generation.number <= known) return {};  // nothing new
  auto history = store_.History(fec);
  if (!history) return std::unexpected(history.error());
  for (const auto& g : *history)
    if (g.number > known)
      WHARF_TRY(records_.RecordGeneration({fec, g.number, g.created, g.expires, ops::PackagesText(g)}));
  return {};
}

std::vector<std::string> Api::RefreshExpiring(int64_t margin_seconds, int64_t lifetime_seconds) {
  std::vector<std::string> lines;
  auto fecs = store_.Fecs();
  if (!fecs) return {"automatic refresh: " + fecs.error().message};
  for (const auto& fec : *fecs) {
    if (fec == "global") continue;
    ChangeOptions options;
    options.key = &key_;
    options.now = clock_.Now();
    options.lifetime_seconds = lifetime_seconds;
    // The store lock orders it with any publish, assign or other change under way.
    auto refreshed = RefreshIfExpiring(store_, fec, margin_seconds, options);
    if (refreshed && !*refreshed) continue;
    std::string detail;
    int status = 200;
    if (refreshed) {
      const Generation& g = **refreshed;
      (void)ImportGenerations(fec);
      detail = "generation " + std::to_string(g.number) + ": " + ops::PackagesText(g) + " (automatic: expires " +
               FormatTime(g.expires) + (g.offline ? ", offline" : "") + ")";
      lines.push_back(fec + ": re-signed as " + detail);
    } else {
      if (refreshed.error().code == ErrorCode::kNotFound) continue;  // a FEC folder without a generation
      status = Response::FromError(refreshed.error()).status;
      detail = refreshed.error().message;
      lines.push_back(fec + ": automatic refresh failed: " + detail);
    }
    (void)records_.Audit({0, clock_.Now(), "server", "server", "-", "refresh", fec, detail, status});
  }
  return lines;
}

void Api::Register(http::Router& router) {
  // Who is asking and whether it may, from the headers alone: every refusal is answered
  // before a byte of the body is read (and refusals go to the audit log, aggregated).
  auto admit = [this](Request& request, Right right, Scope scope) -> std::variant<Caller, Response> {
    Caller caller;
    if (right == Right::kNone) return caller;
    auto refuse = [&](int status, const char* code, const std::string& message, const std::string& actor,
                      const std::string& role, const std::string& target) {
      (void)records_.Audit({0, clock_.Now(), actor, role, request.remote, "refused", target, message, status});
      return Refusal(status, code, message, right);
    };
    auto header = request.Header("Authorization");
    if (!header || !header->starts_with("Bearer "))
      return refuse(401, "unauthorized",
                    "no token: send \"Authorization: Bearer TOKEN\" (made by `wharf token create`)", "-", "-", "");
    auto token = records_.Authenticate(std::string_view(*header).substr(7));
    if (!token) return refuse(401, "unauthorized", "unknown or revoked token; ask an admin for a new one", "-", "-", "");
    caller.token = *token;
    if (scope != Scope::kFleet) {
      caller.fec = request.params.at("fec");
      if (!(scope == Scope::kFecOrGlobal && caller.fec == "global"))
        if (auto valid = ValidateFecName(caller.fec); !valid) return Response::FromError(valid.error());
    }
    if (!Allowed(*token, right, caller.fec)) {
      std::string message =
          token->role == Role::kAgent && scope == Scope::kFleet
              ? "agent tokens read only their own FEC; use an operator or admin token for the fleet"
              : "token " + token->name + " (role " + RoleName(token->role) +
                    (token->fec.empty() ? "" : " for " + token->fec) + ") lacks the right to " + RightName(right) +
                    (caller.fec.empty() ? "" : " on " + caller.fec) + "; that needs " + WhoHasIt(right);
      return refuse(403, "forbidden", message, token->name, RoleName(token->role), caller.fec);
    }
    return caller;
  };
  // A route with a small body (JSON), read only once the caller is admitted.
  auto body_route = [&router, admit](const char* method, const std::string& pattern, Right right, Scope scope,
                                http::RouteOptions options, BodyHandler handler) {
    auto shared = std::make_shared<const BodyHandler>(std::move(handler));
    router.AddStreaming(
        method, pattern,
        [admit, right, scope, shared](Request& request) -> std::variant<std::unique_ptr<http::Exchange>, Response> {
          auto who = admit(request, right, scope);
          if (auto* refused = std::get_if<Response>(&who)) return std::move(*refused);
          return std::make_unique<BodyExchange>(std::move(std::get<Caller>(who)), shared);
        },
        options);
  };
  // A streamed upload: `start` runs once the caller is admitted, still before the body.
  auto stream_route = [&router, admit](const char* method, const std::string& pattern, Right right, Scope scope,
                                 http::RouteOptions options, StreamStart start) {
    router.AddStreaming(
        method, pattern,
        [admit, right, scope, start](Request& request) -> std::variant<std::unique_ptr<http::Exchange>, Response> {
          auto who = admit(request, right, scope);
          if (auto* refused = std::get_if<Response>(&who)) return std::move(*refused);
          return start(std::get<Caller>(who), request);
        },
        options);
  };
  const http::RouteOptions get{0, false};  // no body

  // Publish: multipart upload, checked before it becomes visible.
  http::RouteOptions upload{config_.max_upload, true};
  stream_route(
      "POST", "/api/v1/packages", Right::kPublish, Scope::kFleet, upload,
      [this](const Caller& caller, Request& request) -> std::variant<std::unique_ptr<http::Exchange>, Response> {
        auto type = request.Header("Content-Type");
        if (!type || !type->starts_with("multipart/form-data"))
          return Response::Error(400, "invalid_argument",
                                 "expected a multipart/form-data body with the fields \"index\" "
                                 "(package.json) and \"archive\" (.tar.zst), as curl -F sends");
        if (!request.content_length && !request.Header("Transfer-Encoding"))
          return Response::Error(411, "length_required", "send the upload with a Content-Length");
        bool dry_run = request.query.contains("dry_run") && request.query["dry_run"] != "0" &&
                       request.query["dry_run"] != "false";
        int deltas = config_.delta_bases;
        if (auto it = request.query.find("deltas"); it != request.query.end()) {
          if (it->second.empty() || it->second.size() > 2 ||
              it->second.find_first_not_of("0123456789") != std::string::npos || std::stoi(it->second) > 10)
            return Response::Error(400, "invalid_argument", "deltas: expected a number from 0 to 10");
          deltas = std::stoi(it->second);
        }
        std::optional<bool> prune;
        if (auto it = request.query.find("prune"); it != request.query.end()) {
          if (it->second != "0" && it->second != "1") return Response::Error(400, "invalid_argument", "prune: expected 0 or 1");
          prune = it->second == "1";
        }
        std::optional<int> keep;
        if (auto it = request.query.find("keep"); it != request.query.end()) {
          if (it->second.empty() || it->second.size() > 4 || it->second.find_first_not_of("0123456789") != std::string::npos)
            return Response::Error(400, "invalid_argument", "keep: expected a number from 1 to 1000");
          keep = std::stoi(it->second);
        }
        auto pruning = ReleasePrune(caller.token, prune, keep);
        if (!pruning) return Response::FromError(pruning.error());
        std::string dir = JoinPath(config_.uploads_dir, RandomHex(12));
        auto exchange = std::make_unique<PublishExchange>(*this, caller.token, dir, dry_run, deltas, *pruning);
        if (auto started = exchange->Start(request); !started) return Response::FromError(started.error());
        return exchange;
      });

  // Persistent data: the FEC's agent sends snapshots; its agent and operators read them.
  stream_route(
      "POST", "/api/v1/fecs/{fec}/data", Right::kReport, Scope::kFec, upload,
      [this](const Caller& caller, Request& request) -> std::variant<std::unique_ptr<http::Exchange>, Response> {
                auto claimed = [&]() -> Result<SnapshotRecord> {
          SnapshotRecord r;
          r.fec = caller.fec;
          r.id = request.query["id"];
          r.sha256 = request.query["sha256"];
          r.created = clock_.Now();
          const std::string& size = request.query["size"];
          const std::string& generation = request.query["generation"];
          auto number = [](const std::string& text) {
            return !text.empty() && text.size() < 19 && text.find_first_not_of("0123456789") == std::string::npos;
          };
          if (!number(size) || !number(generation))
            return Fail(ErrorCode::kInvalidArgument, "size and generation: expected numbers in the query");
          r.size = std::stoull(size);
          r.generation = std::stoull(generation);
          r.paths = Split(request.query["paths"], ',');
          if (!request.content_length || *request.content_length != r.size)
            return Fail(ErrorCode::kInvalidArgument, "send the snapshot with a Content-Length equal to size");
          if (r.size > config_.max_upload)
            return Fail(ErrorCode::kInvalidArgument, "the snapshot is over the server's --max-upload; raise it, or persist less");
          WHARF_TRY(CheckSnapshotQuota(caller.fec, r.size, config_.snapshot_quota));
          WHARF_TRY(ValidateSnapshotRecord(r));
          // Only folders the FEC's recent generations declare: an agent token cannot make
          // its FEC's "latest" a snapshot of something else.
          auto history = store_.History(caller.fec);
          if (!history) return std::unexpected(history.error());
          std::set<std::string> declared;
          for (size_t i = history->size() > 3 ? history->size() - 3 : 0; i < history->size(); ++i)
            declared.insert((*history)[i].persist.paths.begin(), (*history)[i].persist.paths.end());
          for (const auto& path : r.paths)
            if (!declared.count(path))
              return Fail(ErrorCode::kRejected, path + " is not a persistent folder of " + caller.fec +
                                                    "; `wharf persist " + caller.fec + " PATH...` declares them");
          return r;
        }();
        if (!claimed) return Response::FromError(claimed.error());
        std::string dir = JoinPath(config_.uploads_dir, "data-" + RandomHex(12));
        auto exchange = std::make_unique<SnapshotExchange>(*this, caller.token, dir, *claimed);
        if (auto started = exchange->Start(); !started) return Response::FromError(started.error());
        return exchange;
      });

  body_route("GET", "/api/v1/fecs/{fec}/data", Right::kRead, Scope::kFec, get,
        [this](const Caller& caller, Request&, const std::string&) -> Response {
          auto list = ops::DataList(store_, caller.fec);
          return list ? JsonResponse(200, *list) : Response::FromError(list.error());
        });

  // "latest": the record a boot restores; an id: that snapshot's bytes.
  body_route("GET", "/api/v1/fecs/{fec}/data/{id}", Right::kRead, Scope::kFec, get,
        [this](const Caller& caller, Request& request, const std::string&) -> Response {
          const std::string& id = request.params.at("id");
          if (id == "latest") {
            auto json = ReadFile(JoinPath(store_.root(), LatestSnapshotPath(caller.fec)), 64 << 10);
            if (!json && json.error().code == ErrorCode::kNotFound)
              return Response::Error(404, "not_found", caller.fec + " has no snapshot yet");
            return json ? Response::Json(200, *json) : Response::FromError(json.error());
          }
          if (auto valid = ValidateSnapshotId(id); !valid) return Response::FromError(valid.error());
          std::string path = JoinPath(store_.root(), SnapshotArchivePath(caller.fec, id));
          auto fd = std::make_shared<UniqueFd>(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
          struct stat st {};
          if (!fd->valid() || ::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode))
            return Response::Error(404, "not_found", caller.fec + " has no snapshot " + id);
          Response response;
          response.content_type = "application/zstd";
          response.file = fd;
          response.file_size = static_cast<uint64_t>(st.st_size);
          return response;
        });

  body_route("POST", "/api/v1/fecs/{fec}/data/latest", Right::kChange, Scope::kFec, {64 << 10, true},
        [this](const Caller& caller, Request& request, const std::string& body) -> Response {
          const TokenInfo& token = caller.token;
          auto chosen = [&]() -> Result<Json> {
            auto j = ParseBody(body);
            if (!j) return std::unexpected(j.error());
            if (!j->contains("snapshot") || !(*j)["snapshot"].is_string())
              return Fail(ErrorCode::kInvalidArgument, "snapshot: expected the id of one of the FEC's snapshots");
            return ops::DataRestore(store_, caller.fec, (*j)["snapshot"].get<std::string>());
          }();
          Response response = chosen ? JsonResponse(200, *chosen) : Response::FromError(chosen.error());
          (void)records_.Audit({0, clock_.Now(), token.name, RoleName(token.role), request.remote,
                                "data-restore", caller.fec,
                                chosen ? (*chosen)["id"].get<std::string>() : chosen.error().message,
                                response.status});
          return response;
        });

  body_route("GET", "/api/v1/packages", Right::kRead, Scope::kFleet, get,
        [this](const Caller&, Request&, const std::string&) -> Response {
          auto list = ops::ListPackages(store_);
          return list ? JsonResponse(200, *list) : Response::FromError(list.error());
        });

  // Changes: the same rules as the CLI; the server signs.
  // Which packages a FEC runs (among those published) is an operator's change; how they run
  // as root (service settings: command, user, environment) and which folders the agent
  // snapshots as root and hands out (persist) need the right to configure.
  struct ChangeRoute {
    const char* verb;
    ops::ChangeKind kind;
    const char* path;
    Right right;
  };
  for (ChangeRoute route : {ChangeRoute{"assign", ops::ChangeKind::kAssign, "assign", Right::kChange},
                            ChangeRoute{"unassign", ops::ChangeKind::kUnassign, "unassign", Right::kChange},
                            ChangeRoute{"rollback", ops::ChangeKind::kRollback, "rollback", Right::kChange},
                            ChangeRoute{"refresh", ops::ChangeKind::kRefresh, "refresh", Right::kChange},
                            ChangeRoute{"service-set", ops::ChangeKind::kServiceSet, "services/{service}",
                                        Right::kConfigure},
                            ChangeRoute{"persist", ops::ChangeKind::kPersist, "persist", Right::kConfigure}}) {
    body_route("POST", std::string("/api/v1/fecs/{fec}/") + route.path, route.right, Scope::kFec, {64 << 10, true},
        [this, route](const Caller& caller, Request& request, const std::string& body) -> Response {
          const TokenInfo& token = caller.token;
          auto answer = [&]() -> Result<Json> {
            auto j = ParseBody(body);
            if (!j) return std::unexpected(j.error());
            ops::ChangeRequest change{route.kind, caller.fec, {}, std::nullopt, ""};
            const char* list = route.kind == ops::ChangeKind::kServiceSet ? "set"
                               : route.kind == ops::ChangeKind::kPersist  ? "paths"
                                                                          : "packages";
            auto items = StringList(*j, list);
            if (!items) return std::unexpected(items.error());
            change.items = *items;
            if (route.kind == ops::ChangeKind::kPersist && j->contains("interval")) {
              const Json& interval = (*j)["interval"];
              if (interval.is_number_unsigned()) {
                change.interval = interval.get<int64_t>();
              } else if (interval.is_string()) {
                auto seconds = ops::ParseDuration(interval.get<std::string>(), "interval");
                if (!seconds) return std::unexpected(seconds.error());
                change.interval = *seconds;
              } else {
                return Fail(ErrorCode::kInvalidArgument, "interval: expected seconds or a duration like \"1h\"");
              }
            }
            if (j->contains("force") && !(*j)["force"].is_boolean())
              return Fail(ErrorCode::kInvalidArgument, "force: expected true or false");
            if (route.kind == ops::ChangeKind::kServiceSet) change.service = request.params.at("service");
            if (route.kind == ops::ChangeKind::kAssign) {
              if (j->contains("prune") && !(*j)["prune"].is_boolean())
                return Fail(ErrorCode::kInvalidArgument, "prune: expected true or false");
              if (j->contains("keep") && !(*j)["keep"].is_number_unsigned())
                return Fail(ErrorCode::kInvalidArgument, "keep: expected a number from 1 to 1000");
              auto pruning = ReleasePrune(token,
                                          j->contains("prune") ? std::optional<bool>((*j)["prune"].get<bool>()) : std::nullopt,
                                          j->contains("keep") ? std::optional<int>(std::min<uint64_t>((*j)["keep"].get<uint64_t>(), 100000))
                                                              : std::nullopt);
              if (!pruning) return std::unexpected(pruning.error());
              change.prune = *pruning;
            }
            if (j->contains("to")) {
              if (!(*j)["to"].is_number_unsigned())
                return Fail(ErrorCode::kInvalidArgument, "to: expected a generation number");
              change.to = (*j)["to"].get<uint64_t>();
            }
            if (j->contains("expires_in") && !(*j)["expires_in"].is_string())
              return Fail(ErrorCode::kInvalidArgument, "expires_in: expected a duration like \"30d\"");
            if (j->contains("dry_run") && !(*j)["dry_run"].is_boolean())
              return Fail(ErrorCode::kInvalidArgument, "dry_run: expected true or false");
            std::string expires_in = j->value("expires_in", std::string("30d"));
            auto lifetime = ops::ParseDuration(expires_in);
            if (!lifetime) return std::unexpected(lifetime.error());
            ChangeOptions options;
            options.key = &key_;
            options.now = clock_.Now();
            options.lifetime_seconds = *lifetime;
            options.dry_run = j->value("dry_run", false);
            options.force = j->value("force", false);
            options.may_configure = Allowed(token, Right::kConfigure, caller.fec);
            auto result = ops::Change(store_, change, options);
            if (result && !options.dry_run)
              (void)ImportGenerations(caller.fec);
            return result;
          }();
          Response response = answer ? JsonResponse(200, *answer) : Response::FromError(answer.error());
          std::string detail = answer ? "" : answer.error().message;
          if (answer) {
            detail = "generation " + std::to_string((*answer)["number"].get<uint64_t>()) + ":";
            for (const auto& p : (*answer)["packages"])
              detail += " " + p["name"].get<std::string>() + "@" + p["version"].get<std::string>();
            if (answer->contains("forced"))
              for (const auto& f : (*answer)["forced"])
                detail += " FORCED " + f["configuration"].get<std::string>() + " (made for " +
                          f["wanted"].get<std::string>() + ")";
            if ((*answer)["dry_run"].get<bool>()) detail += " (dry run)";
          }
          (void)records_.Audit({0, clock_.Now(), token.name, RoleName(token.role), request.remote,
                                route.verb, caller.fec, detail, response.status});
          return response;
        });
  }

  // Heartbeats from agents.
  body_route("POST", "/api/v1/fecs/{fec}/heartbeat", Right::kReport, Scope::kFec, {256 << 10, false},
        [this](const Caller& caller, Request& request, const std::string& body) -> Response {
          auto j = ParseBody(body);
          if (!j) return Response::FromError(j.error());
          Heartbeat beat;
          beat.fec = caller.fec;
          beat.time = clock_.Now();
          beat.remote = request.remote;
          try {
            if (j->contains("generation") && !(*j)["generation"].is_null()) {
              if (!(*j)["generation"].is_number_unsigned())
                return Response::Error(400, "invalid_argument", "generation: expected a number or null");
              beat.running = (*j)["generation"].get<uint64_t>();
            }
            if (j->contains("services")) {
              if (!(*j)["services"].is_array())
                return Response::Error(400, "invalid_argument", "services: expected a list");
              beat.services_json = (*j)["services"].dump();
            }
            if (j->contains("dev")) {
              if (!(*j)["dev"].is_array())
                return Response::Error(400, "invalid_argument", "dev: expected a list");
              Json dev = Json::array();  // names, what they replace, their hash: nothing else is kept
              for (const auto& d : (*j)["dev"]) {
                if (!d.is_object() || !d.contains("name") || !d["name"].is_string() ||
                    !ValidatePackageName(d["name"].get<std::string>()))
                  return Response::Error(400, "invalid_argument", "dev: expected [{\"name\": PACKAGE, ...}]");
                DevVersion version{d["name"].get<std::string>(), "", std::nullopt};
                if (d.contains("sha256") && d["sha256"].is_string() && IsSha256Hex(d["sha256"].get<std::string>()))
                  version.sha256 = d["sha256"].get<std::string>();
                if (d.contains("replaces") && d["replaces"].is_string())  // shown escaped (docs/cli.md, Output)
                  version.replaces = d["replaces"].get<std::string>();
                dev.push_back({{"name", version.name},
                               {"replaces", version.replaces ? Json(*version.replaces) : Json(nullptr)},
                               {"sha256", version.sha256}});
                beat.dev.push_back(std::move(version));
              }
              beat.dev_json = dev.dump();
            }
            beat.last_error = j->value("error", std::string());
            beat.agent_version = j->value("agent_version", std::string());
            if (j->contains("activity") && !(*j)["activity"].is_null()) {
              if (!(*j)["activity"].is_string())
                return Response::Error(400, "invalid_argument", "activity: expected a string");
              beat.activity = HeartbeatActivity((*j)["activity"].get<std::string>());
            }
          } catch (const std::exception& e) {
            return Response::Error(400, "invalid_argument", std::string("heartbeat: ") + e.what());
          }
          if (beat.last_error.size() > 4096) beat.last_error.resize(4096);
          if (auto saved = records_.RecordHeartbeat(beat); !saved) return Response::FromError(saved.error());
          return JsonResponse(200, Json{{"fec", caller.fec}, {"time", FormatTime(beat.time)}});
        });

  // Fleet status and one FEC.
  auto fec_status = [this](const std::string& fec, const FecRecord* record) {
    Json j{{"fec", fec}};
    auto current = store_.CurrentGeneration(fec);
    std::optional<uint64_t> wanted;
    if (current && *current) wanted = (*current)->generation.number;
    j["wanted"] = wanted ? Json(*wanted) : Json(nullptr);
    j["wanted_expires"] = wanted ? Json(FormatTime((*current)->generation.expires)) : Json(nullptr);
    j["wanted_offline"] = wanted && (*current)->generation.offline;
    j["running"] = record && record->running ? Json(*record->running) : Json(nullptr);
    int64_t now = clock_.Now();
    j["last_heartbeat"] = record && record->last_heartbeat ? Json(FormatTime(*record->last_heartbeat)) : Json(nullptr);
    j["heartbeat_age_seconds"] = record && record->last_heartbeat ? Json(now - *record->last_heartbeat) : Json(nullptr);
    Json services = Json::array();
    if (record) {
      try {
        services = Json::parse(record->services_json);
      } catch (const std::exception&) {
      }
    }
    int up = 0, down = 0;
    for (const auto& s : services) (s.is_object() && s.value("state", "") == "up" ? up : down)++;
    j["services_up"] = up;
    j["services_down"] = down;
    j["services"] = services;
    j["last_error"] = record ? record->last_error : "";
    j["activity"] = record ? record->activity : "";
    Json dev = Json::array();
    if (record) dev = Json::parse(record->dev_json, nullptr, false);
    j["dev"] = dev.is_array() ? dev : Json::array();
    std::string state = "unknown";
    if (record && record->last_heartbeat) {
      if (now - *record->last_heartbeat > config_.silent_after_seconds) state = "silent";
      else if (!record->last_error.empty() || down > 0) state = "error";
      else if (wanted && record->running != wanted) state = "updating";
      else state = "ok";
    }
    j["state"] = state;
    return j;
  };
  auto fleet = [this, fec_status]() -> Result<Json> {
    auto fecs = store_.Fecs();
    if (!fecs) return std::unexpected(fecs.error());
    auto records = records_.FecRecords();
    if (!records) return std::unexpected(records.error());
    std::map<std::string, const FecRecord*> by_name;
    for (const auto& r : *records) by_name[r.fec] = &r;
    for (const auto& f : *fecs) by_name.try_emplace(f, nullptr);
    Json out = Json::array();
    for (const auto& [name, record] : by_name)
      if (name != "global") out.push_back(fec_status(name, record));
    return out;
  };
  body_route("GET", "/api/v1/fecs", Right::kRead, Scope::kFleet, get,
        [fleet](const Caller&, Request&, const std::string&) -> Response {
          auto all = fleet();
          return all ? JsonResponse(200, *all) : Response::FromError(all.error());
        });
  body_route("GET", "/api/v1/generations", Right::kRead, Scope::kFleet, get,
        [this](const Caller&, Request&, const std::string&) -> Response {
          auto list = ops::ListFecs(store_);
          return list ? JsonResponse(200, *list) : Response::FromError(list.error());
        });
  body_route("GET", "/api/v1/fecs/{fec}", Right::kRead, Scope::kFec, get,
        [this, fec_status](const Caller& caller, Request&, const std::string&) -> Response {
          auto record = records_.Fec(caller.fec);
          if (!record) return Response::FromError(record.error());
          auto shown = ops::Show(store_, caller.fec);
          if (!shown && shown.error().code != ErrorCode::kNotFound) return Response::FromError(shown.error());
          if (!shown && !*record)
            return Response::Error(404, "not_found", caller.fec + " has no generation and never reported");
          Json j = shown ? *shown : Json{{"fec", caller.fec}};
          j["status"] = fec_status(caller.fec, *record ? &**record : nullptr);
          return JsonResponse(200, j);
        });

  // One FEC's current generation and history, exactly as `wharf show --json` on the store.
  body_route("GET", "/api/v1/fecs/{fec}/generation", Right::kRead, Scope::kFec, get,
        [this](const Caller& caller, Request&, const std::string&) -> Response {
          auto shown = ops::Show(store_, caller.fec);
          return shown ? JsonResponse(200, *shown) : Response::FromError(shown.error());
        });

  // The store's settings: offline (generations signed offline, long-lived) or online.
  body_route("GET", "/api/v1/store", Right::kRead, Scope::kFleet, get,
        [this](const Caller&, Request&, const std::string&) -> Response {
          auto settings = ReadStoreSettings(store_.root());
          return settings ? JsonResponse(200, ops::StoreSettingsJson(*settings)) : Response::FromError(settings.error());
        });
  body_route("POST", "/api/v1/store", Right::kAdmin, Scope::kFleet, {64 << 10, true},
        [this](const Caller& caller, Request& request, const std::string& body) -> Response {
          auto answer = [&]() -> Result<Json> {
            auto j = ParseBody(body);
            if (!j) return std::unexpected(j.error());
            if (!j->contains("offline") || !(*j)["offline"].is_boolean())
              return Fail(ErrorCode::kInvalidArgument, "offline: expected true or false");
            for (const char* key : {"expires_in", "offline_expires_in"})
              if (j->contains(key) && !(*j)[key].is_string())
                return Fail(ErrorCode::kInvalidArgument, std::string(key) + ": expected a duration like \"10y\"");
            if (j->contains("dry_run") && !(*j)["dry_run"].is_boolean())
              return Fail(ErrorCode::kInvalidArgument, "dry_run: expected true or false");
            auto lifetime = ops::ParseDuration(j->value("expires_in", std::string("30d")));
            if (!lifetime) return std::unexpected(lifetime.error());
            std::optional<int64_t> offline_lifetime;
            if (j->contains("offline_expires_in")) {
              auto parsed = ops::ParseDuration((*j)["offline_expires_in"].get<std::string>(), "offline_expires_in");
              if (!parsed) return std::unexpected(parsed.error());
              offline_lifetime = *parsed;
            }
            ChangeOptions options;
            options.key = &key_;
            options.now = clock_.Now();
            options.lifetime_seconds = *lifetime;
            options.dry_run = j->value("dry_run", false);
            auto result = ops::StoreMode(store_, (*j)["offline"].get<bool>(), offline_lifetime, options);
            if (result && !options.dry_run) (void)ImportGenerations();
            return result;
          }();
          Response response = answer ? JsonResponse(200, *answer) : Response::FromError(answer.error());
          std::string detail = answer ? ((*answer)["offline"].get<bool>() ? "offline, generations live " +
                                                                                 std::to_string((*answer)["offline_lifetime_seconds"].get<int64_t>()) + " s"
                                                                           : std::string("online")) +
                                            ", " + std::to_string((*answer)["refreshed"].size()) + " FECs re-signed" +
                                            ((*answer)["dry_run"].get<bool>() ? " (dry run)" : "")
                                      : answer.error().message;
          (void)records_.Audit({0, clock_.Now(), caller.token.name, RoleName(caller.token.role), request.remote,
                                "store-mode", "", detail, response.status});
          return response;
        });

  // History: generations and activations; ?at=T answers "what ran on the FEC at T".
  body_route("GET", "/api/v1/fecs/{fec}/history", Right::kRead, Scope::kFec, get,
        [this](const Caller& caller, Request& request, const std::string&) -> Response {
          (void)ImportGenerations(caller.fec);
          auto generations = records_.Generations(caller.fec);
          if (!generations) return Response::FromError(generations.error());
          auto packages_of = [&](uint64_t n) -> Json {
            for (const auto& g : *generations)
              if (g.number == n) return g.packages;
            return nullptr;
          };
          if (auto at = request.query.find("at"); at != request.query.end()) {
            auto time = ParseTime(at->second);
            if (!time)
              return Response::Error(400, "invalid_argument",
                                     "at: expected a UTC time like 2026-11-24T10:00:00Z");
            Json j{{"fec", caller.fec}, {"at", FormatTime(*time)}};
            auto active = records_.ActivationAt(caller.fec, *time);
            if (!active) return Response::FromError(active.error());
            auto dev = records_.DevAt(caller.fec, *time);
            if (!dev) return Response::FromError(dev.error());
            j["running"] = nullptr;
            if (*active) {
              // What ran: the generation's packages with the dev versions then in place of theirs.
              Json packages = packages_of((*active)->generation);
              Json running{{"generation", (*active)->generation}, {"since", FormatTime((*active)->time)},
                           {"packages", packages}, {"dev", Json::array()}};
              for (const auto& run : *dev) running["dev"].push_back(DevRunJson(run));
              if (!dev->empty() && packages.is_string()) running["packages"] = WithDev(packages.get<std::string>(), *dev);
              if (!dev->empty()) running["generation_packages"] = packages;
              j["running"] = std::move(running);
            }
            Json wanted = nullptr;
            for (const auto& g : *generations)
              if (g.created <= *time)
                wanted = {{"generation", g.number}, {"created", FormatTime(g.created)}, {"packages", g.packages}};
            j["wanted"] = wanted;
            return JsonResponse(200, j);
          }
          Json j{{"fec", caller.fec}, {"generations", Json::array()}, {"activations", Json::array()},
                 {"dev", Json::array()}};
          // Whether each was signed for an offline store: from the store's own files.
          std::set<uint64_t> offline;
          if (auto stored = store_.History(caller.fec))
            for (const auto& g : *stored)
              if (g.offline) offline.insert(g.number);
          // Versions gc removed: a rollback to such a generation is refused.
          auto missing = ops::MissingByGeneration(store_, caller.fec);
          for (const auto& g : *generations) {
            Json gone = Json::array();
            if (missing && missing->contains(g.number)) gone = missing->at(g.number);
            j["generations"].push_back({{"number", g.number}, {"created", FormatTime(g.created)},
                                        {"expires", FormatTime(g.expires)}, {"offline", offline.contains(g.number)},
                                        {"packages", g.packages}, {"missing", gone}});
          }
          auto runs = records_.DevRuns(caller.fec, 1000);
          if (!runs) return Response::FromError(runs.error());
          for (const auto& run : *runs) j["dev"].push_back(DevRunJson(run));
          auto activations = records_.Activations(caller.fec, 1000);
          if (!activations) return Response::FromError(activations.error());
          for (const auto& a : *activations)
            j["activations"].push_back({{"generation", a.generation}, {"time", FormatTime(a.time)},
                                        {"packages", packages_of(a.generation)}});
          return JsonResponse(200, j);
        });

  // Boot scripts: {"action": "add", "content_base64": "...", "timeout": 60, "on_failure": "stop"},
  // {"action": "link"} or {"action": "remove"}; FEC "global" stores a script for FECs to link.
  // Boot scripts run as root: adding, linking and removing them needs the right to configure.
  body_route("POST", "/api/v1/fecs/{fec}/init/{name}", Right::kConfigure, Scope::kFecOrGlobal, {1 << 20, true},
        [this](const Caller& caller, Request& request, const std::string& body) -> Response {
          const TokenInfo& token = caller.token;
          std::string staged;
          auto answer = [&]() -> Result<Json> {
            auto j = ParseBody(body);
            if (!j) return std::unexpected(j.error());
            InitEdit edit;
            edit.name = request.params.at("name");
            WHARF_TRY(ValidateInitName(edit.name));
            std::string action = j->contains("action") && (*j)["action"].is_string() ? (*j)["action"].get<std::string>() : "";
            if (action == "add") {
              edit.kind = InitEdit::kAdd;
              if (!j->contains("content_base64") || !(*j)["content_base64"].is_string())
                return Fail(ErrorCode::kInvalidArgument, "add: send the script as content_base64");
              auto content = Base64Decode((*j)["content_base64"].get<std::string>());
              if (!content) return Fail(ErrorCode::kInvalidArgument, "content_base64 is not base64");
              staged = JoinPath(config_.uploads_dir, "init-" + NewTokenSecret().substr(6, 16));
              WHARF_TRY(WriteFileAtomic(staged, *content, 0600));
              edit.file = staged;
            } else if (action == "link") {
              edit.kind = InitEdit::kLink;
            } else if (action == "remove") {
              edit.kind = InitEdit::kRemove;
            } else {
              return Fail(ErrorCode::kInvalidArgument, "action: expected add, link or remove");
            }
            if (j->contains("timeout")) {
              if (!(*j)["timeout"].is_number_unsigned()) return Fail(ErrorCode::kInvalidArgument, "timeout: expected seconds");
              edit.timeout = (*j)["timeout"].get<int>();
            }
            if (j->contains("on_failure")) {
              if (!(*j)["on_failure"].is_string() ||
                  ((*j)["on_failure"] != "stop" && (*j)["on_failure"] != "continue"))
                return Fail(ErrorCode::kInvalidArgument, "on_failure: expected stop or continue");
              edit.on_failure = (*j)["on_failure"].get<std::string>();
            }
            ChangeOptions options;
            options.key = &key_;
            options.now = clock_.Now();
            options.dry_run = j->value("dry_run", false);
            auto result = ops::Init(store_, caller.fec, edit, options);
            if (result && !options.dry_run && caller.fec != "global") (void)ImportGenerations(caller.fec);
            return result;
          }();
          if (!staged.empty()) ::unlink(staged.c_str());
          Response response = answer ? JsonResponse(200, *answer) : Response::FromError(answer.error());
          (void)records_.Audit({0, clock_.Now(), token.name, RoleName(token.role), request.remote, "init",
                                caller.fec, request.params.at("name") + (answer ? "" : ": " + answer.error().message),
                                response.status});
          return response;
        });

  body_route("POST", "/api/v1/gc", Right::kAdmin, Scope::kFleet, {64 << 10, true},
        [this](const Caller& caller, Request& request, const std::string& body) -> Response {
          const TokenInfo& token = caller.token;
          auto answer = [&]() -> Result<Json> {
            auto j = ParseBody(body);
            if (!j) return std::unexpected(j.error());
            for (const char* key : {"keep", "generations"})
              if (j->contains(key) && !(*j)[key].is_number_unsigned())
                return Fail(ErrorCode::kInvalidArgument, std::string(key) + ": expected a number");
            if (j->contains("dry_run") && !(*j)["dry_run"].is_boolean())
              return Fail(ErrorCode::kInvalidArgument, "dry_run: expected true or false");
            // 0: the store's retention (`wharf retention`)
            return ops::Gc(store_, std::min(j->value("keep", 0), 1000), std::min(j->value("generations", 0), 1000),
                           j->value("dry_run", false));
          }();
          Response response = answer ? JsonResponse(200, *answer) : Response::FromError(answer.error());
          std::string detail = answer ? std::to_string((*answer)["removed"].size()) + " versions, " +
                                            std::to_string((*answer)["freed_bytes"].get<uint64_t>()) + " bytes" +
                                            ((*answer)["dry_run"].get<bool>() ? " (dry run)" : "")
                                      : answer.error().message;
          (void)records_.Audit({0, clock_.Now(), token.name, RoleName(token.role), request.remote, "gc", "",
                                detail, response.status});
          return response;
        });

  body_route("GET", "/api/v1/retention", Right::kRead, Scope::kFleet, get,
        [this](const Caller&, Request&, const std::string&) -> Response {
          auto r = ops::RetentionJson(store_);
          return r ? JsonResponse(200, *r) : Response::FromError(r.error());
        });
  // {"keep": N, "generations": G, "prune_on_release": bool}, each optional: how much the store keeps.
  body_route("POST", "/api/v1/retention", Right::kAdmin, Scope::kFleet, {64 << 10, true},
        [this](const Caller& caller, Request& request, const std::string& body) -> Response {
          auto answer = [&]() -> Result<Json> {
            auto j = ParseBody(body);
            if (!j) return std::unexpected(j.error());
            std::optional<int> numbers[2];
            const char* keys[2] = {"keep", "generations"};
            for (int i = 0; i < 2; ++i) {
              if (!j->contains(keys[i])) continue;
              if (!(*j)[keys[i]].is_number_unsigned() || (*j)[keys[i]].get<uint64_t>() < 1 ||
                  (*j)[keys[i]].get<uint64_t>() > 1000)
                return Fail(ErrorCode::kInvalidArgument, std::string(keys[i]) + ": expected a number from 1 to 1000");
              numbers[i] = (*j)[keys[i]].get<int>();
            }
            std::optional<bool> prune;
            if (j->contains("prune_on_release")) {
              if (!(*j)["prune_on_release"].is_boolean())
                return Fail(ErrorCode::kInvalidArgument, "prune_on_release: expected true or false");
              prune = (*j)["prune_on_release"].get<bool>();
            }
            return ops::SetRetention(store_, numbers[0], numbers[1], prune);
          }();
          Response response = answer ? JsonResponse(200, *answer) : Response::FromError(answer.error());
          (void)records_.Audit({0, clock_.Now(), caller.token.name, RoleName(caller.token.role), request.remote,
                                "retention", "", answer ? answer->dump() : answer.error().message, response.status});
          return response;
        });

  body_route("GET", "/api/v1/audit", Right::kAudit, Scope::kFleet, get,
        [this](const Caller&, Request& request, const std::string&) -> Response {
          int limit = 100;
          if (auto it = request.query.find("limit"); it != request.query.end()) {
            if (it->second.empty() || it->second.size() > 6 || it->second.find_first_not_of("0123456789") != std::string::npos)
              return Response::Error(400, "invalid_argument", "limit: expected a number up to 999999");
            limit = std::stoi(it->second);
          }
          std::string target = request.query.contains("target") ? request.query["target"] : "";
          auto log = records_.AuditLog(limit, target);
          if (!log) return Response::FromError(log.error());
          Json out = Json::array();
          for (const auto& e : *log)
            out.push_back({{"id", e.id}, {"time", FormatTime(e.time)}, {"actor", e.actor}, {"role", e.role},
                           {"remote", e.remote}, {"action", e.action}, {"target", e.target},
                           {"detail", e.detail}, {"status", e.status}, {"count", e.count}});
          return JsonResponse(200, out);
        });

  body_route("GET", "/api/v1", Right::kNone, Scope::kFleet, get,
        [this](const Caller&, Request&, const std::string&) -> Response {
          return JsonResponse(200, Json{{"service", "wharf"}, {"version", "0.1.0"},
                                        {"schema", records_.schema_version()}, {"key_id", key_.public_key().id}});
        });

  // Prometheus text format.
  body_route("GET", "/metrics", Right::kNone, Scope::kFleet, get,
        [this, fleet](const Caller&, Request&, const std::string&) -> Response {
          std::string out = metrics_.RenderHttp();
          std::map<std::string, int> by_state{{"ok", 0}, {"updating", 0}, {"error", 0}, {"silent", 0}, {"unknown", 0}};
          std::string ages;
          if (auto all = fleet()) {
            for (const auto& f : *all) {
              by_state[f["state"].get<std::string>()]++;
              if (!f["heartbeat_age_seconds"].is_null())
                ages += "wharf_fec_heartbeat_age_seconds{fec=\"" + f["fec"].get<std::string>() + "\"} " +
                        std::to_string(f["heartbeat_age_seconds"].get<int64_t>()) + "\n";
            }
          }
          out += "# HELP wharf_fecs FECs by state (ok, updating, error, silent, unknown).\n# TYPE wharf_fecs gauge\n";
          for (const auto& [state, count] : by_state)
            out += "wharf_fecs{state=\"" + state + "\"} " + std::to_string(count) + "\n";
          out += "# HELP wharf_fec_heartbeat_age_seconds Seconds since each FEC's last heartbeat.\n"
                 "# TYPE wharf_fec_heartbeat_age_seconds gauge\n" + ages;
          Response r;
          r.content_type = "text/plain; version=0.0.4; charset=utf-8";
          r.body = std::move(out);
          return r;
        });

  auto files = std::make_shared<http::StaticFiles>(store_.root());
  router.SetFallback([files](Request& request, const std::string&) { return files->Serve(request); });
}

}  // namespace wharf
