// SPDX-License-Identifier: MIT
// ISO base media file format (MP4) for one H.264 video track: the fragmented form streamed to
// browsers (/stream.mp4, HLS fMP4 segments) and the progressive file written for timelapses.
//
// Specs: ISO/IEC 14496-12:2015 (boxes: ftyp 4.3, moov/mvhd 8.2.2, trak/tkhd 8.3.2, mdia/mdhd
// 8.4.2, hdlr 8.4.3, vmhd 12.1.2, dinf/dref 8.7.2, stbl and its tables 8.5-8.7, mvex/trex 8.8.3,
// moof/mfhd 8.8.5, traf/tfhd 8.8.7, tfdt 8.8.12, trun 8.8.8, mdat 8.1.1), ISO/IEC 14496-15
// (avc1 sample entry and avcC, 5.3.3-5.4), RFC 8216 section 3.3 (fMP4 HLS segments).
// Samples are H.264 access units in length-prefixed form (4-byte lengths, no SPS/PPS: those
// are in avcC) as codecs::h264::annexBToLengthPrefixed(au, true) makes them.
// There are no B-frames anywhere in printcast: decode time == presentation time, no ctts.
//
// Threading: the free functions are pure; a FileWriter belongs to one thread.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <vector>
#include "printcast/hal/geometry.h"
#include "printcast/hal/packet.h"
#include "printcast/hal/result.h"

namespace printcast::transport::mp4 {

// Builds big-endian boxes. begin() writes a placeholder size and the type and returns the
// box's offset; end() patches the size. Boxes nest by calling begin() again before end().
class BoxWriter {
 public:
  size_t begin(const char (&type)[5]);
  // A FullBox: begin() then version (8 bits) and flags (24 bits).
  size_t beginFull(const char (&type)[5], uint8_t version, uint32_t flags);
  void end(size_t boxOffset);
  void u8(uint8_t v);
  void u16(uint16_t v);
  void u24(uint32_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void zeros(size_t n);
  void fourcc(const char (&type)[5]);
  void bytes(std::span<const uint8_t> b);
  // Overwrite a 32-bit value written earlier (a trun data_offset, stco entries...).
  void patchU32(size_t offset, uint32_t v);
  size_t size() const { return buf_.size(); }
  std::vector<uint8_t>& data() { return buf_; }
  std::vector<uint8_t> take() { return std::move(buf_); }

 private:
  std::vector<uint8_t> buf_;
};

// What the sample entry needs: the coded picture size (from the SPS) and the avcC record.
struct TrackInfo {
  hal::Size size;              // display size after cropping, pixels
  uint32_t timescale = 90000;  // media ticks per second (90 kHz: the MPEG clock)
  std::vector<uint8_t> avcC;   // AVCDecoderConfigurationRecord
  std::string codecString;     // RFC 6381 "avc1.PPCCLL" (for HLS CODECS, MSE isTypeSupported)
};
// Errors: InvalidArgument when the SPS does not parse or the record cannot be built.
hal::Result<TrackInfo> trackInfo(const hal::CodecConfig& config, uint32_t timescale = 90000);

// The initialisation segment of a fragmented stream: ftyp (major iso5; iso6, avc1, mp41) and
// moov with mvhd, one video trak (empty sample tables, duration 0) and mvex/trex.
// Track ID is 1.
std::vector<uint8_t> initSegment(const TrackInfo& track);

struct Sample {
  uint32_t size = 0;      // bytes in mdat
  uint32_t duration = 0;  // media ticks
  bool keyframe = false;  // sync sample (IDR); others get sample_is_non_sync_sample + depends_on 1
};
// A media fragment's header: moof (mfhd with `sequenceNumber` (1-based, increasing), one traf:
// tfhd with default-base-is-moof, tfdt version 1 with `baseDecodeTime` (media ticks since the
// stream's start), trun with data offset and per-sample duration, size and flags) followed by
// the 8-byte mdat header sized for the samples. The caller sends the sample bytes right after,
// in order; the moof is small, so the payload is never copied to make a fragment.
std::vector<uint8_t> fragmentHeader(uint32_t sequenceNumber, uint64_t baseDecodeTime,
                                    std::span<const Sample> samples);

// Ticks for a duration in nanoseconds (rounded down), for timestamps from capture time.
constexpr uint64_t ticksFromNs(int64_t ns, uint32_t timescale) {
  if (ns <= 0) return 0;
  const auto u = static_cast<uint64_t>(ns);
  return u / 1000000000u * timescale + u % 1000000000u * timescale / 1000000000u;  // no overflow
}

// Writes a progressive (non-fragmented) MP4 file with "moov" before "mdat" (fast start: a
// browser plays it while it downloads), atomically:
//   samples go to "<path>.mdat.part" as they are added (memory holds only the sample table,
//   12 bytes per sample), finish() writes "<path>.part" = ftyp + moov + mdat (copied from the
//   data file), fsyncs it and renames it to `path`, then removes the data file. Nothing at
//   `path` is ever half-written; a failure or a destroyed unfinished writer removes the temps.
// Errors (every call): Io with the path and errno text (disk full, unwritable folder).
class FileWriter {
 public:
  static hal::Result<FileWriter> create(std::filesystem::path path, TrackInfo track);
  FileWriter(FileWriter&&) noexcept;
  FileWriter& operator=(FileWriter&&) noexcept;
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;
  ~FileWriter();

  // One access unit, length-prefixed (see above), lasting `duration` ticks.
  hal::Status addSample(std::span<const uint8_t> sample, uint32_t duration, bool keyframe);
  size_t sampleCount() const { return samples_.size(); }
  // Write the file. A writer with no samples fails with InvalidArgument and writes nothing.
  hal::Status finish();

 private:
  FileWriter() = default;
  void abort();
  std::filesystem::path path_;
  TrackInfo track_;
  std::FILE* data_ = nullptr;
  uint64_t dataBytes_ = 0;
  std::vector<Sample> samples_;
};

// A box read back by parseBoxes() (tests and tools).
struct Box {
  std::string type;
  uint64_t offset = 0;               // of the box header in the parsed buffer
  uint64_t size = 0;                 // whole box, header included
  std::span<const uint8_t> payload;  // after the header (and after version/flags for none)
};
// The boxes at one level of `bytes` (handles 64-bit largesize; size 0 = to the end). Stops at
// the first box that runs past the end (a partial box is not returned).
std::vector<Box> parseBoxes(std::span<const uint8_t> bytes);

}  // namespace printcast::transport::mp4
