// SPDX-License-Identifier: MIT
// MPEG-TS muxer (PAT, PMT, PES with PCR) for H.264, and a reader for tests.
#include "printcast/transport/mpegts.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <map>

#include "printcast/codecs/h264.h"

namespace printcast::transport::mpegts {
namespace {

constexpr uint8_t kSync = 0x47;
constexpr uint8_t kStreamIdVideo = 0xE0;
constexpr uint64_t kMask33 = (uint64_t{1} << 33) - 1;
constexpr uint8_t kStartCode[] = {0, 0, 0, 1};

void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

// A PSI section (PAT/PMT) in one packet: header, pointer_field 0, the section, its CRC, 0xFF fill.
std::vector<uint8_t> psiPacket(uint16_t pid, uint8_t& cc, std::vector<uint8_t> section) {
  const uint32_t crc = crc32(section);
  for (int shift = 24; shift >= 0; shift -= 8) section.push_back(static_cast<uint8_t>(crc >> shift));
  std::vector<uint8_t> p;
  p.reserve(kPacketSize);
  p.push_back(kSync);
  p.push_back(static_cast<uint8_t>(0x40 | (pid >> 8)));  // payload_unit_start_indicator
  p.push_back(static_cast<uint8_t>(pid));
  p.push_back(static_cast<uint8_t>(0x10 | (cc & 0x0F)));  // payload only
  cc = static_cast<uint8_t>((cc + 1) & 0x0F);
  p.push_back(0x00);  // pointer_field
  p.insert(p.end(), section.begin(), section.end());
  p.resize(kPacketSize, 0xFF);
  return p;
}

// The 5-byte PTS/DTS field of 2.4.3.7: '0010' (PTS only) + 33 bits with marker bits.
void putTimestamp(std::vector<uint8_t>& out, uint8_t prefix, uint64_t t) {
  t &= kMask33;
  out.push_back(static_cast<uint8_t>((prefix << 4) | ((t >> 29) & 0x0E) | 1));
  out.push_back(static_cast<uint8_t>(t >> 22));
  out.push_back(static_cast<uint8_t>(((t >> 14) & 0xFE) | 1));
  out.push_back(static_cast<uint8_t>(t >> 7));
  out.push_back(static_cast<uint8_t>(((t << 1) & 0xFE) | 1));
}

uint64_t readTimestamp(const uint8_t* p) {
  return (static_cast<uint64_t>((p[0] >> 1) & 0x07) << 30) | (static_cast<uint64_t>(p[1]) << 22) |
         (static_cast<uint64_t>(p[2] >> 1) << 15) | (static_cast<uint64_t>(p[3]) << 7) |
         static_cast<uint64_t>(p[4] >> 1);
}

}  // namespace

uint32_t crc32(std::span<const uint8_t> bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (uint8_t b : bytes) {
    crc ^= static_cast<uint32_t>(b) << 24;
    for (int i = 0; i < 8; ++i) crc = (crc & 0x80000000u) ? (crc << 1) ^ 0x04C11DB7u : crc << 1;
  }
  return crc;
}

std::vector<uint8_t> Muxer::programTables() {
  // PAT (2.4.4.3): one program, number 1, its PMT on kPmtPid.
  std::vector<uint8_t> pat;
  pat.push_back(0x00);      // table_id
  put16(pat, 0xB000 | 13);  // section_syntax_indicator, '0', reserved, section_length
  put16(pat, 0x0001);       // transport_stream_id
  pat.push_back(0xC1);      // reserved, version 0, current_next_indicator
  pat.push_back(0x00);      // section_number
  pat.push_back(0x00);      // last_section_number
  put16(pat, 0x0001);       // program_number
  put16(pat, static_cast<uint16_t>(0xE000 | kPmtPid));
  // PMT (2.4.4.8): the H.264 stream, which carries the PCR.
  std::vector<uint8_t> pmt;
  pmt.push_back(0x02);
  put16(pmt, 0xB000 | 18);
  put16(pmt, 0x0001);  // program_number
  pmt.push_back(0xC1);
  pmt.push_back(0x00);
  pmt.push_back(0x00);
  put16(pmt, static_cast<uint16_t>(0xE000 | kVideoPid));  // PCR_PID
  put16(pmt, 0xF000);                                     // program_info_length 0
  pmt.push_back(kStreamTypeH264);
  put16(pmt, static_cast<uint16_t>(0xE000 | kVideoPid));
  put16(pmt, 0xF000);  // ES_info_length 0
  std::vector<uint8_t> out = psiPacket(0, patCc_, std::move(pat));
  const std::vector<uint8_t> pmtPacket = psiPacket(kPmtPid, pmtCc_, std::move(pmt));
  out.insert(out.end(), pmtPacket.begin(), pmtPacket.end());
  return out;
}

namespace {

// The elementary stream of accessUnitPayload() as the pieces it is made of, in order (start
// codes, the AUD, parameter sets, the access unit's NAL units): the muxer gathers them straight
// into TS packets.
void accessUnitPieces(const hal::Packet& accessUnit, std::vector<std::span<const uint8_t>>& pieces) {
  namespace h264 = codecs::h264;
  static constexpr uint8_t kAudNal[] = {static_cast<uint8_t>(h264::kAud),
                                        0xF0};  // primary_pic_type 7, stop bit
  const auto nals = h264::nalUnits(accessUnit);
  bool haveSps = false;
  bool havePps = false;
  for (const auto& nal : nals) {
    haveSps = haveSps || nal.type() == h264::kSps;
    havePps = havePps || nal.type() == h264::kPps;
  }
  const bool insertParameterSets = accessUnit.keyframe && !(haveSps && havePps) && accessUnit.config;
  auto put = [&pieces](std::span<const uint8_t> nal) {
    pieces.emplace_back(kStartCode);
    pieces.push_back(nal);
  };
  put(kAudNal);
  bool sliceSeen = false;
  for (const auto& nal : nals) {
    if (nal.type() == h264::kAud) continue;  // ours is first
    const bool slice = nal.type() == h264::kIdrSlice || nal.type() == h264::kNonIdrSlice;
    if (slice && !sliceSeen && insertParameterSets) {
      if (!haveSps) put(accessUnit.config->sps);
      if (!havePps) put(accessUnit.config->pps);
    }
    sliceSeen = sliceSeen || slice;
    put(nal.bytes);
  }
}

}  // namespace

std::vector<uint8_t> accessUnitPayload(const hal::Packet& accessUnit) {
  std::vector<std::span<const uint8_t>> pieces;
  accessUnitPieces(accessUnit, pieces);
  size_t total = 0;
  for (const auto& piece : pieces) total += piece.size();
  std::vector<uint8_t> out;
  out.reserve(total);
  for (const auto& piece : pieces) out.insert(out.end(), piece.begin(), piece.end());
  return out;
}

void Muxer::writeAccessUnit(const hal::Packet& accessUnit, uint64_t ticks90k, std::vector<uint8_t>& out) {
  // The PES packet (2.4.3.6) is its 14-byte header and the elementary stream's pieces, copied
  // once, into the TS packets' payloads.
  std::vector<uint8_t> header = {0x00, 0x00, 0x01, kStreamIdVideo, 0x00, 0x00};  // PES_packet_length 0
  header.push_back(0x84);  // '10', not scrambled, data_alignment_indicator
  header.push_back(0x80);  // PTS_DTS_flags '10': PTS only
  header.push_back(5);     // PES_header_data_length
  putTimestamp(header, 0x2, ticks90k + kPtsDelay);
  std::vector<std::span<const uint8_t>> pieces;
  pieces.reserve(16);
  pieces.emplace_back(header);
  accessUnitPieces(accessUnit, pieces);
  size_t total = 0;
  for (const auto& piece : pieces) total += piece.size();

  // The first packet carries 176 payload bytes (its adaptation field holds the PCR), the others
  // 184; the last is filled up with stuffing bytes in its adaptation field.
  // Appended (not resized and overwritten: zero-filling every part's new memory first cost as
  // much as the copy).
  const size_t packets = total <= 176 ? 1 : 1 + (total - 176 + 183) / 184;
  [[maybe_unused]] const size_t end = out.size() + packets * kPacketSize;
  out.reserve(end);
  size_t piece = 0;
  size_t offset = 0;
  auto copy = [&](size_t count) {
    while (count > 0) {
      const auto& p = pieces[piece];
      const size_t n = std::min(count, p.size() - offset);
      out.insert(out.end(), p.data() + offset, p.data() + offset + n);
      count -= n;
      offset += n;
      if (offset == p.size()) {
        ++piece;
        offset = 0;
      }
    }
  };
  uint8_t head[kPacketSize];  // a packet's header and adaptation field

  const uint64_t pcrBase = ticks90k & kMask33;
  size_t remaining = total;
  bool first = true;
  while (remaining > 0) {
    const size_t fixedAf = first ? 8 : 0;  // length, flags, 6-byte PCR
    size_t afTotal = fixedAf;
    if (remaining < 184 - fixedAf) afTotal = 184 - remaining;  // stuff the last packet
    const size_t take = 184 - afTotal;
    uint8_t* w = head;
    *w++ = kSync;
    *w++ = static_cast<uint8_t>((first ? 0x40 : 0x00) | (kVideoPid >> 8));
    *w++ = static_cast<uint8_t>(kVideoPid & 0xFF);
    *w++ = static_cast<uint8_t>((afTotal > 0 ? 0x30 : 0x10) | videoCc_);
    videoCc_ = static_cast<uint8_t>((videoCc_ + 1) & 0x0F);
    if (afTotal > 0) {
      *w++ = static_cast<uint8_t>(afTotal - 1);  // adaptation_field_length
      if (afTotal > 1) {
        uint8_t flags = 0;
        if (first) flags |= 0x10;                         // PCR_flag
        if (first && accessUnit.keyframe) flags |= 0x40;  // random_access_indicator
        *w++ = flags;
        size_t written = 2;
        if (first) {
          // program_clock_reference_base (33), reserved (6), extension (9) = 0.
          *w++ = static_cast<uint8_t>(pcrBase >> 25);
          *w++ = static_cast<uint8_t>(pcrBase >> 17);
          *w++ = static_cast<uint8_t>(pcrBase >> 9);
          *w++ = static_cast<uint8_t>(pcrBase >> 1);
          *w++ = static_cast<uint8_t>(((pcrBase & 1) << 7) | 0x7E);
          *w++ = 0x00;
          written += 6;
        }
        std::memset(w, 0xFF, afTotal - written);  // stuffing_byte
        w += afTotal - written;
      }
    }
    out.insert(out.end(), head, w);
    copy(take);
    remaining -= take;
    first = false;
  }
  assert(out.size() == end);
}

ParsedStream parse(std::span<const uint8_t> bytes) {
  ParsedStream r;
  if (bytes.size() % kPacketSize != 0) r.syncOk = false;
  std::map<uint16_t, int> lastCc;
  PesPacket current;
  bool inPes = false;
  auto finishPes = [&] {
    if (!inPes) return;
    const auto& b = current.payload;
    if (b.size() >= 9 && b[0] == 0 && b[1] == 0 && b[2] == 1) {
      current.streamId = b[3];
      const uint8_t flags = b[7];
      const size_t headerLength = b[8];
      if (9 + headerLength <= b.size()) {
        if ((flags & 0x80) && headerLength >= 5) {
          current.hasPts = true;
          current.pts = readTimestamp(&b[9]);
        }
        if ((flags & 0x40) && headerLength >= 10) {
          current.hasDts = true;
          current.dts = readTimestamp(&b[14]);
        }
        current.payload.erase(current.payload.begin(),
                              current.payload.begin() + static_cast<std::ptrdiff_t>(9 + headerLength));
        r.pes.push_back(std::move(current));
      }
    }
    current = PesPacket{};
    inPes = false;
  };
  for (size_t off = 0; off + kPacketSize <= bytes.size(); off += kPacketSize) {
    const uint8_t* p = bytes.data() + off;
    ++r.packets;
    if (p[0] != kSync) {
      r.syncOk = false;
      continue;
    }
    const bool pusi = (p[1] & 0x40) != 0;
    const uint16_t pid = static_cast<uint16_t>(((p[1] & 0x1F) << 8) | p[2]);
    const uint8_t afc = (p[3] >> 4) & 0x03;
    const int cc = p[3] & 0x0F;
    size_t pos = 4;
    bool randomAccess = false;
    bool hasPcr = false;
    uint64_t pcr = 0;
    if (afc & 0x02) {
      const size_t afLength = p[4];
      if (afLength > 0) {
        const uint8_t flags = p[5];
        randomAccess = (flags & 0x40) != 0;
        if ((flags & 0x10) && afLength >= 7) {
          hasPcr = true;
          const uint64_t base = (static_cast<uint64_t>(p[6]) << 25) | (static_cast<uint64_t>(p[7]) << 17) |
                                (static_cast<uint64_t>(p[8]) << 9) | (static_cast<uint64_t>(p[9]) << 1) |
                                (p[10] >> 7);
          const uint64_t ext = (static_cast<uint64_t>(p[10] & 1) << 8) | p[11];
          pcr = base * 300 + ext;
        }
      }
      pos += 1 + afLength;
    }
    if (!(afc & 0x01) || pos > kPacketSize) continue;
    if (auto it = lastCc.find(pid); it != lastCc.end() && ((it->second + 1) & 0x0F) != cc)
      ++r.continuityErrors;
    lastCc[pid] = cc;
    std::span<const uint8_t> payload(p + pos, kPacketSize - pos);
    if (pid == 0 || (r.pmtPid != 0 && pid == r.pmtPid)) {
      if (!pusi || payload.empty()) continue;
      const size_t pointer = payload[0];
      if (1 + pointer + 3 > payload.size()) continue;
      const auto section = payload.subspan(1 + pointer);
      const size_t length = ((section[1] & 0x0F) << 8) | section[2];
      if (3 + length > section.size() || length < 9) continue;
      const auto whole = section.first(3 + length);
      if (crc32(whole) != 0) r.psiCrcOk = false;  // the CRC over data + CRC is 0
      if (pid == 0 && section[0] == 0x00) {
        r.havePat = true;
        r.pmtPid = static_cast<uint16_t>(((section[10] & 0x1F) << 8) | section[11]);
      } else if (section[0] == 0x02) {
        r.havePmt = true;
        r.pcrPid = static_cast<uint16_t>(((section[8] & 0x1F) << 8) | section[9]);
        const size_t infoLength = ((section[10] & 0x0F) << 8) | section[11];
        size_t es = 12 + infoLength;
        while (es + 5 <= 3 + length - 4) {
          const uint16_t esPid = static_cast<uint16_t>(((section[es + 1] & 0x1F) << 8) | section[es + 2]);
          if (section[es] == kStreamTypeH264) r.videoPid = esPid;
          es += 5 + (((section[es + 3] & 0x0F) << 8) | section[es + 4]);
        }
      }
      continue;
    }
    if (r.videoPid == 0 || pid != r.videoPid) continue;
    if (pusi) {
      finishPes();
      inPes = true;
      current.pid = pid;
      current.randomAccess = randomAccess;
      current.hasPcr = hasPcr;
      current.pcr27MHz = pcr;
    }
    if (inPes) current.payload.insert(current.payload.end(), payload.begin(), payload.end());
  }
  finishPes();
  return r;
}

}  // namespace printcast::transport::mpegts
