#include "agent/agent.h"

#include <algorithm>
#include <cstdio>
#include <functional>

#include "agent/abort_point.h"
#include "agent/dev.h"
#include "agent/drift.h"
#include "agent/init_scripts.h"
#include "agent/layout.h"
#include "agent/state.h"
#include "archive/package_index.h"
#include "base/file.h"
#include "base/strings.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

constexpr uint64_t kMaxGenerationBytes = 1u << 20;
constexpr uint64_t kMaxSignatureBytes = 4096;
constexpr int kMaxGenerationDepth = 16;
constexpr size_t kMaxGenerationValues = 100000;

void Say(const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); }

Status CheckIndexMatches(const PackageIndex& index, const PackageRef& ref) {
  if (index.name != ref.name || index.version != ref.version || index.prefix != ref.prefix ||
      index.archive_size != ref.archive_size || index.archive_sha256 != ref.archive_sha256)
    return Fail(ErrorCode::kCorrupt, ref.index + ": does not describe the archive the generation "
                                                 "names; the store is inconsistent, republish");
  return {};
}

// The cheap drift check of a sync: each present package whose recorded stamp (metadata of
// every entry) differs is re-hashed; what differs from its index is fetched again. A
// package without a stamp (installed before stamps were kept) is re-hashed once.
Status RepairChanged(const Layout& layout, Mirrors& mirrors, const std::string& fec,
                     const std::vector<PackagePlan>& plan, SyncReport& report) {
  for (const auto& step : plan) {
    if (!step.present || StampMatches(layout, step.ref)) continue;
    auto drifts = VerifyPackage(layout, step.ref);
    if (!drifts) return std::unexpected(drifts.error());
    if (drifts->empty()) {
      WHARF_TRY(WriteStamp(layout, step.ref));
      continue;
    }
    for (const auto& d : *drifts)
      Say(fec + ": drift in " + d.package + ": " + d.path + ": " + DriftKindName(d.kind) + " (want " + d.want +
          ", have " + d.have + ")");
    auto repaired = RepairPackage(layout, mirrors, step.ref, *drifts);
    if (!repaired) return Prefix(fec + ": repairing " + step.ref.name + "@" + step.ref.version, repaired.error());
    auto again = VerifyPackage(layout, step.ref);
    if (!again) return std::unexpected(again.error());
    if (!again->empty())
      return Fail(ErrorCode::kCorrupt, fec + ": " + step.ref.name + "@" + step.ref.version +
                                           " still differs from its index after repair: " + again->front().path +
                                           " (" + DriftKindName(again->front().kind) + "); run `wharf-agent verify`");
    Say(fec + ": repaired " + step.ref.name + "@" + step.ref.version + " (" + std::to_string(drifts->size()) +
        " differences, " + HumanBytes(repaired->bytes_fetched) + " fetched)");
    report.repaired.push_back(step.ref.name + "@" + step.ref.version);
  }
  return {};
}

}  // namespace

struct Agent::Fetched {
  Generation generation;
  std::string json;
  std::string signature;
  Acceptance acceptance;
  bool same_as_active = false;
  bool rolled_back_from = false;  // the floor generation a local rollback left: it stays left
};

std::string OfflineReason(const std::string& why, const Generation* active, int64_t now) {
  std::string reason = "store unreachable (" + why + "); ";
  if (!active) return reason + "no generation applied yet, nothing to run";
  std::string expiry = ExpiryNote(*active, now);
  return reason + (expiry.empty() ? "running generation " + std::to_string(active->number) + ", valid until " +
                                        FormatTime(active->expires)
                                  : expiry);
}

std::string LocalRollbackNote(uint64_t active, const AcceptedFloor& floor) {
  if (active == 0 || active >= floor.number) return "";
  return "local rollback to " + std::to_string(active) + " (from " + std::to_string(floor.number) + ")";
}

std::string SyncActivity(const SyncProgress& progress) {
  if (!progress.running.load()) return "";
  uint64_t total = progress.total.load();
  return "syncing: " + std::to_string(std::min(progress.done.load(), total)) + " of " + std::to_string(total) +
         " bytes";
}

Agent::Agent(AgentConfig config, const Clock& clock, Fetcher& fetcher)
    : config_(std::move(config)), clock_(clock), fetcher_(fetcher) {
  fetcher_.set_deadline(config_.deadline);
}

Result<FileLock> Agent::LockAndRecover(const Layout& layout) {
  WHARF_TRY(MakeDirs(layout.tmp()));
  auto lock = FileLock::Acquire(layout.lock());
  if (!lock) return std::unexpected(lock.error());
  AbortPoint("locked");
  if (!config_.dry_run) WHARF_TRY(RecoverLeftovers(layout));
  return lock;
}

