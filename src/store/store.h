// The store: a folder of static files that any web server can serve (DESIGN, "The store").
//
//   software/<name>/<version>/<name>-<version>.tar.zst, package.json   immutable once there
//   fecs/<FEC>/generation.json (+ .sig)          the FEC's signed desired state
//   fecs/<FEC>/generations/<n>.json (+ .sig)     every generation, never rewritten
//   fecs/<FEC>/software/<name>.tar.zst ->        the human view, derived from the generation
//   .wharf/lock                                  the store lock (never served)
//
// Every write goes to a temp name, is fsynced and renamed into place under the lock.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "archive/package_index.h"
#include "base/error.h"
#include "base/file.h"
#include "crypto/sign.h"
#include "generation/generation.h"

namespace wharf {

struct StoredGeneration {
  Generation generation;
  std::string json;  // its exact bytes, which the signature covers
};

struct PublishOutcome {
  PackageIndex index;
  bool already_present = false;  // the same bytes were there: nothing was written
};

class Store {
 public:
  /// Opens the store at `root`; with `create`, makes the folder and its layout first.
  static Result<Store> Open(const std::string& root, bool create);

  const std::string& root() const { return root_; }
  /// Holds the store lock; every change happens under it.
  Result<FileLock> Lock() const;

  /// Checks the archive against its package.json (every frame and file) and makes the
  /// version visible under software/<name>/<version>/ in one rename. The same bytes again
  /// are a no-op; other bytes for a published version are refused (kAlreadyExists).
  /// Beside the archive it writes zstd patches of changed big files against the newest
  /// `delta_bases` earlier versions (deltas.json), for agents that hold those.
  Result<PublishOutcome> Publish(const std::string& archive_path, const std::string& index_path,
                                 bool dry_run, int delta_bases = 2);

  /// The reference a generation records for a published version.
  Result<PackageRef> ResolvePackage(const std::string& name, const std::string& version) const;
  Result<PackageIndex> ReadIndex(const std::string& name, const std::string& version) const;
  /// The published versions of a package, sorted.
  Result<std::vector<std::string>> Versions(const std::string& name) const;

  /// The FEC's current generation, or nothing when it has none yet.
  Result<std::optional<StoredGeneration>> CurrentGeneration(const std::string& fec) const;
  /// Every generation of a FEC, ascending.
  Result<std::vector<Generation>> History(const std::string& fec) const;
  /// FECs that have a folder in the store, sorted.
  Result<std::vector<std::string>> Fecs() const;

  /// Signs and writes `generation` (whose bytes are `json`) as the FEC's current one,
  /// keeping it under generations/, then re-derives the FEC's human view.
  /// REQUIRES: the store lock is held.
  Status WriteGeneration(const Generation& generation, const std::string& json,
                         const PrivateKey& key);

 private:
  explicit Store(std::string root) : root_(std::move(root)) {}
  std::string FecDir(const std::string& fec) const;
  /// The newest `count` published versions of `name` other than `except`, newest first,
  /// with their archives' paths.
  std::vector<std::pair<std::string, PackageIndex>> RecentVersions(const std::string& name,
                                                                   const std::string& except,
                                                                   int count) const;
  Status DeriveView(const Generation& generation);
  Result<PublishOutcome> CompareWithPublished(const std::string& dest, const PackageIndex& index,
                                              const std::string& index_json);

  std::string root_;
};

}  // namespace wharf
