// `wharf serve` and `wharf token`: the central server and its access tokens.
//   wharf serve exits 0 on SIGINT/SIGTERM, 1 when it cannot start, 2 on a usage error.
#pragma once

#include <cstdint>
#include <string>

namespace wharf {

struct ServeArgs {
  std::string store;
  std::string state;  // default <store>.state, beside the store (an old <store>/.wharf is moved there)
  std::string listen = "127.0.0.1:8080";
  std::string key;    // default <state>/signing.key
  unsigned threads = 4;
  std::string tls_cert;
  std::string tls_key;
  uint64_t max_upload = 4ull << 30;
  int keep_snapshots = 5;  // persistent data snapshots kept per FEC
  int64_t silent_after = 300;
  uint64_t snapshot_max_data = 4ull << 30;  // unpacked bytes of one snapshot
  uint64_t snapshot_quota = 4ull << 30;     // bytes of snapshots kept per FEC; 0: none
  int audit_days = 400;                     // audit log retention; 0: forever
  int heartbeat_days = 90;                  // activations (heartbeat history); 0: forever
  bool rebuild_db = false;
  unsigned header_timeout = 10;        // seconds for a whole request header
  unsigned per_ip_connections = 64;    // open connections from one address
  unsigned pending_connections = 1000; // connections still sending their header
  uint64_t min_body_rate = 16 * 1024;  // bytes/s
  // The server re-signs a FEC's current generation when it expires within refresh_before
  // ("0": never), looking at start and every refresh_every, with the lifetime refresh_expires_in.
  std::string refresh_before = "10d";
  std::string refresh_every = "1h";
  std::string refresh_expires_in = "30d";
};

struct TokenArgs {
  std::string store;
  std::string state;
  std::string name;
  std::string role;
  std::string fec;
  bool json = false;
};

int RunServe(const ServeArgs& args);
int RunTokenCreate(const TokenArgs& args);
int RunTokenList(const TokenArgs& args);
int RunTokenRevoke(const TokenArgs& args);

}  // namespace wharf