Result<SyncReport> Agent::Sync() {
  progress_.done = 0;
  progress_.total = 0;
  progress_.running = true;
  // Every body byte counts towards the plan (package.json, deltas, frames or archives).
  fetcher_.set_on_bytes([this](uint64_t n) { progress_.done.fetch_add(n); });
  struct Idle {
    Agent& agent;
    ~Idle() {
      agent.fetcher_.set_on_bytes({});
      agent.progress_.running = false;
    }
  } idle{*this};
  Layout layout(config_.root);
  auto lock = LockAndRecover(layout);
  if (!lock) return std::unexpected(lock.error());
  auto active = ReadActive(layout);
  if (!active) return std::unexpected(active.error());
  auto floor = ReadFloor(layout, *active);
  if (!floor) return std::unexpected(floor.error());
  SyncReport report;
  if (*active) report.previous = report.generation = (*active)->generation.number;
  auto fetched = FetchGeneration(*active, *floor, report);
  if (!fetched) return std::unexpected(fetched.error());
  if (*fetched && !config_.dry_run) report.expiry = ExpiryNote((*fetched)->generation, clock_.Now());
  if (*active && (!*fetched || (*fetched)->rolled_back_from))
    report.expiry = ExpiryNote((*active)->generation, clock_.Now());
  if (!*fetched) {
    report.outcome = SyncOutcome::kOffline;
    report.local_rollback = LocalRollbackNote(report.generation, *floor);
    return report;
  }
  if ((*fetched)->rolled_back_from) {
    // The store still offers the generation this FEC was rolled back from: the operator's
    // rollback holds until a newer signed generation comes.
    report.local_rollback = LocalRollbackNote(report.generation, *floor);
    return report;
  }
  AbortPoint("generation-verified");
  const Generation& next = (*fetched)->generation;
  report.clock_behind = (*fetched)->acceptance.clock_behind;
  for (const auto& ref : next.packages) report.plan.push_back({ref, IsDirectory(layout.package(ref))});
  uint64_t planned = 0;
  for (const auto& step : report.plan)
    if (!step.present) planned += step.ref.archive_size + step.ref.index_size;
  progress_.done = 0;  // what the generation itself cost is not part of the plan
  progress_.total = planned;
  report.requests = fetcher_.stats().requests;
  report.bytes_fetched = fetcher_.stats().bytes;
  if ((*fetched)->same_as_active) {
    report.local_rollback = LocalRollbackNote(report.generation, *floor);
    // Nothing to fetch; a link lost to a crash after the switch is made again, a package
    // changed on the FEC is repaired.
    if (!config_.dry_run) {
      WHARF_TRY(LinkPrefixes(next, next, nullptr));
      Mirrors mirrors(config_.stores, fetcher_);
      mirrors.Prefer(report.store);
      // A package folder removed by hand counts as changed here: nothing else installs it.
      std::vector<PackagePlan> all = report.plan;
      for (auto& step : all) step.present = true;
      WHARF_TRY(RepairChanged(layout, mirrors, config_.fec, all, report));
      report.requests = fetcher_.stats().requests;
      report.bytes_fetched = fetcher_.stats().bytes;
    }
    return report;
  }
  if (config_.dry_run) {
    report.outcome = SyncOutcome::kPlanned;
    return report;
  }
  std::optional<Generation> previous;
  DevList dev;
  if (*active) {
    auto listed = ReadDevList(layout);
    if (!listed) return std::unexpected(listed.error());
    dev = std::move(*listed);
    // Dev versions hold prefix links too (an added one has its own): the new generation
    // takes them over or removes them like those of the packages it drops.
    previous = (*active)->generation;
    previous->packages = ProfilePackages(*previous, dev);
  }
  WHARF_TRY(Apply(**fetched, previous, *floor, report));
  for (const auto& p : dev.packages)
    Say(config_.fec + ": the dev version of " + p.name + " is gone: generation " + std::to_string(next.number) +
        (std::any_of(next.packages.begin(), next.packages.end(), [&](const PackageRef& r) { return r.name == p.name; })
             ? " runs its own version"
             : " does not have it"));
  report.outcome = SyncOutcome::kApplied;
  report.generation = next.number;
  report.requests = fetcher_.stats().requests;
  report.bytes_fetched = fetcher_.stats().bytes;
  return report;
}

