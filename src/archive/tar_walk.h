// Checks the tar structure of one frame against package.json as the frame is decoded,
// without unpacking anything: every header (ustar, with pax records) must be exactly the
// next entry the index places in that frame (path, type, mode, size, link target, and a
// file's bytes where data_offset says), and nothing else may be there (no other entry,
// no hard link or device, nothing but zeros after the end of the archive).
//
// Frames are independent, so each decoder walks its own frame: the index says where the
// frame starts in the tar stream (in a big file's bytes, or at a header) and which
// entries it holds. A file's bytes are only skipped here; the caller writes them where
// data_offset says, so the walk and the writing agree byte for byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "archive/package_index.h"
#include "base/error.h"

namespace wharf {

class TarFrameWalk {
 public:
  /// Frame `number` of `index` (already validated: entries in archive order, frames
  /// contiguous).
  TarFrameWalk(const PackageIndex& index, size_t number);
  /// The frame's next decoded bytes.
  Status Feed(const char* data, size_t size);
  /// At the frame's end: every entry of the frame was seen, none was cut.
  Status Finish();

 private:
  enum class State { kHeader, kPax, kData, kPadding, kEnd };
  Status Header();
  Status Entry(char type, uint64_t size);
  std::string Where(const std::string& path) const;

  const PackageIndex& index_;
  size_t number_;
  size_t next_entry_ = 0;  // index of the next entry expected in this frame
  size_t end_entry_ = 0;   // the first entry of a later frame
  uint64_t position_ = 0;  // in the tar stream
  State state_ = State::kHeader;
  uint64_t left_ = 0;      // bytes of data, padding or pax records still to come
  char block_[512];
  size_t have_ = 0;        // bytes of block_ (header) so far
  std::string pax_;        // the records of a pax header, for the next entry
  bool has_pax_ = false;
};

}  // namespace wharf
