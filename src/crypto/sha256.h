// The one hashing stream of wharf: SHA-256 through OpenSSL, hex digests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"

namespace wharf {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  /// The lowercase hex digest; the object starts over afterwards.
  std::string HexDigest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Sha256Hex(std::string_view data);

struct FileDigest {
  uint64_t size = 0;
  std::string sha256;
};
/// Hashes a file in bounded memory.
Result<FileDigest> Sha256File(const std::string& path);

/// `count` bytes from the system's cryptographic random source, as hex. Aborts when there
/// is none: nothing wharf makes from it (tokens, ids) would be safe.
std::string RandomHex(size_t count);

}  // namespace wharf
