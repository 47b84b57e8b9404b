// Test helpers: a scratch folder removed at the end of a test, and a small sample tree.
#pragma once

#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "base/file.h"

namespace wharf {

class ScratchDir {
 public:
  ScratchDir() {
    char name[] = "/tmp/wharf-test-XXXXXX";
    path_ = ::mkdtemp(name);
  }
  ~ScratchDir() { (void)RemoveTree(path_); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return JoinPath(path_, rel); }

 private:
  std::string path_;
};

inline void WriteTestFile(const std::string& path, const std::string& content, unsigned mode = 0644) {
  (void)MakeDirs(Dirname(path));
  (void)WriteFileAtomic(path, content, mode);
}

/// bin/app (0755), etc/app.conf (0640), lib/big (3 frames at 64 KiB), a link, an empty dir.
inline void MakeSampleTree(const std::string& dir) {
  WriteTestFile(dir + "/bin/app", "#!/bin/sh\necho app\n", 0755);
  WriteTestFile(dir + "/etc/app.conf", "level = 3\n", 0640);
  std::string big;
  for (int i = 0; i < 150000; ++i) big += static_cast<char>('a' + (i * 7919L) % 26);
  WriteTestFile(dir + "/lib/big", big);
  (void)::symlink("big", (dir + "/lib/big.1").c_str());
  (void)MakeDirs(dir + "/empty");
}

}  // namespace wharf
