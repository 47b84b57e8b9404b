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

/// Writes NAME.key (0600) and NAME.pub; refuses to overwrite either. A folder it makes for
/// them is 0700.
Result<PublicKey> GenerateKeyPair(const std::string& base_path);

/// The bytes of a private key file (a signing key, a TLS key), refused with the fix in the
/// message when the file is not a regular file owned by this user, or when its group or
/// others may read or write it: a key others can read may have been copied, one they can
/// write may have been replaced. Checked on the opened file (fstat), not on the path.
Result<std::string> ReadPrivateKeyFile(const std::string& path);
/// Whether `bytes` (a file's content, or its first KiB) hold a private key: a PEM private
/// key block of any kind (PKCS#8, RSA, EC, encrypted, OpenSSH) or a DER key OpenSSL reads.
bool IsPrivateKey(std::string_view bytes);
Result<PublicKey> LoadPublicKey(const std::string& path);

/// Checks `signature_line` over `data` against the trusted keys: kRejected when the key id
/// is not trusted or the signature does not verify, kCorrupt when the line is malformed.
/// Returns the id of the key that signed.
Result<std::string> VerifySignature(const std::vector<PublicKey>& trusted, std::string_view data,
                                    std::string_view signature_line);

}  // namespace wharf
