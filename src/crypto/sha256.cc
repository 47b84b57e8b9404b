#include "crypto/sha256.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>

#include "base/file.h"
#include "base/strings.h"

namespace wharf {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Impl() { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(const void* data, size_t size) { EVP_DigestUpdate(impl_->ctx, data, size); }

std::string Sha256::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(impl_->ctx, digest, &length);
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
  return HexEncode(std::string_view(reinterpret_cast<char*>(digest), length));
}

std::string Sha256Hex(std::string_view data) {
  Sha256 hash;
  hash.Update(data);
  return hash.HexDigest();
}

Result<FileDigest> Sha256File(const std::string& path) {
  Sha256 hash;
  FileDigest digest;
  WHARF_TRY(ReadChunks(path, [&](const char* data, size_t size) -> Status {
    hash.Update(data, size);
    digest.size += size;
    return {};
  }));
  digest.sha256 = hash.HexDigest();
  return digest;
}

std::string RandomHex(size_t count) {
  std::string bytes(count, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(count)) != 1) std::abort();
  return HexEncode(bytes);
}

}  // namespace wharf