// Installs what is missing, writes the profile, links the prefixes, switches, and only
// then removes what the new generation no longer needs.
Status Agent::Apply(const Fetched& fetched, const std::optional<Generation>& previous,
                    const AcceptedFloor& floor, SyncReport& report) {
  Layout layout(config_.root);
  const Generation& next = fetched.generation;
  Mirrors mirrors(config_.stores, fetcher_);
  mirrors.Prefer(report.store);
  // The boot scripts first (small, and a generation without them is not activated): into
  // the new profile, so that a boot with no store runs exactly these bytes.
  std::string staging = JoinPath(layout.profiles(), "." + std::to_string(next.number) + ".building");
  WHARF_TRY(RemoveTree(staging));
  WHARF_TRY(MakeDirs(staging));
  if (auto staged = StageInitScripts(ProfileInitDir(staging), next, mirrors,
                                     {ProfileInitDir(layout.current()), JoinPath(layout.base(), "init")});
      !staged) {
    (void)RemoveTree(staging);  // nothing of a generation that is not activated stays
    return Prefix(config_.fec + ": generation " + std::to_string(next.number) + " not activated" +
                      (previous ? " (generation " + std::to_string(previous->number) + " stays)" : ""),
                  staged.error());
  }
  AbortPoint("init-staged");
  WHARF_TRY(RepairChanged(layout, mirrors, config_.fec, report.plan, report));
  uint64_t installed = 0;
  for (const auto& step : report.plan) {
    if (step.present) continue;
    WHARF_TRY(InstallPackage(step.ref, mirrors, report));
    // A package built from local files and frames cost fewer bytes than planned: it is done.
    installed += step.ref.archive_size + step.ref.index_size;
    uint64_t done = progress_.done.load();
    while (done < installed && !progress_.done.compare_exchange_weak(done, installed)) {
    }
  }
  WHARF_TRY(WriteProfile(fetched));
  // A sync applies only a generation above the floor: it becomes the floor, and the chain's anchor.
  return SwitchTo(next, previous,
                  AcceptedFloor{std::max(floor.number, next.number), std::max(floor.created, next.created),
                                Sha256Hex(fetched.json)});
}

Status Agent::SwitchTo(const Generation& next, const std::optional<Generation>& previous,
                       const std::optional<AcceptedFloor>& floor) {
  Layout layout(config_.root);
  std::vector<PackageRef> deferred;
  WHARF_TRY(LinkPrefixes(next, previous, &deferred));
  AbortPoint("before-switch");
  WHARF_TRY(SymlinkAtomic("profiles/" + std::to_string(next.number), layout.current()));
  AbortPoint("switched");
  if (floor) {
    WHARF_TRY(WriteFloor(layout, *floor));
    AbortPoint("floor-written");
  }
  WHARF_TRY(UnlinkDroppedPrefixes(next, previous));
  AbortPoint("prefixes-cleaned");
  if (!deferred.empty()) WHARF_TRY(LinkPrefixes(next, previous, nullptr));
  return CollectGarbage(layout, config_.keep);
}

