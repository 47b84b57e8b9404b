// A snapshot of persistent data (from a FEC's agent token to the server, from a store to a
// FEC): a tar, zstd-compressed or not (libarchive reads both), checked as the store checks
// it (CheckSnapshot) and restored as a boot restores it (RestoreSnapshotPath) into a scratch
// root. Properties: what the store accepts, a FEC restores; nothing lands outside the
// declared folders.
#include <sys/stat.h>

#include "archive/names.h"
#include "archive/snapshot.h"
#include "fuzz.h"

using namespace wharf;

namespace {

const std::vector<std::string> kPaths = {"/opt/demo/data", "/var/lib/demo"};

// Every entry under `dir` (relative `rel` to the root) is a declared folder, inside one, or
// a folder on the way to one.
void CheckOnlyDeclared(const std::string& dir, const std::string& rel) {
  auto names = ListDir(dir);
  WHARF_FUZZ_CHECK(names);
  for (const auto& name : *names) {
    std::string path = rel.empty() ? name : rel + "/" + name;
    bool inside = false, above = false;
    for (const auto& p : kPaths) {
      inside = inside || IsUnderPrefix(path, p);
      above = above || IsUnderPrefix(p.substr(1), "/" + path);
    }
    if (!inside && !above) std::fprintf(stderr, "restored outside the declared folders: %s\n", path.c_str());
    WHARF_FUZZ_CHECK(inside || above);
    struct stat st;
    if (!inside && ::lstat(JoinPath(dir, name).c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      CheckOnlyDeclared(JoinPath(dir, name), path);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ScratchFolder scratch;
  std::string archive = scratch / "snapshot.tar.zst";
  fuzz::WriteScratchFile(archive, fuzz::Input(data, size));
  auto checked = CheckSnapshot(archive, kPaths);
  std::string root = scratch / "root";
  (void)MakeDirs(root);
  for (const auto& path : kPaths) {
    auto restored = RestoreSnapshotPath(archive, root, path, kPaths);
    if (checked && !restored)
      std::fprintf(stderr, "the store accepts, the restore refuses: %s\n", restored.error().message.c_str());
    WHARF_FUZZ_CHECK(!checked || restored);
  }
  CheckOnlyDeclared(root, "");
  return 0;
}
