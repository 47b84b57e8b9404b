// Installing one package on the FEC: from the whole archive, or incrementally from the
// files the FEC already holds plus only the frames that carry what it lacks.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "agent/layout.h"
#include "archive/delta.h"
#include "archive/package_index.h"
#include "archive/reader.h"
#include "base/error.h"
#include "fetch/fetch.h"
#include "generation/generation.h"

namespace wharf {

/// The stores of a FEC, tried in turn: the one that answered first, then the others.
class Mirrors {
 public:
  Mirrors(std::vector<std::string> stores, Fetcher& fetcher) : stores_(std::move(stores)), fetcher_(fetcher) {}

  void Prefer(const std::string& store) { preferred_ = store; }
  Fetcher& fetcher() { return fetcher_; }

  /// Runs `attempt` with the URL of the store-relative `path` at each store until one
  /// succeeds; the store that answers is tried first next time. When no store answered at
  /// all, tries them all again after 2 s and 4 s (not when one was only too slow:
  /// kTimedOut, the transfer's deadline passed). kUnsupported stops at once (the caller
  /// falls back); otherwise the most telling error (a refusal says more than "nobody
  /// answered").
  Status Try(const std::string& path, const std::function<Status(const std::string& url)>& attempt);
  Result<std::string> Get(const std::string& path, uint64_t max_bytes);

  static constexpr int kRetryRounds = 2;

 private:
  std::vector<std::string> stores_;
  std::string preferred_;
  Fetcher& fetcher_;
};

/// How bad an error is, for choosing which of several mirrors' errors to report.
int ErrorSeverity(ErrorCode code);

struct InstallStats {
  bool incremental = false;
  size_t reused_files = 0;
  size_t fetched_frames = 0;
  size_t deltas = 0;  // files rebuilt from a patch against a file held here
  uint64_t fetched_bytes = 0;
};

/// The store's deltas.json for `ref` (archive/delta.h: not signed, so bounded) downloaded
/// into layout.tmp(), its path; "" when there is none or it is bigger than
/// kMaxDeltaIndexBytes. Worth a request only when the FEC holds packages already. The
/// caller removes it.
std::string FetchDeltaIndex(const Layout& layout, Mirrors& mirrors, const PackageRef& ref);
/// Patches kept of an older version's package.json, or of a file: at most this many each
/// (one per older version the store keeps deltas against, with room).
inline constexpr size_t kMaxIndexDeltas = 64, kMaxDeltasPerFile = 16;
/// From the deltas.json at `deltas_json` ("" for none): the patches that rebuild `ref`'s
/// package.json, smaller than it. A malformed or hostile file gives none (frames are fetched).
std::vector<DeltaEntry> IndexDeltas(const std::string& deltas_json, const PackageRef& ref);
/// The same for the files of the checked `index`: only patches that target one of its
/// files (path and sha256) and are not bigger than it; memory is bounded by the index.
std::vector<DeltaEntry> FileDeltas(const std::string& deltas_json, const PackageIndex& index);

/// `ref`'s package.json, checked against the signed size and sha256: rebuilt from an older
/// version's package.json held here and a patch from `deltas` when there is one (`patched`
/// says so), else fetched whole.
Result<std::string> FetchPackageIndex(const Layout& layout, Mirrors& mirrors, const PackageRef& ref,
                                      const std::vector<DeltaEntry>& deltas, bool& patched);

/// Puts `ref` (whose checked index is `index`, bytes `index_json`) into
/// layout.package(ref): unpacked in a hidden staging folder, every byte checked, renamed
/// into place. Incremental when the FEC holds enough of its files and the store serves
/// Range requests: files held here are copied, others rebuilt from `deltas` when that is
/// cheaper, the rest taken from the frames that hold them; from the whole archive otherwise.
Result<InstallStats> InstallPackage(const Layout& layout, Mirrors& mirrors, const PackageRef& ref,
                                    const PackageIndex& index, const std::string& index_json,
                                    const std::vector<DeltaEntry>& deltas);

/// Fetches only the frames that hold `files` (indexes into index.files, each a non-empty
/// file) with Range requests into layout.tmp() (the whole archive when the store serves no
/// Range), and gives each file's bytes to `sink`: BeginFile, FileData, and EndFile once its
/// sha256 matched the index. Returns the archive bytes fetched. `verify --repair` uses it.
Result<uint64_t> FetchFiles(const Layout& layout, Mirrors& mirrors, const PackageRef& ref,
                            const PackageIndex& index, const std::vector<size_t>& files, EntrySink& sink);

}  // namespace wharf