// Asks each store in turn for the FEC's generation; the first one that is signed by a
// trusted key, for this FEC, not older than the floor and not expired wins. nullopt when
// no store answered at all.
Result<std::optional<Agent::Fetched>> Agent::FetchGeneration(
    const std::optional<ActiveGeneration>& active, const AcceptedFloor& floor, SyncReport& report) {
  std::optional<Error> worst;
  auto note = [&](Error error) {
    if (!worst || ErrorSeverity(error.code) > ErrorSeverity(worst->code)) worst = std::move(error);
  };
  std::string folder = "fecs/" + config_.fec + "/";
  for (const auto& store : config_.stores) {
    auto json = fetcher_.Probe(JoinUrl(store, folder + "generation.json"), kMaxGenerationBytes);
    if (!json) {
      note(json.error());
      continue;
    }
    Fetched fetched;
    fetched.json = std::move(*json);
    if (active && active->json == fetched.json) {
      // The very bytes already verified and applied: nothing more to fetch or check.
      fetched.generation = active->generation;
      fetched.same_as_active = true;
      report.store = store;
      return std::optional<Fetched>(std::move(fetched));
    }
    // Parsed before its signature can be found (the number names it): its shape first, so
    // that a hostile store's 1 MiB costs no more than 1 MiB.
    auto generation = JsonShapeWithin(fetched.json, kMaxGenerationDepth, kMaxGenerationValues)
                          ? ParseGeneration(fetched.json)
                          : Fail(ErrorCode::kCorrupt, "nested deeper or holding more values than any generation; "
                                                      "refusing it (the store or a mirror was altered)");
    if (!generation) {
      note(Prefix(JoinUrl(store, folder + "generation.json"), generation.error()).error());
      continue;
    }
    std::string sig_path = folder + "generations/" + std::to_string(generation->number) + ".json.sig";
    auto signature = fetcher_.Probe(JoinUrl(store, sig_path), kMaxSignatureBytes);
    if (!signature) {
      note(signature.error());
      continue;
    }
    auto signer = VerifySignature(config_.trusted, fetched.json, *signature);
    if (!signer) {
      note(Prefix(config_.fec + ": generation " + std::to_string(generation->number),
                   signer.error()).error());
      continue;
    }
    fetched.generation = std::move(*generation);
    if (fetched.generation.number == floor.number && active && active->generation.number < floor.number &&
        !floor.sha256.empty() && Sha256Hex(fetched.json) == floor.sha256) {
      fetched.rolled_back_from = true;
      report.store = store;
      return std::optional<Fetched>(std::move(fetched));
    }
    if (fetched.generation.number == floor.number) {
      note(Error{ErrorCode::kRejected,
                 config_.fec + ": the store offers a different generation numbered " +
                     std::to_string(floor.number) +
                     " from the one already applied; refusing (forged or rewritten?)"});
      continue;
    }
    // A store folder on this machine (a DVD, a copied folder) is a local medium: an offline
    // generation read from it may run past its expiry (CheckAcceptable).
    Medium medium = store.starts_with("file://") ? Medium::kLocal : Medium::kNetwork;
    auto acceptance = CheckAcceptable(fetched.generation, config_.fec, floor, clock_.Now(), medium);
    if (!acceptance) {
      note(acceptance.error());
      continue;
    }
    if (auto chained = CheckChain(store, fetched.generation, floor); !chained) {
      note(chained.error());
      continue;
    }
    fetched.acceptance = *acceptance;
    fetched.signature = std::move(*signature);
    report.store = store;
    return std::optional<Fetched>(std::move(fetched));
  }
  if (!worst) return Fail(ErrorCode::kInvalidArgument, "no store URL given: pass --store URL");
  if (worst->code == ErrorCode::kUnavailable || worst->code == ErrorCode::kTimedOut) {
    report.offline_reason = OfflineReason(worst->message, active ? &active->generation : nullptr, clock_.Now());
    return std::optional<Fetched>();
  }
  if (worst->code == ErrorCode::kNotFound)
    return Fail(ErrorCode::kNotFound, config_.fec + ": the store has no generation for this FEC (" +
                                          worst->message + "); assign one with `wharf assign`");
  return std::unexpected(*worst);
}

// The chain rule: every generation the store writes for a FEC (assign, rollback, refresh,
// any change) is number + 1 of the current one, its parent the sha256 of that one's exact
// bytes, and the store keeps every numbered one. So a generation N above the floor F (the
// newest this FEC applied) must reach F through the store's generations N-1 ... F+1, each
// the bytes its child's parent hash names; F+1's parent must be the hash of F's bytes as
// applied here. Numbers this FEC never saw (it was off, or the store changed twice between
// syncs) are walked; a store rollback is just another link. A FEC with no floor (its first
// sync, a wiped root) has nothing to check against.
Status Agent::CheckChain(const std::string& store, const Generation& next, const AcceptedFloor& floor) {
  if (floor.number == 0 || floor.sha256.empty() || next.number <= floor.number) return {};
  std::string folder = "fecs/" + config_.fec + "/generations/";
  auto broken = [&](uint64_t child) {
    return Fail(ErrorCode::kRejected,
                config_.fec + ": generation " + std::to_string(next.number) + " does not descend from generation " +
                    std::to_string(floor.number) + ", the newest this FEC applied: the parent hash of generation " +
                    std::to_string(child) + " names other bytes than " +
                    (child - 1 == floor.number ? "the generation applied here" : "the store's generation " +
                                                                                    std::to_string(child - 1)) +
                    "; refusing it (forged, or the store's history was rewritten), the active generation stays");
  };
  Generation child = next;
  while (child.number - 1 > floor.number) {
    uint64_t number = child.number - 1;
    std::string url = JoinUrl(store, folder + std::to_string(number) + ".json");
    auto json = fetcher_.Probe(url, kMaxGenerationBytes);
    if (!json) {
      if (json.error().code != ErrorCode::kNotFound) return std::unexpected(json.error());
      return Fail(ErrorCode::kCorrupt, config_.fec + ": the store lacks generation " + std::to_string(number) +
                                           " (" + url + "), which links generation " + std::to_string(next.number) +
                                           " to generation " + std::to_string(floor.number) +
                                           " this FEC applied; refusing it (copy fecs/" + config_.fec +
                                           "/generations/ whole to this store)");
    }
    if (Sha256Hex(*json) != child.parent) return broken(child.number);
    auto parsed = JsonShapeWithin(*json, kMaxGenerationDepth, kMaxGenerationValues)
                      ? ParseGeneration(*json)
                      : Fail(ErrorCode::kCorrupt, "nested deeper or holding more values than any generation");
    if (!parsed) return Prefix(url, parsed.error());
    if (parsed->number != number || parsed->fec != config_.fec) return broken(child.number);
    child = std::move(*parsed);
  }
  if (child.parent != floor.sha256) return broken(child.number);
  return {};
}

