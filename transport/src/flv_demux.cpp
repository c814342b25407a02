// SPDX-License-Identifier: MIT
// FLV demuxer for H.264 video (see flv_demux.h; FLV spec v10.1 annex E, ISO/IEC 14496-15 5.3.3.1).
#include "printcast/transport/flv_demux.h"

#include <fmt/format.h>

#include <algorithm>

#include "printcast/codecs/h264.h"

namespace printcast::transport::flv {
namespace {

namespace h264 = codecs::h264;

constexpr size_t kFileHeaderSize = 9;
constexpr size_t kTagHeaderSize = 11;
constexpr size_t kPreviousTagSizeSize = 4;
constexpr uint8_t kTagVideo = 9;
constexpr uint8_t kTagFilter = 0x20;   // E.4.1: the tag is encrypted
constexpr uint8_t kFlagsVideo = 0x01;  // E.2 TypeFlagsVideo
constexpr uint8_t kFlagsAudio = 0x04;  // E.2 TypeFlagsAudio
constexpr uint8_t kCodecAvc = 7;
constexpr uint8_t kFrameKey = 1;
constexpr uint8_t kFrameInfo = 5;  // video info/command frame
constexpr uint8_t kAvcSequenceHeader = 0;
constexpr uint8_t kAvcNalu = 1;
constexpr uint8_t kStartCode[] = {0, 0, 0, 1};

// `n` bytes at `p`, big-endian (n <= 4).
uint32_t readBigEndian(const uint8_t* p, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v << 8 | p[i];
  return v;
}

void appendNal(std::vector<uint8_t>& out, std::span<const uint8_t> nal) {
  out.insert(out.end(), std::begin(kStartCode), std::end(kStartCode));
  out.insert(out.end(), nal.begin(), nal.end());
}

}  // namespace

hal::Result<AvcConfig> parseAvcDecoderConfigurationRecord(std::span<const uint8_t> record) {
  auto bad = [](std::string what) {
    return hal::Error{hal::Errc::InvalidArgument, 0, "AVCDecoderConfigurationRecord: " + what};
  };
  if (record.size() < 7)
    return bad(fmt::format("{} bytes, shorter than the 7 of its fixed part", record.size()));
  if (record[0] != 1) return bad(fmt::format("configurationVersion {} is not 1", record[0]));
  AvcConfig config;
  const unsigned lengthSizeMinusOne = record[4] & 0x03;
  if (lengthSizeMinusOne == 2) return bad("lengthSizeMinusOne 2 (NAL lengths are 1, 2 or 4 bytes)");
  config.nalLengthSize = static_cast<uint8_t>(lengthSizeMinusOne + 1);
  size_t pos = 5;
  // numOfSequenceParameterSets (5 bits), then numOfPictureParameterSets (8 bits) after the SPSs.
  for (int array = 0; array < 2; ++array) {
    if (pos >= record.size()) return bad("truncated before the PPS count");
    const size_t count = array == 0 ? (record[pos] & 0x1F) : record[pos];
    ++pos;
    auto& sets = array == 0 ? config.sps : config.pps;
    for (size_t i = 0; i < count; ++i) {
      if (record.size() - pos < 2) return bad("truncated in a parameter set length");
      const size_t length = readBigEndian(&record[pos], 2);
      pos += 2;
      if (length == 0) return bad("an empty parameter set");
      if (record.size() - pos < length) return bad("a parameter set runs past the end");
      sets.emplace_back(record.begin() + static_cast<std::ptrdiff_t>(pos),
                        record.begin() + static_cast<std::ptrdiff_t>(pos + length));
      pos += length;
    }
  }
  if (config.sps.empty()) return bad("no SPS");
  if (config.pps.empty()) return bad("no PPS");
  return config;
}

hal::Status FlvDemuxer::fail(std::string message) {
  failed_ = hal::Status(hal::Errc::InvalidArgument, "FLV: " + std::move(message));
  return failed_;
}

hal::Status FlvDemuxer::feed(std::span<const uint8_t> bytes) {
  if (!failed_) return failed_;
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  auto st = parse();
  // Drop what was read once it is all of the buffer or worth the move (a large tag arrives in
  // many reads: moving its partial bytes on every one would be quadratic).
  if (start_ == buffer_.size() || start_ >= size_t{64} * 1024) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(start_));
    start_ = 0;
  }
  return st;
}

