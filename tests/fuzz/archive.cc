// A whole package: its archive checked against package.json as `wharf publish` checks an
// upload (VerifyArchive: libarchive and the frame walk), unpacked as the agent's first sync
// unpacks it (UnpackFrames from a pipe, into a prepared TreeWriter) and as ExtractArchive
// does. "<package.json>\n@@@@\n<frame 0>\n@@@@\n<frame 1>...": each frame part is tar bytes
// that the harness compresses into one frame (or, when it starts with zstd's magic number,
// a compressed frame taken as it is). The harness writes what a hostile publisher can always
// get right into the index (the frames' extents and sha256, the archive's size and sha256,
// and each file's sha256 where its bytes lie in the stream), so that the fuzzer works on the
// structure: entries, paths, modes, links, data offsets, tar headers.
//
// Properties: whatever publish accepts, the agent unpacks, and both unpackers make the same
// tree.
#include <zstd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "archive/package_index.h"
#include "archive/reader.h"
#include "base/file.h"
#include "crypto/sha256.h"
#include "fuzz.h"

using namespace wharf;
using Json = nlohmann::ordered_json;

namespace {

constexpr std::string_view kZstdMagic = "\x28\xb5\x2f\xfd";

std::string Compress(std::string_view raw) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  out.resize(ZSTD_compress2(cctx, out.data(), out.size(), raw.data(), raw.size()));
  ZSTD_freeCCtx(cctx);
  return out;
}

// package.json with the frames, sizes and hashes of `frames`; nullopt when the JSON is not
// an object the fuzzer can be helped with.
std::optional<std::string> Complete(std::string_view json, const std::vector<std::string_view>& frames,
                                    std::string& archive) {
  Json j = Json::parse(json, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  std::string raw_stream;
  j["frames"] = Json::array();
  for (std::string_view part : frames) {
    std::string compressed;
    uint64_t raw_size = part.size();
    if (part.starts_with(kZstdMagic)) {
      compressed = part;
      raw_size = ZSTD_getFrameContentSize(part.data(), part.size());
      if (raw_size > kMaxFrameRawSize) return std::nullopt;
      std::string raw(raw_size, '\0');
      (void)ZSTD_decompress(raw.data(), raw.size(), part.data(), part.size());
      raw_stream += raw;
    } else {
      compressed = Compress(part);
      raw_stream.append(part);
    }
    j["frames"].push_back({{"offset", archive.size()}, {"size", compressed.size()},
                           {"raw_offset", raw_stream.size() - raw_size}, {"raw_size", raw_size},
                           {"sha256", Sha256Hex(compressed)}});
    archive += compressed;
  }
  j["archive_size"] = archive.size();
  j["archive_sha256"] = Sha256Hex(archive);
  j["raw_size"] = raw_stream.size();
  if (j.contains("files") && j["files"].is_array())
    for (auto& f : j["files"]) {
      if (!f.is_object() || !f.contains("data_offset") || !f["data_offset"].is_number_unsigned() ||
          !f.contains("size") || !f["size"].is_number_unsigned())
        continue;
      uint64_t offset = f["data_offset"].get<uint64_t>(), size = f["size"].get<uint64_t>();
      if (offset <= raw_stream.size() && size <= raw_stream.size() - offset)
        f["sha256"] = Sha256Hex(std::string_view(raw_stream).substr(offset, size));
    }
  return j.dump();
}

// The agent's way: the archive through a pipe, a decoder per core.
Status Unpack(const std::string& archive, const PackageIndex& index, const std::string& dest) {
  auto writer = TreeWriter::Create(dest, index.prefix);
  if (!writer) return std::unexpected(writer.error());
  (*writer)->Prepare(index);
  BytePipe pipe(4096);
  std::thread download([&] {
    for (size_t at = 0; at < archive.size(); at += 1000)
      if (!pipe.Write(archive.data() + at, std::min<size_t>(1000, archive.size() - at))) break;
    pipe.Close();
  });
  Status status = UnpackFrames(pipe, index, **writer, 2);
  pipe.Stop();
  download.join();
  if (!status) return status;
  return (*writer)->Finish();
}

// The same entries with the same content, modes and link targets in both trees.
void CheckSameTrees(const PackageIndex& index, const std::string& a, const std::string& b) {
  for (const auto& e : index.files) {
    std::string rel = e.path.substr(index.prefix.size() - 1);  // "" or "/bin/app"
    std::string pa = a + rel, pb = b + rel;
    if (e.type == EntryType::kFile) {
      auto ca = ReadFile(pa), cb = ReadFile(pb);
      WHARF_FUZZ_CHECK(ca && cb && *ca == *cb && ca->size() == e.size);
    } else if (e.type == EntryType::kSymlink) {
      auto la = ReadLink(pa), lb = ReadLink(pb);
      WHARF_FUZZ_CHECK(la && lb && *la == *lb && *la == e.link);
    } else {
      WHARF_FUZZ_CHECK(IsDirectory(pa) && IsDirectory(pb));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = fuzz::Parts(fuzz::Input(data, size), 32);
  if (parts.size() < 2) return 0;
  std::string archive;
  auto json = Complete(parts[0], {parts.begin() + 1, parts.end()}, archive);
  if (!json) return 0;
  auto index = ParsePackageIndex(*json);
  if (!index) return 0;

  fuzz::ScratchFolder scratch;
  std::string archive_path = scratch / index->archive;
  fuzz::WriteScratchFile(archive_path, archive);
  Status published = VerifyArchive(archive_path, *index);
  Status unpacked = Unpack(archive, *index, scratch / "agent");
  Status extracted = ExtractArchive(archive_path, *index, scratch / "extract");
  if (published) {  // what publish accepts, every agent accepts
    if (!unpacked) std::fprintf(stderr, "publish accepts, the agent refuses: %s\n", unpacked.error().message.c_str());
    if (!extracted) std::fprintf(stderr, "publish accepts, ExtractArchive refuses: %s\n", extracted.error().message.c_str());
    WHARF_FUZZ_CHECK(unpacked && extracted);
  }
  if (unpacked && extracted) CheckSameTrees(*index, scratch / "agent", scratch / "extract");
  return 0;
}