Status Agent::InstallPackage(const PackageRef& ref, Mirrors& mirrors, SyncReport& report) {
  Layout layout(config_.root);
  std::string what = ref.name + "@" + ref.version;
  // Patches are worth asking for only when this FEC holds packages to apply them to.
  std::string deltas_json;
  if (!ListDir(layout.packages()).value_or(std::vector<std::string>{}).empty())
    deltas_json = FetchDeltaIndex(layout, mirrors, ref);
  struct Removed {
    const std::string& path;
    ~Removed() { if (!path.empty()) (void)RemoveTree(path); }
  } removed{deltas_json};
  bool patched = false;
  auto index_json = FetchPackageIndex(layout, mirrors, ref, IndexDeltas(deltas_json, ref), patched);
  if (!index_json) return std::unexpected(index_json.error());
  auto index = ParsePackageIndex(*index_json);
  if (!index) return Prefix(ref.index, index.error());
  WHARF_TRY(CheckIndexMatches(*index, ref));
  AbortPoint("index-fetched:" + ref.name);
  auto stats = wharf::InstallPackage(layout, mirrors, ref, *index, *index_json, FileDeltas(deltas_json, *index));
  if (!stats) return Prefix(config_.fec, stats.error());
  // The cheap drift check's reference (drift.h); without it the next sync re-hashes it once.
  if (auto stamped = WriteStamp(layout, ref); !stamped)
    Say(config_.fec + ": warning: " + stamped.error().message);
  report.files_reused += stats->reused_files;
  report.files_patched += stats->deltas;
  Say(config_.fec + ": installed " + what + (stats->incremental
          ? " (" + HumanBytes(stats->fetched_bytes) + " of " + HumanBytes(ref.archive_size) +
                " fetched in " + std::to_string(stats->fetched_frames) + " frames, " +
                std::to_string(stats->reused_files) + " files reused, " +
                std::to_string(stats->deltas) + " patched" + (patched ? ", index patched" : "") + ")"
          : " (" + HumanBytes(ref.archive_size) + ")"));
  return {};
}

Status Agent::WriteProfile(const Fetched& fetched) {
  Layout layout(config_.root);
  const Generation& g = fetched.generation;
  std::string final_dir = layout.profile(g.number);
  std::string staging = JoinPath(layout.profiles(), "." + std::to_string(g.number) + ".building");
  WHARF_TRY(MakeDirs(staging));  // Apply made it and put the boot scripts in
  for (const auto& ref : g.packages)
    WHARF_TRY(SymlinkAtomic("../../packages/" + ref.name + "/" + Layout::PackageLeaf(ref),
                            JoinPath(staging, ref.name)));
  WHARF_TRY(WriteFileAtomic(JoinPath(staging, ".generation.json.sig"), fetched.signature));
  WHARF_TRY(WriteFileAtomic(JoinPath(staging, ".generation.json"), fetched.json));
  AbortPoint("profile-staged");
  // A profile of this number left by an interrupted sync is replaced whole.
  WHARF_TRY(RemoveTree(final_dir));
  WHARF_TRY(RenameDurable(staging, final_dir));
  AbortPoint("profile-written");
  return {};
}

// The folders above a prefix may be the FEC's own links (/opt -> /data/opt is common), but
// never a wharf prefix link: that would put this package inside another one.
struct WharfLink {
  std::string path;
  std::string package;  // the name it links to under current/
};

static std::optional<WharfLink> WharfLinkAbove(const Layout& layout, const std::string& prefix) {
  static constexpr std::string_view kMark = "var/lib/wharf/current/";
  std::string path = layout.root();
  for (const auto& part : Split(Dirname(prefix), '/')) {
    if (part.empty()) continue;
    path = JoinPath(path, part);
    auto target = ReadLink(path);
    if (!target) continue;
    auto at = target->find(kMark);
    if (at != std::string::npos) return WharfLink{path, target->substr(at + kMark.size())};
  }
  return std::nullopt;
}