hal::Status FlvDemuxer::parse() {
  for (;;) {
    const size_t left = buffer_.size() - start_;
    const uint8_t* p = buffer_.data() + start_;
    if (!headerDone_) {
      // Signature and version byte by byte, so a stream that is not FLV fails at once.
      for (size_t i = 0; i < std::min<size_t>(left, 4); ++i) {
        if (p[i] != "FLV\x01"[i]) {
          return fail(i < 3 ? "not FLV (bad signature; the stream does not start with \"FLV\")"
                            : fmt::format("not FLV version 1 (version {})", p[i]));
        }
      }
      if (left < kFileHeaderSize) return {};
      const uint8_t flags = p[4];
      if ((flags & kFlagsVideo) == 0 && (flags & kFlagsAudio) != 0) {
        return fail(fmt::format("no video (TypeFlags 0x{:02x}: audio only)", flags));
      }
      const uint32_t dataOffset = readBigEndian(p + 5, 4);
      if (dataOffset < kFileHeaderSize)
        return fail(fmt::format("header DataOffset {} is below 9", dataOffset));
      if (dataOffset > 1024) return fail(fmt::format("header DataOffset {} is above 1024", dataOffset));
      headerDone_ = true;
      skip_ = dataOffset - kFileHeaderSize + kPreviousTagSizeSize;
      start_ += kFileHeaderSize;
      continue;
    }
    if (skip_ > 0) {
      const size_t n = std::min(skip_, left);
      skip_ -= n;
      start_ += n;
      if (skip_ > 0) return {};
      continue;
    }
    if (left < kTagHeaderSize) return {};
    const uint8_t type = p[0];
    const size_t dataSize = readBigEndian(p + 1, 3);
    if (dataSize > limits_.maxTagBytes) {
      return fail(fmt::format("a tag of {} bytes (type {}) is above the {} byte limit", dataSize, type & 0x1F,
                              limits_.maxTagBytes));
    }
    if (left < kTagHeaderSize + dataSize) return {};
    const uint32_t timestamp = readBigEndian(p + 4, 3) | static_cast<uint32_t>(p[7]) << 24;
    if (auto st = onTag(type, timestamp, {p + kTagHeaderSize, dataSize}); !st) {
      failed_ = st;
      return st;
    }
    start_ += kTagHeaderSize + dataSize;
    skip_ = kPreviousTagSizeSize;
  }
}

hal::Status FlvDemuxer::onTag(uint8_t type, uint32_t timestamp, std::span<const uint8_t> body) {
  if ((type & 0x1F) != kTagVideo) {
    ++skippedTags_;
    return {};
  }
  if ((type & kTagFilter) != 0) return fail("an encrypted video tag (Filter bit set)");
  ++videoTags_;
  return onVideo(timestamp, body);
}

hal::Status FlvDemuxer::onVideo(uint32_t timestamp, std::span<const uint8_t> body) {
  if (body.empty()) return {};  // nothing to read (some muxers pad with empty tags)
  const uint8_t frameType = (body[0] >> 4) & 0x07;
  if ((body[0] & 0x80) != 0) {
    // Enhanced FLV (IsExHeader): a FourCC instead of the CodecID, e.g. hvc1 for H.265.
    std::string fourcc;
    for (size_t i = 1; i < std::min<size_t>(body.size(), 5); ++i)
      fourcc += body[i] >= 0x20 && body[i] < 0x7F ? static_cast<char>(body[i]) : '?';
    return fail(fmt::format("an enhanced-FLV video tag (FourCC '{}') is not H.264", fourcc));
  }
  const uint8_t codec = body[0] & 0x0F;
  if (codec != kCodecAvc) return fail(fmt::format("codec id {} is not H.264 (7)", codec));
  if (frameType == kFrameInfo) return {};
  if (body.size() < 5)
    return fail(fmt::format("an AVC video tag of {} bytes, shorter than its 5-byte header", body.size()));
  const uint8_t packetType = body[1];
  // CompositionTime: SI24, the PTS offset in ms.
  int32_t cts = static_cast<int32_t>(readBigEndian(&body[2], 3));
  if ((cts & 0x800000) != 0) cts -= 0x1000000;
  // Unwrap the 32-bit tag clock (a step back counts as one, not as a wrap).
  if (!haveLastTimestamp_) {
    haveLastTimestamp_ = true;
    timestamp_ = timestamp;
  } else {
    timestamp_ += static_cast<int32_t>(timestamp - lastTimestamp_);
  }
  lastTimestamp_ = timestamp;
  if (packetType == kAvcSequenceHeader) {
    auto config = parseAvcDecoderConfigurationRecord(body.subspan(5));
    if (!config) return fail("sequence header: " + config.error().message);
    avc_ = std::move(*config);
    auto shared = std::make_shared<hal::CodecConfig>(hal::CodecConfig{avc_.sps.front(), avc_.pps.front()});
    if (config_ == nullptr || *config_ != *shared) config_ = std::move(shared);
    return {};
  }
  if (packetType != kAvcNalu) return {};  // 2: end of sequence; others are not defined
  return onNalus(frameType == kFrameKey, cts, body.subspan(5));
}

