#include "crypto/sign.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "base/file.h"
#include "base/strings.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

PublicKey MakePublicKey(std::string raw) {
  PublicKey key;
  key.id = Sha256Hex(raw).substr(0, 16);
  key.raw = std::move(raw);
  return key;
}

Result<PublicKey> RawPublicKey(EVP_PKEY* pkey, const std::string& path) {
  if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519)
    return Fail(ErrorCode::kInvalidArgument,
                path + ": not an Ed25519 key; make one with `wharf keygen --out NAME`");
  std::string raw(32, '\0');
  size_t length = raw.size();
  if (EVP_PKEY_get_raw_public_key(pkey, reinterpret_cast<unsigned char*>(raw.data()), &length) !=
          1 ||
      length != 32)
    return Fail(ErrorCode::kInvalidArgument, path + ": cannot read the Ed25519 public key");
  return MakePublicKey(std::move(raw));
}

Result<BioPtr> PemBio(const std::string& path, const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Fail(ErrorCode::kIo, path + ": out of memory");
  return bio;
}

Status WriteNewFile(const std::string& path, const std::string& data, unsigned mode) {
  if (PathExists(path))
    return Fail(ErrorCode::kAlreadyExists,
                path + ": already exists; refusing to overwrite a key (pick another --out)");
  return WriteFileAtomic(path, data, mode);
}

// "readable by others", "readable and writable by its group", ...
std::string LooseAccess(unsigned mode) {
  auto what = [](unsigned bits) -> std::string {
    if ((bits & 4) && (bits & 2)) return "readable and writable";
    if (bits & 4) return "readable";
    if (bits & 2) return "writable";
    return bits ? "executable" : "";
  };
  std::string group = what((mode >> 3) & 7), others = what(mode & 7);
  if (group == others) return group + " by its group and others";
  if (others.empty()) return group + " by its group";
  if (group.empty()) return others + " by others";
  return group + " by its group and " + others + " by others";
}

std::string PemOf(EVP_PKEY* pkey, bool private_part) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (private_part)
    PEM_write_bio_PrivateKey(bio.get(), pkey, nullptr, nullptr, 0, nullptr, nullptr);
  else
    PEM_write_bio_PUBKEY(bio.get(), pkey);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, length);
}

}  // namespace

struct PrivateKey::Impl {
  PkeyPtr pkey;
};

PrivateKey::PrivateKey(std::unique_ptr<Impl> impl, PublicKey public_key)
    : impl_(std::move(impl)), public_key_(std::move(public_key)) {}
PrivateKey::PrivateKey(PrivateKey&&) noexcept = default;
PrivateKey& PrivateKey::operator=(PrivateKey&&) noexcept = default;
PrivateKey::~PrivateKey() = default;

Result<std::string> ReadPrivateKeyFile(const std::string& path) {
  auto fd = OpenRead(path);
  if (!fd) return std::unexpected(fd.error());
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return IoError("inspect", path);
  if (!S_ISREG(st.st_mode))
    return Fail(ErrorCode::kUnsafe, path + ": not a regular file; a private key must be a plain file of mode 0600");
  if (st.st_uid != ::geteuid())
    return Fail(ErrorCode::kUnsafe,
                path + ": owned by uid " + std::to_string(st.st_uid) + ", not by this user (uid " +
                    std::to_string(::geteuid()) + "), who could not keep it private; run `chown " +
                    std::to_string(::geteuid()) + " " + path + "` as root, or use a key of your own");
  unsigned loose = st.st_mode & 077;
  if (loose != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    bool readable = (loose & 044) != 0;
    return Fail(ErrorCode::kUnsafe,
                path + ": " + LooseAccess(loose) + " (mode " + mode + "); run `chmod 600 " + path + "`, and " +
                    (readable ? "make a new key if others may have copied it"
                              : "make a new key if others may have replaced it"));
  }
  return ReadAll(fd->get(), path, 1 << 16);
}