Status Agent::LinkPrefixes(const Generation& next, const std::optional<Generation>& previous,
                           std::vector<PackageRef>* deferred) {
  Layout layout(config_.root);
  for (const auto& ref : next.packages) {
    std::string link = layout.prefix_link(ref);
    std::string target = RelativePath(Dirname(link), JoinPath(layout.current(), ref.name));
    auto existing = ReadLink(link);
    if (existing && *existing == target) continue;
    if (auto blocking = WharfLinkAbove(layout, ref.prefix)) {
      // Below the prefix link of a package this generation drops: made once that link is
      // gone, after the switch (before it, the running generation still needs it).
      bool dropped = std::none_of(next.packages.begin(), next.packages.end(),
                                  [&](const PackageRef& p) { return p.name == blocking->package; });
      if (!dropped)
        return Fail(ErrorCode::kUnsafe, config_.fec + ": cannot link " + ref.name + " at " + ref.prefix +
                                            ": " + blocking->path + " is the prefix link of " +
                                            blocking->package + "; a package cannot sit inside another");
      if (deferred != nullptr) {
        deferred->push_back(ref);
        continue;
      }
      WHARF_TRY(RemoveTree(blocking->path));
    }
    bool ours = existing && previous &&
                std::any_of(previous->packages.begin(), previous->packages.end(),
                            [&](const PackageRef& p) { return p.prefix == ref.prefix; });
    if (PathExists(link) && !ours)
      return Fail(ErrorCode::kAlreadyExists,
                  link + " exists and is not wharf's link; move it away so that " + ref.name +
                      " can install there");
    WHARF_TRY(MakeDirs(Dirname(link)));
    WHARF_TRY(SymlinkAtomic(target, link));
    AbortPoint("prefix-linked:" + ref.name);
  }
  return {};
}

Status Agent::UnlinkDroppedPrefixes(const Generation& next, const std::optional<Generation>& previous) {
  if (!previous) return {};
  Layout layout(config_.root);
  for (const auto& old : previous->packages) {
    bool kept = std::any_of(next.packages.begin(), next.packages.end(),
                            [&](const PackageRef& p) { return p.prefix == old.prefix; });
    if (kept) continue;
    std::string link = layout.prefix_link(old);
    auto existing = ReadLink(link);
    if (existing && *existing == RelativePath(Dirname(link), JoinPath(layout.current(), old.name)))
      WHARF_TRY(RemoveTree(link));
  }
  return {};
}

namespace {

bool IsNumber(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), ::isdigit);
}

// The name of the profile `current` points at ("3", "3-dev-1"); "" when there is none.
std::string CurrentProfile(const Layout& layout) {
  auto target = ReadLink(layout.current());
  if (!target || !target->starts_with("profiles/")) return "";
  return target->substr(9);
}

// A dev profile's temporaries are hidden; a whole one is needed only while it is current.
bool IsStaleDevProfile(const std::string& name, const std::string& current) {
  return name != current && Layout::ParseDevProfileName(name).has_value();
}

}  // namespace

namespace {

// "<name>/<leaf>" of every package the profiles `names` link.
Result<std::vector<std::string>> LinkedPackages(const Layout& layout, const std::vector<std::string>& names) {
  std::vector<std::string> linked;
  for (const auto& name : names) {
    std::string profile = layout.profile(name);
    auto links = ListDir(profile);
    if (!links) return std::unexpected(links.error());
    for (const auto& link : *links)
      if (link[0] != '.') linked.push_back(link + "/" + Basename(ReadLink(JoinPath(profile, link)).value_or("")));
  }
  return linked;
}

// Removes each package folder (and the index beside it) that `linked` does not name and
// `removable` accepts (given the folder's leaf: "<version>-<sha8>").
Status RemoveUnlinkedPackages(const Layout& layout, const std::vector<std::string>& linked,
                              const std::function<bool(const std::string&)>& removable) {
  auto packages = ListDir(layout.packages());
  if (!packages) return std::unexpected(packages.error());
  for (const auto& name : *packages) {
    std::string dir = JoinPath(layout.packages(), name);
    auto leaves = ListDir(dir);
    if (!leaves) return std::unexpected(leaves.error());
    for (const auto& leaf : *leaves) {
      if (leaf[0] == '.') continue;  // a staging folder: RecoverLeftovers' business
      std::string stem = leaf.size() > 13 && leaf.ends_with(".package.json") ? leaf.substr(0, leaf.size() - 13)
                         : leaf.size() > 6 && leaf.ends_with(".stamp")       ? leaf.substr(0, leaf.size() - 6)
                                                                              : leaf;
      if (!removable(stem) || std::find(linked.begin(), linked.end(), name + "/" + stem) != linked.end())
        continue;
      WHARF_TRY(RemoveTree(JoinPath(dir, leaf)));
      AbortPoint("package-removed");
    }
  }
  return {};
}

}  // namespace

