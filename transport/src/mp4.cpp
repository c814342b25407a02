// SPDX-License-Identifier: MIT
// MP4 boxes for one H.264 track: the fMP4 init segment and fragments, and the progressive file.
// Box layouts follow ISO/IEC 14496-12:2015 (section numbers at each box) and 14496-15.
#include "printcast/transport/mp4.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "printcast/codecs/h264.h"

namespace printcast::transport::mp4 {

// ---------------------------------------------------------------------------------------------
// BoxWriter

size_t BoxWriter::begin(const char (&type)[5]) {
  const size_t offset = buf_.size();
  u32(0);  // patched by end()
  fourcc(type);
  return offset;
}

size_t BoxWriter::beginFull(const char (&type)[5], uint8_t version, uint32_t flags) {
  const size_t offset = begin(type);
  u8(version);
  u24(flags);
  return offset;
}

void BoxWriter::end(size_t boxOffset) { patchU32(boxOffset, static_cast<uint32_t>(buf_.size() - boxOffset)); }

void BoxWriter::u8(uint8_t v) { buf_.push_back(v); }
void BoxWriter::u16(uint16_t v) {
  u8(static_cast<uint8_t>(v >> 8));
  u8(static_cast<uint8_t>(v));
}
void BoxWriter::u24(uint32_t v) {
  u8(static_cast<uint8_t>(v >> 16));
  u16(static_cast<uint16_t>(v));
}
void BoxWriter::u32(uint32_t v) {
  u16(static_cast<uint16_t>(v >> 16));
  u16(static_cast<uint16_t>(v));
}
void BoxWriter::u64(uint64_t v) {
  u32(static_cast<uint32_t>(v >> 32));
  u32(static_cast<uint32_t>(v));
}
void BoxWriter::zeros(size_t n) { buf_.insert(buf_.end(), n, 0); }
void BoxWriter::fourcc(const char (&type)[5]) { buf_.insert(buf_.end(), type, type + 4); }
void BoxWriter::bytes(std::span<const uint8_t> b) { buf_.insert(buf_.end(), b.begin(), b.end()); }
void BoxWriter::patchU32(size_t offset, uint32_t v) {
  buf_.at(offset + 3) = static_cast<uint8_t>(v);
  buf_[offset + 2] = static_cast<uint8_t>(v >> 8);
  buf_[offset + 1] = static_cast<uint8_t>(v >> 16);
  buf_[offset] = static_cast<uint8_t>(v >> 24);
}

// ---------------------------------------------------------------------------------------------
// Track description and the moov box

hal::Result<TrackInfo> trackInfo(const hal::CodecConfig& config, uint32_t timescale) {
  if (timescale == 0) return {hal::Errc::InvalidArgument, "mp4: timescale 0"};
  auto sps = codecs::h264::parseSps(config.sps);
  if (!sps) return sps.error();
  auto record = codecs::h264::avcDecoderConfigurationRecord(config);
  if (!record) return record.error();
  TrackInfo t;
  t.size = sps->size;
  t.timescale = timescale;
  t.avcC = std::move(*record);
  char codec[16];
  std::snprintf(codec, sizeof codec, "avc1.%02X%02X%02X", t.avcC[1], t.avcC[2], t.avcC[3]);
  t.codecString = codec;
  return t;
}

namespace {

constexpr uint32_t kTrackId = 1;
// Sample flags (14496-12 8.8.3.1): sample_depends_on (bits 25-24) 2 = independent (an IDR);
// 1 = depends on others, plus sample_is_non_sync_sample (bit 16).
constexpr uint32_t kSyncSampleFlags = 0x02000000;
constexpr uint32_t kNonSyncSampleFlags = 0x01010000;

// The unity matrix of mvhd/tkhd (8.2.2.2): {0x00010000,0,0, 0,0x00010000,0, 0,0,0x40000000}.
void unityMatrix(BoxWriter& w) {
  const uint32_t m[9] = {0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000};
  for (uint32_t v : m) w.u32(v);
}

void ftyp(BoxWriter& w, bool fragmented) {
  const size_t box = w.begin("ftyp");
  if (fragmented) {
    w.fourcc("iso5");  // major brand: tfdt and default-base-is-moof (14496-12 annex E)
    w.u32(512);
    w.fourcc("iso5");
    w.fourcc("iso6");
  } else {
    w.fourcc("isom");
    w.u32(512);
    w.fourcc("isom");
    w.fourcc("iso2");
  }
  w.fourcc("avc1");
  w.fourcc("mp41");
  w.end(box);
}

// The sample tables of a progressive file (8.6.1.2 stts, 8.6.2 stss, 8.7.4 stsc, 8.7.3 stsz,
// 8.7.5 stco): every sample in one chunk starting at `chunkOffset`. Empty for fragments.
void sampleTables(BoxWriter& w, std::span<const Sample> samples, uint32_t chunkOffset) {
  size_t box = w.beginFull("stts", 0, 0);
  std::vector<std::pair<uint32_t, uint32_t>> runs;  // (count, duration)
  for (const auto& s : samples) {
    if (!runs.empty() && runs.back().second == s.duration) {
      ++runs.back().first;
    } else {
      runs.emplace_back(1, s.duration);
    }
  }
  w.u32(static_cast<uint32_t>(runs.size()));
  for (const auto& [count, duration] : runs) {
    w.u32(count);
    w.u32(duration);
  }
  w.end(box);

  if (!samples.empty()) {
    box = w.beginFull("stss", 0, 0);
    const size_t countAt = w.size();
    w.u32(0);
    uint32_t syncCount = 0;
    for (size_t i = 0; i < samples.size(); ++i) {
      if (samples[i].keyframe) {
        w.u32(static_cast<uint32_t>(i + 1));
        ++syncCount;
      }
    }
    w.patchU32(countAt, syncCount);
    w.end(box);
  }

  box = w.beginFull("stsc", 0, 0);
  if (samples.empty()) {
    w.u32(0);
  } else {
    w.u32(1);
    w.u32(1);  // first_chunk
    w.u32(static_cast<uint32_t>(samples.size()));
    w.u32(1);  // sample_description_index
  }
  w.end(box);

  box = w.beginFull("stsz", 0, 0);
  w.u32(0);  // sample_size: sizes vary
  w.u32(static_cast<uint32_t>(samples.size()));
  for (const auto& s : samples) w.u32(s.size);
  w.end(box);

  box = w.beginFull("stco", 0, 0);
  w.u32(samples.empty() ? 0 : 1);
  if (!samples.empty()) w.u32(chunkOffset);
  w.end(box);
}

// moov for either form. `samples` empty and `fragmented` = an init segment (mvex, no duration).
void moov(BoxWriter& w, const TrackInfo& t, bool fragmented, std::span<const Sample> samples,
          uint32_t chunkOffset) {
  uint64_t duration = 0;
  for (const auto& s : samples) duration += s.duration;
  const bool v1 = duration > std::numeric_limits<uint32_t>::max();
  const auto width = static_cast<uint32_t>(t.size.width);
  const auto height = static_cast<uint32_t>(t.size.height);

  const size_t moovBox = w.begin("moov");
  {  // mvhd (8.2.2): the movie timescale is the track's
    const size_t box = w.beginFull("mvhd", v1 ? 1 : 0, 0);
    if (v1) {
      w.u64(0);
      w.u64(0);
      w.u32(t.timescale);
      w.u64(duration);
    } else {
      w.u32(0);  // creation_time
      w.u32(0);  // modification_time
      w.u32(t.timescale);
      w.u32(static_cast<uint32_t>(duration));
    }
    w.u32(0x00010000);  // rate 1.0
    w.u16(0x0100);      // volume 1.0
    w.zeros(2 + 8);     // reserved
    unityMatrix(w);
    w.zeros(6 * 4);       // pre_defined
    w.u32(kTrackId + 1);  // next_track_ID
    w.end(box);
  }
  const size_t trak = w.begin("trak");
  {  // tkhd (8.3.2): track_enabled | track_in_movie
    const size_t box = w.beginFull("tkhd", v1 ? 1 : 0, 0x000003);
    if (v1) {
      w.u64(0);
      w.u64(0);
      w.u32(kTrackId);
      w.u32(0);
      w.u64(duration);
    } else {
      w.u32(0);
      w.u32(0);
      w.u32(kTrackId);
      w.u32(0);  // reserved
      w.u32(static_cast<uint32_t>(duration));
    }
    w.zeros(8);  // reserved
    w.u16(0);    // layer
    w.u16(0);    // alternate_group
    w.u16(0);    // volume (video: 0)
    w.u16(0);    // reserved
    unityMatrix(w);
    w.u32(width << 16);  // 16.16 fixed point
    w.u32(height << 16);
    w.end(box);
  }
  const size_t mdia = w.begin("mdia");
  {  // mdhd (8.4.2)
    const size_t box = w.beginFull("mdhd", v1 ? 1 : 0, 0);
    if (v1) {
      w.u64(0);
      w.u64(0);
      w.u32(t.timescale);
      w.u64(duration);
    } else {
      w.u32(0);
      w.u32(0);
      w.u32(t.timescale);
      w.u32(static_cast<uint32_t>(duration));
    }
    w.u16(0x55C4);  // language "und" (ISO 639-2/T, 5 bits per letter - 0x60)
    w.u16(0);
    w.end(box);
  }
  {  // hdlr (8.4.3)
    const size_t box = w.beginFull("hdlr", 0, 0);
    w.u32(0);
    w.fourcc("vide");
    w.zeros(12);
    static constexpr char kName[] = "printcast video";
    w.bytes({reinterpret_cast<const uint8_t*>(kName), sizeof kName});  // NUL-terminated
    w.end(box);
  }
  const size_t minf = w.begin("minf");
  {  // vmhd (12.1.2): flags 1
    const size_t box = w.beginFull("vmhd", 0, 1);
    w.zeros(8);  // graphicsmode, opcolor
    w.end(box);
  }
  {  // dinf/dref (8.7.2) with one self-contained 'url ' entry
    const size_t dinf = w.begin("dinf");
    const size_t dref = w.beginFull("dref", 0, 0);
    w.u32(1);
    const size_t url = w.beginFull("url ", 0, 1);
    w.end(url);
    w.end(dref);
    w.end(dinf);
  }
  const size_t stbl = w.begin("stbl");
  {  // stsd (8.5.2) with the avc1 visual sample entry (14496-15 5.4.2.1, 14496-12 12.1.3)
    const size_t stsd = w.beginFull("stsd", 0, 0);
    w.u32(1);
    const size_t avc1 = w.begin("avc1");
    w.zeros(6);           // reserved
    w.u16(1);             // data_reference_index
    w.zeros(2 + 2 + 12);  // pre_defined, reserved, pre_defined
    w.u16(static_cast<uint16_t>(width));
    w.u16(static_cast<uint16_t>(height));
    w.u32(0x00480000);  // 72 dpi
    w.u32(0x00480000);
    w.u32(0);       // reserved
    w.u16(1);       // frame_count
    w.zeros(32);    // compressorname
    w.u16(0x0018);  // depth
    w.u16(0xFFFF);  // pre_defined = -1
    const size_t avcC = w.begin("avcC");
    w.bytes(t.avcC);
    w.end(avcC);
    w.end(avc1);
    w.end(stsd);
  }
  sampleTables(w, samples, chunkOffset);
  w.end(stbl);
  w.end(minf);
  w.end(mdia);
  w.end(trak);
  if (fragmented) {  // mvex/trex (8.8.1, 8.8.3): defaults are all given per sample in trun
    const size_t mvex = w.begin("mvex");
    const size_t trex = w.beginFull("trex", 0, 0);
    w.u32(kTrackId);
    w.u32(1);  // default_sample_description_index
    w.u32(0);
    w.u32(0);
    w.u32(0);
    w.end(trex);
    w.end(mvex);
  }
  w.end(moovBox);
}

}  // namespace

std::vector<uint8_t> initSegment(const TrackInfo& track) {
  BoxWriter w;
  ftyp(w, /*fragmented=*/true);
  moov(w, track, /*fragmented=*/true, {}, 0);
  return w.take();
}

std::vector<uint8_t> fragmentHeader(uint32_t sequenceNumber, uint64_t baseDecodeTime,
                                    std::span<const Sample> samples) {
  BoxWriter w;
  const size_t moof = w.begin("moof");
  {  // mfhd (8.8.5)
    const size_t box = w.beginFull("mfhd", 0, 0);
    w.u32(sequenceNumber);
    w.end(box);
  }
  const size_t traf = w.begin("traf");
  {  // tfhd (8.8.7): default-base-is-moof
    const size_t box = w.beginFull("tfhd", 0, 0x020000);
    w.u32(kTrackId);
    w.end(box);
  }
  {  // tfdt (8.8.12), version 1: 64-bit baseMediaDecodeTime
    const size_t box = w.beginFull("tfdt", 1, 0);
    w.u64(baseDecodeTime);
    w.end(box);
  }
  size_t dataOffsetAt = 0;
  {  // trun (8.8.8): data-offset, sample-duration, sample-size, sample-flags present
    const size_t box = w.beginFull("trun", 0, 0x000001 | 0x000100 | 0x000200 | 0x000400);
    w.u32(static_cast<uint32_t>(samples.size()));
    dataOffsetAt = w.size();
    w.u32(0);
    for (const auto& s : samples) {
      w.u32(s.duration);
      w.u32(s.size);
      w.u32(s.keyframe ? kSyncSampleFlags : kNonSyncSampleFlags);
    }
    w.end(box);
  }
  w.end(traf);
  w.end(moof);
  // The data offset is from the start of moof (default-base-is-moof) to the first sample,
  // which follows the 8-byte mdat header.
  w.patchU32(dataOffsetAt, static_cast<uint32_t>(w.size() - moof + 8));
  uint64_t payload = 0;
  for (const auto& s : samples) payload += s.size;
  w.u32(static_cast<uint32_t>(8 + payload));
  w.fourcc("mdat");
  return w.take();
}

// ---------------------------------------------------------------------------------------------
// FileWriter

namespace {

std::filesystem::path withSuffix(const std::filesystem::path& p, const char* suffix) {
  auto s = p;
  s += suffix;
  return s;
}

hal::Error ioError(const std::filesystem::path& path, const char* what, int errnum = errno) {
  return hal::errnoError(std::string("mp4: ") + what + " " + path.string(), errnum);
}

bool writeAll(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

hal::Result<FileWriter> FileWriter::create(std::filesystem::path path, TrackInfo track) {
  FileWriter w;
  w.path_ = std::move(path);
  w.track_ = std::move(track);
  const auto dataPath = withSuffix(w.path_, ".mdat.part");
  w.data_ = std::fopen(dataPath.c_str(), "wbe");
  if (!w.data_) return ioError(dataPath, "cannot create");
  return w;
}

FileWriter::FileWriter(FileWriter&& o) noexcept { *this = std::move(o); }

FileWriter& FileWriter::operator=(FileWriter&& o) noexcept {
  if (this != &o) {
    abort();
    path_ = std::move(o.path_);
    track_ = std::move(o.track_);
    data_ = std::exchange(o.data_, nullptr);
    dataBytes_ = std::exchange(o.dataBytes_, 0);
    samples_ = std::move(o.samples_);
  }
  return *this;
}

FileWriter::~FileWriter() { abort(); }

void FileWriter::abort() {
  if (!data_) return;
  std::fclose(data_);
  data_ = nullptr;
  std::error_code ec;
  std::filesystem::remove(withSuffix(path_, ".mdat.part"), ec);
  std::filesystem::remove(withSuffix(path_, ".part"), ec);
}

hal::Status FileWriter::addSample(std::span<const uint8_t> sample, uint32_t duration, bool keyframe) {
  if (!data_) return {hal::Errc::InvalidArgument, "mp4: writer for " + path_.string() + " is closed"};
  if (sample.size() > std::numeric_limits<uint32_t>::max()) {
    return {hal::Errc::InvalidArgument, "mp4: sample larger than 4 GiB"};
  }
  if (std::fwrite(sample.data(), 1, sample.size(), data_) != sample.size()) {
    return ioError(withSuffix(path_, ".mdat.part"), "cannot write");
  }
  dataBytes_ += sample.size();
  samples_.push_back(Sample{static_cast<uint32_t>(sample.size()), duration, keyframe});
  return {};
}

hal::Status FileWriter::finish() {
  if (!data_) return {hal::Errc::InvalidArgument, "mp4: writer for " + path_.string() + " is closed"};
  if (samples_.empty()) {
    abort();
    return {hal::Errc::InvalidArgument, "mp4: no samples for " + path_.string()};
  }
  const auto dataPath = withSuffix(path_, ".mdat.part");
  const auto partPath = withSuffix(path_, ".part");
  if (std::fflush(data_) != 0) {
    const int e = errno;
    abort();
    return ioError(dataPath, "cannot write", e);
  }

  // ftyp + moov, then the mdat header (64-bit largesize past 4 GiB).
  const bool largeMdat = dataBytes_ + 8 > std::numeric_limits<uint32_t>::max();
  const size_t mdatHeader = largeMdat ? 16 : 8;
  BoxWriter head;
  ftyp(head, /*fragmented=*/false);
  const size_t moovAt = head.size();
  {
    // Every sample is in one chunk, right after the mdat header: its offset is small (stco,
    // never co64), and moov's size does not depend on its value.
    BoxWriter probe;
    moov(probe, track_, false, samples_, 0);
    moov(head, track_, false, samples_, static_cast<uint32_t>(moovAt + probe.size() + mdatHeader));
  }
  if (largeMdat) {
    head.u32(1);
    head.fourcc("mdat");
    head.u64(dataBytes_ + 16);
  } else {
    head.u32(static_cast<uint32_t>(dataBytes_ + 8));
    head.fourcc("mdat");
  }

  const int out = ::open(partPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    const int e = errno;
    abort();
    return ioError(partPath, "cannot create", e);
  }
  auto fail = [&](const char* what) -> hal::Status {
    const int e = errno;
    ::close(out);
    abort();
    return ioError(partPath, what, e);
  };
  if (!writeAll(out, head.data().data(), head.size())) return fail("cannot write");
  const int in = ::open(dataPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return fail("cannot reopen the sample data for");
  std::vector<uint8_t> buf(256 * 1024);
  for (;;) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (n > 0 && !writeAll(out, buf.data(), static_cast<size_t>(n)))) {
      const int e = errno;
      ::close(in);
      errno = e;
      return fail("cannot copy the sample data into");
    }
    if (n == 0) break;
  }
  ::close(in);
  if (::fsync(out) != 0) return fail("cannot fsync");
  if (::close(out) != 0) {
    const int e = errno;
    abort();
    return ioError(partPath, "cannot close", e);
  }
  std::error_code ec;
  std::filesystem::rename(partPath, path_, ec);
  if (ec) {
    abort();
    return ioError(path_, "cannot rename into place", ec.value());
  }
  // Make the rename durable: fsync the folder.
  const auto dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
  if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    ::fsync(d);
    ::close(d);
  }
  std::fclose(data_);
  data_ = nullptr;
  std::filesystem::remove(dataPath, ec);
  return {};
}

// ---------------------------------------------------------------------------------------------

std::vector<Box> parseBoxes(std::span<const uint8_t> bytes) {
  std::vector<Box> boxes;
  auto be32 = [&](size_t at) {
    return (uint32_t{bytes[at]} << 24) | (uint32_t{bytes[at + 1]} << 16) | (uint32_t{bytes[at + 2]} << 8) |
           uint32_t{bytes[at + 3]};
  };
  size_t at = 0;
  while (bytes.size() - at >= 8) {
    uint64_t size = be32(at);
    size_t header = 8;
    if (size == 1) {
      if (bytes.size() - at < 16) break;
      size = (uint64_t{be32(at + 8)} << 32) | be32(at + 12);
      header = 16;
    } else if (size == 0) {
      size = bytes.size() - at;
    }
    if (size < header || size > bytes.size() - at) break;
    Box b;
    b.type.assign(reinterpret_cast<const char*>(bytes.data() + at + 4), 4);
    b.offset = at;
    b.size = size;
    b.payload = bytes.subspan(at + header, static_cast<size_t>(size) - header);
    boxes.push_back(std::move(b));
    at += static_cast<size_t>(size);
  }
  return boxes;
}

}  // namespace printcast::transport::mp4
