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
  bool rebuild_db = false;
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