Status CollectGarbage(const Layout& layout, int keep) {
  auto names = ListDir(layout.profiles());
  if (!names) return std::unexpected(names.error());
  std::string current = CurrentProfile(layout);
  // A dev profile is generation n with some packages replaced: n's own profile stays for
  // drop-dev to go back to.
  std::optional<uint64_t> dev_base;
  if (auto dev = Layout::ParseDevProfileName(current)) dev_base = dev->first;
  std::vector<uint64_t> numbers;
  std::vector<std::string> kept;
  for (const auto& name : *names) {
    if (IsNumber(name)) {
      numbers.push_back(std::stoull(name));
    } else if (IsStaleDevProfile(name, current)) {
      WHARF_TRY(RemoveTree(layout.profile(name)));
      AbortPoint("profile-removed");
    } else if (name == current) {
      kept.push_back(name);
    }
  }
  std::sort(numbers.rbegin(), numbers.rend());
  for (size_t i = 0; i < numbers.size(); ++i) {
    std::string name = std::to_string(numbers[i]);
    bool wanted = keep <= 0 || i < static_cast<size_t>(keep) || name == current || numbers[i] == dev_base;
    if (wanted) {
      kept.push_back(name);
      continue;
    }
    WHARF_TRY(RemoveTree(layout.profile(numbers[i])));
    AbortPoint("profile-removed");
  }
  auto linked = LinkedPackages(layout, kept);
  if (!linked) return std::unexpected(linked.error());
  return RemoveUnlinkedPackages(layout, *linked, [](const std::string&) { return true; });
}

// Interruptions leave hidden names, tmp/, dev profiles that never became current (or
// stopped being so) and dev versions no profile links: remove them. A sync's package that
// no profile links yet stays for its garbage collection: the next sync may use it.
Status RecoverLeftovers(const Layout& layout) {
  auto tmp = ListDir(layout.tmp());
  if (!tmp) return std::unexpected(tmp.error());
  for (const auto& name : *tmp)
    if (name[0] != '.' || name.rfind(".tmp-") == std::string::npos) WHARF_TRY(RemoveTree(JoinPath(layout.tmp(), name)));
  WHARF_TRY(RemoveStaleTemps(layout.tmp()));
  std::string current = CurrentProfile(layout);
  for (const auto& dir : {layout.profiles(), layout.base()}) {
    auto names = ListDir(dir);
    if (!names) return std::unexpected(names.error());
    for (const auto& name : *names)
      if (name[0] == '.' || (dir == layout.profiles() && IsStaleDevProfile(name, current)))
        WHARF_TRY(RemoveTree(JoinPath(dir, name)));
  }
  auto packages = ListDir(layout.packages());
  if (!packages) return std::unexpected(packages.error());
  for (const auto& name : *packages) {
    auto leaves = ListDir(JoinPath(layout.packages(), name));
    if (!leaves) return std::unexpected(leaves.error());
    for (const auto& leaf : *leaves)
      if (leaf[0] == '.') WHARF_TRY(RemoveTree(JoinPath(layout.packages(), name + "/" + leaf)));
  }
  auto profiles = ListDir(layout.profiles());
  if (!profiles) return std::unexpected(profiles.error());
  auto linked = LinkedPackages(layout, *profiles);
  if (!linked) return std::unexpected(linked.error());
  return RemoveUnlinkedPackages(layout, *linked, [](const std::string& stem) { return stem.starts_with("dev-"); });
}

Result<AgentStatus> Agent::ReadStatus() const {
  Layout layout(config_.root);
  AgentStatus status;
  auto active = ReadActive(layout);
  if (!active) return std::unexpected(active.error());
  if (*active) status.active = (*active)->generation;
  auto floor = ReadFloor(layout, *active);
  if (!floor) return std::unexpected(floor.error());
  status.floor = *floor;
  auto profiles = ListDir(layout.profiles());
  if (!profiles) return std::unexpected(profiles.error());
  std::string current = CurrentProfile(layout);
  for (const auto& name : *profiles) {
    if (name[0] == '.' || IsStaleDevProfile(name, current)) {
      status.half_done.push_back(JoinPath(layout.profiles(), name));
    } else if (IsNumber(name)) {
      status.kept.push_back(std::stoull(name));
    }
  }
  std::sort(status.kept.begin(), status.kept.end());
  auto tmp = ListDir(layout.tmp());
  if (tmp)
    for (const auto& name : *tmp) status.half_done.push_back(JoinPath(layout.tmp(), name));
  auto packages = ListDir(layout.packages());
  if (packages)
    for (const auto& name : *packages)
      for (const auto& leaf : ListDir(JoinPath(layout.packages(), name)).value_or(std::vector<std::string>{}))
        if (leaf[0] == '.') status.half_done.push_back(JoinPath(layout.packages(), name + "/" + leaf));
  return status;
}

}  // namespace wharf