hal::Status FlvDemuxer::onNalus(bool keyframe, int32_t compositionTime, std::span<const uint8_t> data) {
  AccessUnit au;
  au.keyframe = keyframe;
  au.dtsMs = timestamp_;
  au.ptsMs = timestamp_ + compositionTime;
  au.annexB.reserve(data.size() + 64);
  const size_t lengthSize = avc_.nalLengthSize;
  bool haveSps = false;
  bool havePps = false;
  std::vector<uint8_t> inbandSps, inbandPps;
  size_t afterAud = 0;  // where parameter sets go: after a leading access unit delimiter
  size_t pos = 0;
  while (pos < data.size()) {
    if (data.size() - pos < lengthSize) {
      return fail(fmt::format("a NALU tag ends inside a {}-byte NAL unit length", lengthSize));
    }
    const size_t length = readBigEndian(&data[pos], lengthSize);
    pos += lengthSize;
    if (length > data.size() - pos) {
      return fail(fmt::format("a NAL unit length of {} runs past the tag's end ({} bytes left)", length,
                              data.size() - pos));
    }
    const auto nal = data.subspan(pos, length);
    pos += length;
    if (nal.empty()) continue;
    const uint8_t nalType = nal[0] & 0x1F;
    if (nalType == h264::kSps) {
      haveSps = true;
      inbandSps.assign(nal.begin(), nal.end());
    } else if (nalType == h264::kPps) {
      havePps = true;
      inbandPps.assign(nal.begin(), nal.end());
    } else if (nalType == h264::kIdrSlice) {
      au.idr = true;
    }
    appendNal(au.annexB, nal);
    if (nalType == h264::kAud && afterAud == 0 && au.annexB.size() == 4 + nal.size())
      afterAud = au.annexB.size();
  }
  if (au.annexB.empty()) return {};
  // In-band parameter sets replace the sequence header's (cameras that change them in band).
  if (haveSps && havePps) {
    hal::CodecConfig inband{std::move(inbandSps), std::move(inbandPps)};
    if (config_ == nullptr || *config_ != inband) {
      avc_.sps = {inband.sps};
      avc_.pps = {inband.pps};
      config_ = std::make_shared<hal::CodecConfig>(std::move(inband));
    }
  }
  if (au.idr && !(haveSps && havePps) && !avc_.sps.empty() && !avc_.pps.empty()) {
    // Parameter sets in front, after a leading access unit delimiter (H.264 7.4.1.2.3).
    std::vector<uint8_t> sets;
    for (const auto& sps : avc_.sps) appendNal(sets, sps);
    for (const auto& pps : avc_.pps) appendNal(sets, pps);
    au.annexB.insert(au.annexB.begin() + static_cast<std::ptrdiff_t>(afterAud), sets.begin(), sets.end());
  }
  au.config = config_;
  units_.push_back(std::move(au));
  return {};
}

bool FlvDemuxer::pop(AccessUnit& out) {
  if (units_.empty()) return false;
  out = std::move(units_.front());
  units_.pop_front();
  return true;
}

}  // namespace printcast::transport::flv
