// SPDX-License-Identifier: MIT
// FLV demuxer for H.264 video: an FLV byte stream (a file, or an HTTP-FLV live stream such as a
// printer's stock camera service or another printcast's /flv) read incrementally into Annex-B
// access units. The mirror of the muxer in flv.h.
// Specs: Adobe Flash Video File Format Specification v10.1, annex E (E.2 header, E.3 body,
// E.4.1 tags, E.4.3.1 VIDEOTAGHEADER: FrameType, CodecID 7 = AVC, AVCPacketType,
// CompositionTime); ISO/IEC 14496-15 5.3.3.1 (AVCDecoderConfigurationRecord: the parameter sets
// and lengthSizeMinusOne, the size of the NAL unit lengths in the NALU tags).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "printcast/hal/packet.h"
#include "printcast/hal/result.h"

namespace printcast::transport::flv {

// The parameter sets and NAL length size of an AVCDecoderConfigurationRecord.
struct AvcConfig {
  std::vector<std::vector<uint8_t>> sps;  // each one NAL unit without start code
  std::vector<std::vector<uint8_t>> pps;
  uint8_t nalLengthSize = 4;  // lengthSizeMinusOne + 1: 1, 2 or 4
};

// Parse an AVCDecoderConfigurationRecord (14496-15 5.3.3.1: configurationVersion 1, profile,
// compatibility, level, lengthSizeMinusOne, the SPS and PPS arrays; a High-profile extension
// after them is ignored). Errors: InvalidArgument (truncated, configurationVersion not 1,
// lengthSizeMinusOne 2, no SPS or no PPS, an empty parameter set), saying which.
hal::Result<AvcConfig> parseAvcDecoderConfigurationRecord(std::span<const uint8_t> record);

// One H.264 access unit read from the stream.
struct AccessUnit {
  // Annex-B (4-byte start codes), every NAL unit of the tag. An IDR access unit without SPS/PPS
  // gets those of the latest sequence header (or of the latest in-band SPS/PPS) in front, after
  // a leading access unit delimiter.
  std::vector<uint8_t> annexB;
  bool keyframe = false;  // FLV FrameType 1 (the muxer's word)
  bool idr = false;       // holds an IDR slice (the bitstream's word)
  // Tag timestamp (DTS) + CompositionTime, in ms; the tag timestamps are unwrapped (the 32-bit
  // FLV clock wraps after 49.7 days), so this grows past 2^32 and may start anywhere.
  int64_t ptsMs = 0;
  int64_t dtsMs = 0;
  // The parameter sets in force (the latest sequence header's first SPS and PPS, replaced by
  // in-band ones); null before any came. Shared by every access unit until they change.
  std::shared_ptr<const hal::CodecConfig> config;
};

// Incremental FLV demuxer: feed() bytes as they arrive (any split), pop() the access units.
//  - Header: "FLV" version 1; DataOffset above 9 is skipped; TypeFlags that say audio only
//    (0x04 without 0x01) are refused, 0 is accepted (some live servers write it).
//  - Tags: audio (8) and script data (18) are skipped, as are other tag types; a video tag's
//    CodecID must be 7 (AVC); AVCPacketType 0 is a sequence header (its record replaces the
//    parameter sets and the NAL length size), 1 a NALU tag (length-prefixed NAL units ->
//    Annex-B), 2 end of sequence (ignored). A video info/command frame (FrameType 5) is skipped.
//    NALU tags before any sequence header are read with 4-byte lengths.
//  - PreviousTagSize is not checked (DataSize alone frames the tags, as flv::parseStream).
// Memory: at most one tag (maxTagBytes) is buffered, plus the access units not popped.
// Threading: one thread at a time.
class FlvDemuxer {
 public:
  struct Limits {
    size_t maxTagBytes = size_t{8} * 1024 * 1024;  // one tag's DataSize
  };
  FlvDemuxer() : FlvDemuxer(Limits{}) {}
  explicit FlvDemuxer(Limits limits) : limits_(limits) {}

  // Errors (the demuxer stays failed; a new stream needs a new demuxer): InvalidArgument naming
  // what is wrong: "not FLV" (bad signature or version), "no video" (audio-only TypeFlags), a tag
  // above maxTagBytes, "codec id N is not H.264 (7)" (an enhanced-FLV tag: its FourCC), an
  // encrypted tag, a sequence header that does not parse, a NAL unit length past the tag's end.
  hal::Status feed(std::span<const uint8_t> bytes);

  // The oldest access unit not yet popped; false when there is none.
  bool pop(AccessUnit& out);
  size_t pending() const { return units_.size(); }
  // The parameter sets in force; null before any came.
  const std::shared_ptr<const hal::CodecConfig>& codecConfig() const { return config_; }
  bool headerRead() const { return headerDone_; }
  uint64_t videoTags() const { return videoTags_; }
  uint64_t skippedTags() const { return skippedTags_; }  // audio, script data, others

 private:
  hal::Status parse();
  hal::Status onTag(uint8_t type, uint32_t timestamp, std::span<const uint8_t> body);
  hal::Status onVideo(uint32_t timestamp, std::span<const uint8_t> body);
  hal::Status onNalus(bool keyframe, int32_t compositionTime, std::span<const uint8_t> data);
  hal::Status fail(std::string message);

  Limits limits_;
  hal::Status failed_;
  std::vector<uint8_t> buffer_;
  size_t start_ = 0;  // parsed bytes at the front of buffer_
  bool headerDone_ = false;
  size_t skip_ = 0;  // header bytes beyond 9 (DataOffset) and PreviousTagSize0 still to skip
  AvcConfig avc_;
  std::shared_ptr<const hal::CodecConfig> config_;
  bool haveLastTimestamp_ = false;
  uint32_t lastTimestamp_ = 0;
  int64_t timestamp_ = 0;  // unwrapped
  std::deque<AccessUnit> units_;
  uint64_t videoTags_ = 0;
  uint64_t skippedTags_ = 0;
};

}  // namespace printcast::transport::flv