namespace wharf {

// A local rollback: the operator's act on the FEC, with no store. The kept profile is
// checked as a sync checks a fetched generation (trusted signature, this FEC's, every
// package on disk) except for expiry and the floor: rolling back is going below the floor
// on purpose. The floor stays where it is: the store's generation it left is not taken
// again (Sync), a newer one supersedes the rollback.
Result<RollbackReport> Agent::Rollback(std::optional<uint64_t> to) {
  Layout layout(config_.root);
  auto lock = LockAndRecover(layout);
  if (!lock) return std::unexpected(lock.error());
  auto active = ReadActive(layout);
  if (!active) return std::unexpected(active.error());
  if (!*active)
    return Fail(ErrorCode::kNotFound, config_.fec + ": no generation applied yet, nothing to roll back; sync first");
  RollbackReport report;
  report.from = (*active)->generation.number;
  auto names = ListDir(layout.profiles());
  if (!names) return std::unexpected(names.error());
  for (const auto& name : *names)
    if (IsNumber(name)) report.kept.push_back(std::stoull(name));
  std::sort(report.kept.begin(), report.kept.end());
  std::string kept;
  for (auto n : report.kept) kept += (kept.empty() ? "" : ", ") + std::to_string(n);
  if (kept.empty()) kept = "none";
  if (to) {
    if (std::find(report.kept.begin(), report.kept.end(), *to) == report.kept.end())
      return Fail(ErrorCode::kNotFound, config_.fec + ": no kept generation " + std::to_string(*to) +
                                            "; kept: " + kept + " (pass one of them to --to)");
    report.to = *to;
  } else {
    auto older = std::find_if(report.kept.rbegin(), report.kept.rend(), [&](uint64_t n) { return n < report.from; });
    if (older == report.kept.rend())
      return Fail(ErrorCode::kNotFound, config_.fec + ": no kept generation older than the active " +
                                            std::to_string(report.from) + "; kept: " + kept);
    report.to = *older;
  }
  std::string profile = layout.profile(report.to);
  std::string what = config_.fec + ": kept generation " + std::to_string(report.to);
  auto json = ReadFile(JoinPath(profile, ".generation.json"), kMaxGenerationBytes);
  if (!json) return Prefix(what, json.error());
  auto signature = ReadFile(JoinPath(profile, ".generation.json.sig"), kMaxSignatureBytes);
  if (!signature) return Prefix(what, signature.error());
  auto signer = VerifySignature(config_.trusted, *json, *signature);
  if (!signer) return Prefix(what + " (" + profile + ")", signer.error());
  auto generation = ParseGeneration(*json);
  if (!generation) return Prefix(what, generation.error());
  if (generation->fec != config_.fec || generation->number != report.to)
    return Fail(ErrorCode::kRejected, what + " (" + profile + ") is generation " + std::to_string(generation->number) +
                                          " of FEC " + generation->fec + "; refusing it");
  for (const auto& ref : generation->packages)
    if (!IsDirectory(layout.package(ref)))
      return Fail(ErrorCode::kNotFound, what + " names " + ref.name + "@" + ref.version + ", no longer on disk (" +
                                            layout.package(ref) + "); sync it from a store instead");
  report.packages = generation->packages;
  report.changed = CurrentProfile(layout) != std::to_string(report.to);  // a dev profile on `to` changes
  if (!report.changed || config_.dry_run) return report;
  auto dev = ReadDevList(layout);
  if (!dev) return std::unexpected(dev.error());
  Generation previous = (*active)->generation;
  previous.packages = ProfilePackages(previous, *dev);
  WHARF_TRY(SwitchTo(*generation, previous, std::nullopt));
  Say(config_.fec + ": local rollback " + std::to_string(report.from) + " -> " + std::to_string(report.to) +
      " (signed by " + *signer + "); a newer signed generation from the store supersedes it");
  return report;
}

}  // namespace wharf