bool IsPrivateKey(std::string_view bytes) {
  // "-----BEGIN [TYPE ]PRIVATE KEY-----", TYPE in capitals, anywhere (text may precede it).
  constexpr std::string_view kBegin = "-----BEGIN ", kEnd = "PRIVATE KEY-----";
  for (size_t at = bytes.find(kBegin); at != std::string_view::npos; at = bytes.find(kBegin, at + 1)) {
    std::string_view label = bytes.substr(at + kBegin.size());
    size_t end = label.find(kEnd);
    if (end != std::string_view::npos &&
        label.substr(0, end).find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ") == std::string_view::npos)
      return true;
  }
  const auto* der = reinterpret_cast<const unsigned char*>(bytes.data());
  PkeyPtr pkey(d2i_AutoPrivateKey(nullptr, &der, static_cast<long>(bytes.size())));
  ERR_clear_error();  // a failed guess is no error for whoever calls OpenSSL next
  return pkey != nullptr;
}

Result<PrivateKey> PrivateKey::Load(const std::string& path) {
  auto pem = ReadPrivateKeyFile(path);
  if (!pem) return Prefix("signing key", pem.error());
  auto bio = PemBio(path, *pem);
  if (!bio) return std::unexpected(bio.error());
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio->get(), nullptr, nullptr, nullptr));
  if (!pkey)
    return Fail(ErrorCode::kInvalidArgument,
                path + ": not a PEM private key; make one with `wharf keygen --out NAME`");
  auto public_key = RawPublicKey(pkey.get(), path);
  if (!public_key) return std::unexpected(public_key.error());
  auto impl = std::make_unique<Impl>();
  impl->pkey = std::move(pkey);
  return PrivateKey(std::move(impl), std::move(*public_key));
}

Result<std::string> PrivateKey::Sign(std::string_view data) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  unsigned char signature[64];
  size_t length = sizeof signature;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, impl_->pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), signature, &length,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    return Fail(ErrorCode::kIo, "signing failed inside OpenSSL");
  return "ed25519 " + public_key_.id + " " +
         Base64Encode(std::string_view(reinterpret_cast<char*>(signature), length)) + "\n";
}

Result<PublicKey> GenerateKeyPair(const std::string& base_path) {
  std::string key_path = base_path + ".key", pub_path = base_path + ".pub";
  WHARF_TRY(MakeDirs(Dirname(AbsolutePath(key_path)), 0700));
  if (PathExists(key_path) || PathExists(pub_path))
    return Fail(ErrorCode::kAlreadyExists, base_path +
                                               ".key or .pub already exists; refusing to "
                                               "overwrite a key (pick another --out)");
  PkeyPtr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!pkey) return Fail(ErrorCode::kIo, "Ed25519 key generation failed inside OpenSSL");
  WHARF_TRY(WriteNewFile(key_path, PemOf(pkey.get(), true), 0600));
  WHARF_TRY(WriteNewFile(pub_path, PemOf(pkey.get(), false), 0644));
  return RawPublicKey(pkey.get(), pub_path);
}

Result<PublicKey> LoadPublicKey(const std::string& path) {
  auto pem = ReadFile(path, 1 << 16);
  if (!pem) return Prefix("trusted key", pem.error());
  auto bio = PemBio(path, *pem);
  if (!bio) return std::unexpected(bio.error());
  PkeyPtr pkey(PEM_read_bio_PUBKEY(bio->get(), nullptr, nullptr, nullptr));
  if (!pkey)
    return Fail(ErrorCode::kInvalidArgument,
                path + ": not a PEM public key; pass the NAME.pub written by `wharf keygen`");
  return RawPublicKey(pkey.get(), path);
}

Result<std::string> VerifySignature(const std::vector<PublicKey>& trusted, std::string_view data,
                                    std::string_view signature_line) {
  while (!signature_line.empty() && (signature_line.back() == '\n' || signature_line.back() == '\r'))
    signature_line.remove_suffix(1);
  auto parts = Split(signature_line, ' ');
  std::optional<std::string> signature;
  if (parts.size() == 3) signature = Base64Decode(parts[2]);
  if (parts.size() != 3 || parts[0] != "ed25519" || !signature || signature->size() != 64)
    return Fail(ErrorCode::kCorrupt,
                "signature file is malformed (expected \"ed25519 <key id> <base64>\")");
  const PublicKey* key = nullptr;
  for (const auto& candidate : trusted)
    if (candidate.id == parts[1]) key = &candidate;
  if (key == nullptr)
    return Fail(ErrorCode::kRejected, "signed by key " + parts[1] +
                                          ", which is not trusted here; add its .pub with "
                                          "--trust if it is yours");
  PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                           reinterpret_cast<const unsigned char*>(key->raw.data()),
                                           key->raw.size()));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!pkey || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1)
    return Fail(ErrorCode::kIo, "signature check failed inside OpenSSL");
  int ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()),
                            signature->size(), reinterpret_cast<const unsigned char*>(data.data()),
                            data.size());
  if (ok != 1)
    return Fail(ErrorCode::kRejected,
                "signature by key " + key->id + " does not match the content (tampered?)");
  return key->id;
}

}  // namespace wharf
