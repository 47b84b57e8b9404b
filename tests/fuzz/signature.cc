// A generation's signature line from a store or a mirror ("ed25519 <key id> <base64>"),
// checked over the generation's bytes: "<signature line>\n@@@@\n<signed bytes>". The seeds
// are signed by the key below (made for the corpus; its private half was not kept). A third
// part, when there is one, is read as a trusted .pub file.
#include "base/strings.h"
#include "crypto/sha256.h"
#include "crypto/sign.h"
#include "fuzz.h"

using namespace wharf;

namespace {

PublicKey CorpusKey() {
  const char* hex = "360ad03be18e059746e87ed70d7ed74e42a187a31293e1ef2c23f8a396d347fa";
  std::string raw;
  for (size_t i = 0; i < 64; i += 2) raw += static_cast<char>(std::stoi(std::string(hex + i, 2), nullptr, 16));
  return {raw, Sha256Hex(raw).substr(0, 16)};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const PublicKey key = CorpusKey();
  auto parts = fuzz::Parts(fuzz::Input(data, size), 3);
  std::string_view signed_bytes = parts.size() > 1 ? parts[1] : std::string_view();
  auto verified = VerifySignature({key}, signed_bytes, parts[0]);
  if (verified) WHARF_FUZZ_CHECK(*verified == key.id);
  if (parts.size() > 2) {
    fuzz::ScratchFolder scratch;
    std::string pub = scratch / "trusted.pub";
    fuzz::WriteScratchFile(pub, parts[2]);
    if (auto loaded = LoadPublicKey(pub)) {
      WHARF_FUZZ_CHECK(loaded->raw.size() == 32 && loaded->id == Sha256Hex(loaded->raw).substr(0, 16));
      (void)VerifySignature({*loaded, key}, signed_bytes, parts[0]);
    }
  }
  return 0;
}
