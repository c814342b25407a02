// SPDX-License-Identifier: MIT
// RTP for H.264 (see rtp_h264.h).
#include "printcast/transport/rtp_h264.h"

#include <fmt/format.h>
#include <nettle/base64.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "printcast/codecs/h264.h"
#include "text.h"

namespace printcast::transport::rtp {

namespace {

using text::iequals;
using text::trim;

using hal::Errc;
namespace h264 = codecs::h264;

constexpr uint8_t kStapA = 24;
constexpr uint8_t kFuA = 28;

uint8_t nalType(std::span<const uint8_t> nal) {
  return nal.empty() ? 0 : static_cast<uint8_t>(nal[0] & 0x1f);
}
bool isSlice(uint8_t type) { return type >= 1 && type <= 5; }

// A NAL unit payload never holds 00 00 01 (emulation prevention, H.264 7.4.1): if it does, the
// camera packed an Annex-B stream into one NAL unit (protocols.md).
bool holdsStartCode(std::span<const uint8_t> nal) { return h264::findStartCode(nal) < nal.size(); }

template <typename T>
bool parseNumber(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::vector<uint8_t> base64Decode(std::string_view text) {
  std::vector<uint8_t> out(BASE64_DECODE_LENGTH(text.size()));
  base64_decode_ctx ctx;
  base64_decode_init(&ctx);
  size_t length = out.size();
  if (base64_decode_update(&ctx, &length, out.data(), text.size(), text.data()) == 0 ||
      base64_decode_final(&ctx) == 0) {
    return {};
  }
  out.resize(length);
  return out;
}

}  // namespace

hal::Result<Packet> parse(std::span<const uint8_t> b) {
  if (b.size() < 12)
    return hal::Error{Errc::InvalidArgument, 0, fmt::format("RTP packet of {} bytes", b.size())};
  if ((b[0] >> 6) != 2) return hal::Error{Errc::InvalidArgument, 0, fmt::format("RTP version {}", b[0] >> 6)};
  Packet p;
  p.marker = (b[1] & 0x80) != 0;
  p.payloadType = b[1] & 0x7f;
  p.sequence = static_cast<uint16_t>(b[2] << 8 | b[3]);
  p.timestamp = static_cast<uint32_t>(b[4]) << 24 | static_cast<uint32_t>(b[5]) << 16 |
                static_cast<uint32_t>(b[6]) << 8 | b[7];
  p.ssrc = static_cast<uint32_t>(b[8]) << 24 | static_cast<uint32_t>(b[9]) << 16 |
           static_cast<uint32_t>(b[10]) << 8 | b[11];
  size_t offset = 12 + 4 * static_cast<size_t>(b[0] & 0x0f);  // CSRC list
  if ((b[0] & 0x10) != 0) {                                   // header extension (5.3.1)
    if (offset + 4 > b.size()) return hal::Error{Errc::InvalidArgument, 0, "RTP header extension cut off"};
    offset += 4 + 4 * static_cast<size_t>(b[offset + 2] << 8 | b[offset + 3]);
  }
  if (offset > b.size()) return hal::Error{Errc::InvalidArgument, 0, "RTP header longer than the packet"};
  size_t end = b.size();
  if ((b[0] & 0x20) != 0) {  // padding: its last byte counts the padding bytes
    const size_t padding = b.back();
    if (padding == 0 || padding > end - offset)
      return hal::Error{Errc::InvalidArgument, 0, "bad RTP padding"};
    end -= padding;
  }
  p.payload = b.subspan(offset, end - offset);
  return p;
}

// ----------------------------------------------------------------------------- depacketizer

H264Depacketizer::H264Depacketizer(size_t maxAccessUnitBytes) : maxBytes_(maxAccessUnitBytes) {}

void H264Depacketizer::setParameterSets(std::vector<uint8_t> sps, std::vector<uint8_t> pps) {
  if (nalType(sps) == h264::kSps) sps_ = std::move(sps);
  if (nalType(pps) == h264::kPps) pps_ = std::move(pps);
}

void H264Depacketizer::damage() {
  damaged_ = true;
  waitForIdr_ = true;
}

void H264Depacketizer::addNal(std::span<const uint8_t> nal) {
  if (nal.empty()) return;
  if (holdsStartCode(nal)) {
    std::vector<uint8_t> stream = {0, 0, 0, 1};
    stream.insert(stream.end(), nal.begin(), nal.end());
    for (const auto& unit : h264::splitAnnexB(stream)) {
      if (!holdsStartCode(unit.bytes)) addNal(unit.bytes);
    }
    return;
  }
  const uint8_t type = nalType(nal);
  if (type == h264::kSps) sps_.assign(nal.begin(), nal.end());
  if (type == h264::kPps) pps_.assign(nal.begin(), nal.end());
  bytes_ += nal.size() + 4;
  if (bytes_ > maxBytes_) {
    if (!damaged_) ++stats_.oversizedAccessUnits;
    damage();
    return;
  }
  if (!damaged_) nals_.emplace_back(nal.begin(), nal.end());
}

void H264Depacketizer::finish() {
  if (!building_) return;
  building_ = false;
  if (inFragment_) {  // the FU-A never got its end fragment
    inFragment_ = false;
    fragment_.clear();
    damage();
  }
  auto nals = std::move(nals_);
  nals_.clear();
  bytes_ = 0;
  if (damaged_) {
    damaged_ = false;
    ++stats_.droppedAccessUnits;
    carry_.clear();
    return;
  }
  const bool hasSlice =
      std::any_of(nals.begin(), nals.end(), [](const auto& n) { return isSlice(nalType(n)); });
  if (!hasSlice) {
    // Parameter sets or SEI on their own (some cameras set the marker after SPS/PPS): they
    // belong in front of the next access unit.
    size_t carried = 0;
    for (const auto& n : carry_) carried += n.size();
    if (carried > 64 * 1024) carry_.clear();  // a camera that never sends a slice: stay bounded
    carry_.insert(carry_.end(), std::make_move_iterator(nals.begin()), std::make_move_iterator(nals.end()));
    return;
  }
  if (!carry_.empty()) {
    nals.insert(nals.begin(), std::make_move_iterator(carry_.begin()), std::make_move_iterator(carry_.end()));
    carry_.clear();
  }
  const bool idr =
      std::any_of(nals.begin(), nals.end(), [](const auto& n) { return nalType(n) == h264::kIdrSlice; });
  if (waitForIdr_ && !idr) {
    ++stats_.droppedAccessUnits;
    return;
  }
  waitForIdr_ = false;
  AccessUnit au;
  au.rtpTimestamp = timestamp_;
  au.idr = idr;
  if (idr) {
    const bool hasSps =
        std::any_of(nals.begin(), nals.end(), [](const auto& n) { return nalType(n) == h264::kSps; });
    const bool hasPps =
        std::any_of(nals.begin(), nals.end(), [](const auto& n) { return nalType(n) == h264::kPps; });
    if ((!hasSps || !hasPps) && !sps_.empty() && !pps_.empty()) {
      std::vector<std::vector<uint8_t>> front;
      if (!hasSps) front.push_back(sps_);
      if (!hasPps) front.push_back(pps_);
      nals.insert(nals.begin(), std::make_move_iterator(front.begin()), std::make_move_iterator(front.end()));
      ++stats_.insertedParameterSets;
    }
  }
  size_t total = 0;
  for (const auto& n : nals) total += 4 + n.size();
  au.annexB.reserve(total);
  for (const auto& n : nals) {
    au.annexB.insert(au.annexB.end(), {0, 0, 0, 1});
    au.annexB.insert(au.annexB.end(), n.begin(), n.end());
  }
  ready_.push_back(std::move(au));
}

void H264Depacketizer::push(const Packet& packet) {
  ++stats_.packets;
  bool gap = false;
  if (haveSequence_ && packet.sequence != nextSequence_) {
    const auto ahead = static_cast<uint16_t>(packet.sequence - nextSequence_);
    if (ahead >= 0x8000) return;  // late or duplicate: already past it
    stats_.lostPackets += ahead;
    gap = true;
  }
  haveSequence_ = true;
  nextSequence_ = static_cast<uint16_t>(packet.sequence + 1);
  if (gap && building_) damage();  // the access unit in progress lost packets
  if (building_ && packet.timestamp != timestamp_) finish();
  if (!building_) {
    building_ = true;
    timestamp_ = packet.timestamp;
    if (gap) damage();  // the lost packets may have been this one's beginning
  }

  const auto payload = packet.payload;
  const uint8_t type = nalType(payload);
  if (payload.empty()) {
    // nothing
  } else if (type >= 1 && type <= 23) {
    addNal(payload);
  } else if (type == kStapA) {
    size_t offset = 1;
    while (offset + 2 <= payload.size()) {
      const size_t size = static_cast<size_t>(payload[offset] << 8 | payload[offset + 1]);
      offset += 2;
      if (size == 0 || offset + size > payload.size()) {
        damage();
        break;
      }
      addNal(payload.subspan(offset, size));
      offset += size;
    }
  } else if (type == kFuA) {
    if (payload.size() < 2) {
      damage();
    } else {
      const uint8_t fu = payload[1];
      const bool start = (fu & 0x80) != 0;
      const bool end = (fu & 0x40) != 0;
      if (start) {
        if (inFragment_) damage();  // the previous fragmented NAL unit never ended
        fragment_.assign(1, static_cast<uint8_t>((payload[0] & 0xe0) | (fu & 0x1f)));
        inFragment_ = true;
      }
      if (!inFragment_) {
        damage();  // a middle or end fragment without its start
      } else {
        fragment_.insert(fragment_.end(), payload.begin() + 2, payload.end());
        if (fragment_.size() > maxBytes_) {
          ++stats_.oversizedAccessUnits;
          inFragment_ = false;
          fragment_.clear();
          damage();
        } else if (end) {
          inFragment_ = false;
          addNal(fragment_);
          fragment_.clear();
        }
      }
    }
  } else {
    ++stats_.unsupportedPackets;  // STAP-B, MTAP16/24, FU-B (interleaved mode) or reserved
    damage();
  }
  if (packet.marker) finish();
}

bool H264Depacketizer::pop(AccessUnit& out) {
  if (ready_.empty()) return false;
  out = std::move(ready_.front());
  ready_.pop_front();
  return true;
}

// ----------------------------------------------------------------------------- SDP

// ----------------------------------------------------------------------------- packetizer

H264Packetizer::H264Packetizer(uint8_t payloadType, uint32_t ssrc, uint16_t firstSequence, size_t maxPayload)
    : payloadType_(static_cast<uint8_t>(payloadType & 0x7f)),
      ssrc_(ssrc),
      sequence_(firstSequence),
      maxPayload_(std::clamp<size_t>(maxPayload, 64, 65000)) {}

void H264Packetizer::emit(std::vector<std::vector<uint8_t>>& out, uint32_t timestamp, bool marker,
                          std::span<const uint8_t> prefix, std::span<const uint8_t> payload) {
  std::vector<uint8_t> p;
  p.reserve(12 + prefix.size() + payload.size());
  p.push_back(0x80);  // version 2, no padding, no extension, no CSRC
  p.push_back(static_cast<uint8_t>((marker ? 0x80 : 0) | payloadType_));
  p.push_back(static_cast<uint8_t>(sequence_ >> 8));
  p.push_back(static_cast<uint8_t>(sequence_));
  for (int shift = 24; shift >= 0; shift -= 8) p.push_back(static_cast<uint8_t>(timestamp >> shift));
  for (int shift = 24; shift >= 0; shift -= 8) p.push_back(static_cast<uint8_t>(ssrc_ >> shift));
  p.insert(p.end(), prefix.begin(), prefix.end());
  p.insert(p.end(), payload.begin(), payload.end());
  out.push_back(std::move(p));
  ++sequence_;
}

void H264Packetizer::packetize(std::span<const uint8_t> annexB, uint32_t rtpTimestamp,
                               std::vector<std::vector<uint8_t>>& out) {
  std::vector<std::span<const uint8_t>> nals;
  for (const auto& n : h264::splitAnnexB(annexB)) {
    if (n.bytes.empty() || n.type() == h264::kAud) continue;
    nals.push_back(n.bytes);
  }
  size_t i = 0;
  // Leading non-slice NAL units (SPS, PPS, SEI) that fit together: one STAP-A (when 2 or more).
  std::vector<uint8_t> stap;
  size_t grouped = 0;
  uint8_t nri = 0;
  for (size_t j = 0; j < nals.size() && !isSlice(nalType(nals[j])); ++j) {
    const size_t add = 2 + nals[j].size();
    if (1 + stap.size() + add > maxPayload_) break;
    stap.push_back(static_cast<uint8_t>(nals[j].size() >> 8));
    stap.push_back(static_cast<uint8_t>(nals[j].size()));
    stap.insert(stap.end(), nals[j].begin(), nals[j].end());
    nri = std::max<uint8_t>(nri, nals[j][0] & 0x60);
    ++grouped;
  }
  if (grouped >= 2) {
    const uint8_t header = static_cast<uint8_t>(nri | kStapA);  // F=0, NRI = the highest (5.7.1)
    emit(out, rtpTimestamp, grouped == nals.size(), {&header, 1}, stap);
    i = grouped;
  }
  for (; i < nals.size(); ++i) {
    const auto nal = nals[i];
    const bool last = i + 1 == nals.size();
    if (nal.size() <= maxPayload_) {
      emit(out, rtpTimestamp, last, {}, nal);
      continue;
    }
    // FU-A: the NAL header's F and NRI in the FU indicator, its type in the FU header (5.8).
    const uint8_t indicator = static_cast<uint8_t>((nal[0] & 0xe0) | kFuA);
    const uint8_t type = static_cast<uint8_t>(nal[0] & 0x1f);
    const size_t chunk = maxPayload_ - 2;
    for (size_t at = 1; at < nal.size(); at += chunk) {
      const size_t n = std::min(chunk, nal.size() - at);
      const bool start = at == 1;
      const bool end = at + n == nal.size();
      const uint8_t prefix[2] = {indicator,
                                 static_cast<uint8_t>((start ? 0x80 : 0) | (end ? 0x40 : 0) | type)};
      emit(out, rtpTimestamp, last && end, prefix, nal.subspan(at, n));
    }
  }
}

hal::Result<SdpH264> parseSdpH264(std::string_view sdp) {
  SdpH264 found;
  bool inVideo = false;   // inside an m=video section that is a candidate
  bool haveH264 = false;  // its rtpmap said H264
  bool done = false;      // an H.264 video media was complete (the next m= ends it)
  std::vector<int> payloadTypes;
  SdpH264 current;
  auto close = [&] {
    if (inVideo && haveH264 && !done) {
      found = current;
      done = true;
    }
  };
  while (!sdp.empty() && !done) {
    const size_t eol = sdp.find('\n');
    std::string_view line = trim(sdp.substr(0, eol));
    sdp = eol == std::string_view::npos ? std::string_view{} : sdp.substr(eol + 1);
    if (line.size() < 2 || line[1] != '=') continue;
    const std::string_view value = line.substr(2);
    if (line[0] == 'm') {
      close();
      if (done) break;
      inVideo = value.substr(0, 6) == "video ";
      haveH264 = false;
      current = SdpH264{};
      payloadTypes.clear();
      if (inVideo) {
        // m=video <port> <proto> <fmt> ...
        std::string_view rest = value;
        for (int field = 0; !rest.empty(); ++field) {
          const size_t sp = rest.find(' ');
          const std::string_view token = rest.substr(0, sp);
          rest = sp == std::string_view::npos ? std::string_view{} : trim(rest.substr(sp + 1));
          int pt = 0;
          if (field >= 3 && parseNumber(token, pt)) payloadTypes.push_back(pt);
        }
      }
      continue;
    }
    if (line[0] != 'a' || !inVideo) continue;
    const size_t colon = value.find(':');
    const std::string_view name = value.substr(0, colon);
    const std::string_view arg =
        colon == std::string_view::npos ? std::string_view{} : value.substr(colon + 1);
    if (name == "rtpmap") {
      // a=rtpmap:<pt> <encoding>/<clock rate>[/<params>]
      const size_t sp = arg.find(' ');
      int pt = 0;
      if (sp == std::string_view::npos || !parseNumber(arg.substr(0, sp), pt)) {
        return hal::Error{Errc::InvalidArgument, 0, fmt::format("SDP: malformed a=rtpmap:{}", arg)};
      }
      const std::string_view encoding = trim(arg.substr(sp + 1));
      const size_t slash = encoding.find('/');
      if (!haveH264 && iequals(encoding.substr(0, slash), "H264") &&
          std::find(payloadTypes.begin(), payloadTypes.end(), pt) != payloadTypes.end()) {
        haveH264 = true;
        current.payloadType = pt;
        if (slash != std::string_view::npos) {
          std::string_view rate = encoding.substr(slash + 1);
          rate = rate.substr(0, rate.find('/'));
          uint32_t clock = 0;
          if (parseNumber(rate, clock) && clock > 0) current.clockRate = clock;
        }
      }
    } else if (name == "control") {
      current.control = std::string(arg);
    } else if (name == "fmtp") {
      const size_t sp = arg.find(' ');
      int pt = 0;
      if (sp == std::string_view::npos || !parseNumber(arg.substr(0, sp), pt) || !haveH264 ||
          pt != current.payloadType) {
        continue;
      }
      std::string_view params = arg.substr(sp + 1);
      while (!params.empty()) {
        const size_t semi = params.find(';');
        const std::string_view param = trim(params.substr(0, semi));
        params = semi == std::string_view::npos ? std::string_view{} : params.substr(semi + 1);
        const size_t eq = param.find('=');
        if (eq == std::string_view::npos) continue;
        const std::string_view key = trim(param.substr(0, eq));
        const std::string_view val = trim(param.substr(eq + 1));
        if (iequals(key, "packetization-mode")) {
          if (!parseNumber(val, current.packetizationMode)) current.packetizationMode = 0;
        } else if (iequals(key, "profile-level-id")) {
          current.profileLevelId = std::string(val);
        } else if (iequals(key, "sprop-parameter-sets")) {
          std::string_view sets = val;
          while (!sets.empty()) {
            const size_t comma = sets.find(',');
            auto nal = base64Decode(trim(sets.substr(0, comma)));
            sets = comma == std::string_view::npos ? std::string_view{} : sets.substr(comma + 1);
            if (nalType(nal) == h264::kSps && current.sps.empty())
              current.sps = std::move(nal);
            else if (nalType(nal) == h264::kPps && current.pps.empty())
              current.pps = std::move(nal);
          }
        }
      }
    }
  }
  close();
  if (!done)
    return hal::Error{Errc::InvalidArgument, 0,
                      "SDP: no H.264 video (m=video with a=rtpmap:<pt> H264/90000)"};
  if (found.packetizationMode == 2) {
    return hal::Error{Errc::Unsupported, 0, "SDP: H.264 packetization-mode 2 (interleaved) is not supported"};
  }
  return found;
}

}  // namespace printcast::transport::rtp
