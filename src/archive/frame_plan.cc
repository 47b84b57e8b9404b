#include "archive/frame_plan.h"

#include <algorithm>

namespace wharf {

std::vector<uint32_t> FramesOfFiles(const PackageIndex& index, const std::vector<size_t>& files) {
  std::vector<uint32_t> frames;
  for (size_t i : files) {
    const FileEntry& f = index.files[i];
    if (f.size == 0) continue;
    // The first frame whose raw range ends after the file's first byte.
    auto first = std::upper_bound(index.frames.begin(), index.frames.end(), f.data_offset,
                                  [](uint64_t offset, const Frame& frame) {
                                    return offset < frame.raw_offset + frame.raw_size;
                                  });
    for (auto it = first; it != index.frames.end() && it->raw_offset < f.data_offset + f.size; ++it)
      frames.push_back(static_cast<uint32_t>(it - index.frames.begin()));
  }
  std::sort(frames.begin(), frames.end());
  frames.erase(std::unique(frames.begin(), frames.end()), frames.end());
  return frames;
}

std::vector<ByteRange> CoalesceFrames(const PackageIndex& index, const std::vector<uint32_t>& frames,
                                      uint64_t gap) {
  std::vector<ByteRange> ranges;
  for (uint32_t n : frames) {
    const Frame& frame = index.frames[n];
    if (!ranges.empty() && frame.offset <= ranges.back().offset + ranges.back().size + gap) {
      ranges.back().size = frame.offset + frame.size - ranges.back().offset;
    } else {
      ranges.push_back({frame.offset, frame.size});
    }
  }
  return ranges;
}

FetchPlan PlanFetch(const PackageIndex& index, const std::function<bool(const std::string&)>& have,
                    uint64_t gap) {
  FetchPlan plan;
  for (size_t i = 0; i < index.files.size(); ++i) {
    const FileEntry& f = index.files[i];
    if (f.type == EntryType::kFile && f.size > 0 && !have(f.sha256)) plan.missing.push_back(i);
  }
  plan.frames = FramesOfFiles(index, plan.missing);
  plan.ranges = CoalesceFrames(index, plan.frames, gap);
  for (const auto& r : plan.ranges) plan.bytes += r.size;
  return plan;
}

}  // namespace wharf
