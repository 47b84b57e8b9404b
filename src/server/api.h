// The server's routes: the store at "/", the API under /api/v1 (docs/api.md), /metrics.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/clock.h"
#include "archive/snapshot.h"
#include "crypto/sign.h"
#include "server/http.h"
#include "server/records.h"
#include "store/store.h"

namespace wharf {

struct ApiConfig {
  std::string uploads_dir;                 // staging for uploads (inside the state folder)
  uint64_t max_upload = 4ull << 30;        // bytes of one publish request
  int64_t silent_after_seconds = 300;      // a FEC not heard from for this long is "silent"
  int delta_bases = 2;                     // publish: patches against this many earlier versions
  int keep_snapshots = 5;                  // persistent data snapshots kept per FEC
  uint64_t snapshot_max_data = kDefaultSnapshotMaxData;  // unpacked bytes of one snapshot
  uint64_t snapshot_quota = 4ull << 30;    // bytes of snapshots kept per FEC (0: no quota)
};

/// Requests by route and status, bytes served, publishes: rendered into /metrics.
class Metrics {
 public:
  void Observe(const std::string& route, int status, uint64_t bytes);
  void CountPublish() { ++publishes_; }
  std::string RenderHttp() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> publishes_{0};
};

class Api {
 public:
  Api(Store store, Records& records, PrivateKey key, ApiConfig config, const Clock& clock);

  /// Adds every route (and the store as the fallback) to `router`.
  void Register(http::Router& router);
  Metrics& metrics() { return metrics_; }

  /// Indexes generations the store has and the records lack (all of them after a clear).
  Status ImportGenerations();
  /// The same for one FEC.
  Status ImportGenerations(const std::string& fec);

  /// Re-signs (ChangeKind::kRefresh, with `lifetime_seconds`) each FEC's current generation
  /// that expires within `margin_seconds` of the clock, under the store lock like any change;
  /// each in the audit log as a refresh by actor "server". One line per FEC refreshed or
  /// failed, for the log.
  std::vector<std::string> RefreshExpiring(int64_t margin_seconds, int64_t lifetime_seconds);

 private:
  friend class PublishExchange;
  friend class SnapshotExchange;
  Store store_;
  Records& records_;
  PrivateKey key_;
  ApiConfig config_;
  const Clock& clock_;
  Metrics metrics_;
};

}  // namespace wharf
