// A patch from deltas.json or deltas/ (a store or a mirror; unsigned) applied to the file
// the agent holds: "<base file>\n@@@@\n<patch>[\n@@@@\n<declared size>]". The output must
// stay within the declared size both ways (in memory, and into a file: in place when big).
#include <fcntl.h>
#include <zstd.h>

#include "archive/delta.h"
#include "fuzz.h"

using namespace wharf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::Parts(fuzz::Input(data, size), 3);
  if (parts.size() < 2) return 0;
  std::string_view patch = parts[1];
  uint64_t declared = parts[0].size() + 64;
  if (parts.size() > 2) {
    declared = 0;
    for (char c : parts[2].substr(0, 8)) declared = declared * 10 + static_cast<unsigned char>(c) % 10;
  }
  fuzz::ScratchFolder scratch;
  std::string base = parts[0].empty() ? "" : scratch / "base";
  if (!base.empty()) fuzz::WriteScratchFile(base, parts[0]);

  uint64_t produced = 0;
  Status applied = ApplyDelta(base, patch, declared, [&](const char*, size_t n) -> Status {
    produced += n;
    return {};
  });
  if (applied) WHARF_FUZZ_CHECK(produced <= declared);

  std::string target = scratch / "target";
  UniqueFd fd(::open(target.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  WHARF_FUZZ_CHECK(fd.valid());
  uint64_t seen = 0;
  Status written = ApplyDeltaToFile(base, patch, declared, fd.get(), target, [&](const char*, size_t n) { seen += n; });
  if (written) {
    WHARF_FUZZ_CHECK(seen == declared);
    auto content = ReadFile(target, declared + 1);
    WHARF_FUZZ_CHECK(content && content->size() == declared);
  }
  return 0;
}
