// Ed25519 keys and detached signatures (OpenSSL libcrypto).
//
// Key files are PEM (NAME.key: PKCS#8, mode 0600; NAME.pub: SubjectPublicKeyInfo), so
// `openssl pkey` reads them. A key id is the first 16 hex digits of the sha256 of the raw
// 32-byte public key. A signature file is one line: "ed25519 <key id> <base64 signature>".
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace wharf {

struct PublicKey {
  std::string raw;  // 32 bytes
  std::string id;   // 16 hex digits
};

class PrivateKey {
 public:
  PrivateKey(PrivateKey&&) noexcept;
  PrivateKey& operator=(PrivateKey&&) noexcept;
  ~PrivateKey();

  static Result<PrivateKey> Load(const std::string& path);
  const PublicKey& public_key() const { return public_key_; }
  /// The signature file's line (with a trailing newline) for `data`.
  Result<std::string> Sign(std::string_view data) const;

 private:
  struct Impl;
  explicit PrivateKey(std::unique_ptr<Impl> impl, PublicKey public_key);
  std::unique_ptr<Impl> impl_;
  PublicKey public_key_;
};

/// Writes NAME.key (0600) and NAME.pub; refuses to overwrite either.
Result<PublicKey> GenerateKeyPair(const std::string& base_path);
Result<PublicKey> LoadPublicKey(const std::string& path);

/// Checks `signature_line` over `data` against the trusted keys: kRejected when the key id
/// is not trusted or the signature does not verify, kCorrupt when the line is malformed.
/// Returns the id of the key that signed.
Result<std::string> VerifySignature(const std::vector<PublicKey>& trusted, std::string_view data,
                                    std::string_view signature_line);

}  // namespace wharf
