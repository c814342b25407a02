// SPDX-License-Identifier: MIT
// H.264 software decoding (libavcodec's H.264 decoder): access units in, I420 pictures out.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "printcast/hal/frame.h"
#include "printcast/hal/result.h"

namespace printcast::codecs {

// Decodes one camera's H.264 stream, an access unit at a time, into I420 frames: what the
// streamer needs to serve JPEGs (MJPEG, snapshots) from a camera that only delivers H.264.
//
// Input: one complete access unit per call in the Annex-B byte stream format (ITU-T H.264
// Annex B: 3- or 4-byte start codes, all slices of one picture), as hal::Packet carries it.
// Parameter sets travel in band (SPS/PPS before each IDR, as cameras and our encoders send
// them); there is no out-of-band configuration. Decoding can start only at an IDR access unit
// carrying its SPS/PPS: until the decoder has seen one, decode() returns Again or
// InvalidArgument (no picture, never a guess).
//
// Output: the picture as an I420 frame (fourcc::kI420, 8 bits per sample) from the caller's
// `pool`, whose format and size must match the picture (the display size after SPS frame
// cropping: h264::parseSps(...).size). Samples are copied as coded, honouring strides: limited
// or full range as the SPS VUI says (libavcodec's yuvj420p is full-range I420). 4:2:2 and 4:4:4
// chroma is averaged down to 4:2:0 and monochrome (4:0:0) gets neutral chroma; higher bit
// depths (High 10 and up) are refused. The frame carries the `pts` and `sequence` given with
// the access unit that produced it. The decoder runs with libavcodec's low-delay flag and one
// thread, so a stream without B-frames (every camera we know, and our x264 settings) gives its
// picture for the same call; a stream with B-frames is shown in decoding order.
//
// Errors of decode():
//   Again            no picture from this access unit (none decoded yet: the first IDR is still
//                    to come, or the decoder holds it back)
//   InvalidArgument  an empty access unit; a pool that is not I420 of the picture's size (the
//                    picture of this call is lost: make a pool of pictureSize() and go on); data
//                    libavcodec rejects (corrupt or truncated input, a slice whose SPS/PPS it has
//                    not seen, an SPS of more than 4096x4096 = 16.8 M pixels), with libavcodec's
//                    own message. The decoder stays usable: the next
//                    access units decode as far as their references allow, and after an IDR in full.
//   Unsupported      a picture of a format I420 cannot carry (bit depth above 8), naming it
//   Again (pool)     the pool has no free buffer (a consumer holds its frames too long)
//   Io               libavcodec failing in any other way (out of memory)
// Corrupt input never crashes the process (fuzzed: tests/fuzz/fuzz_h264_decode.cpp).
//
// Threading and ownership: one thread at a time per decoder; decoders are independent. The
// decoder owns libavcodec's context and reference pictures (3 MB each at 1080p, as many as the
// SPS asks for: 15 MB measured for x264's one-reference 1080p stream); returned frames are
// leases on the caller's pool and outlive the decoder. While a decoder call runs, libavcodec's
// log lines from it are not printed but kept: the first warning or error becomes part of the
// returned error message (the first createH264Decoder() installs libavcodec's process-wide log
// callback for this; lines from any other libav user go to libavcodec's default callback as
// before).
class H264Decoder {
 public:
  virtual ~H264Decoder() = default;

  // Decode one Annex-B access unit; see the class comment for the errors.
  virtual hal::Result<hal::Frame> decode(std::span<const uint8_t> accessUnit, hal::FramePool& pool,
                                         hal::Timestamp pts, uint64_t sequence) = 0;

  // Forget every reference picture and any picture held back (libavcodec's flush): the next
  // picture comes from the next IDR. For a discontinuity (a reopened camera, skipped data).
  virtual void reset() = 0;

  // Size of the last picture decoded (after cropping); empty before the first.
  virtual hal::Size pictureSize() const = 0;

  // "libavcodec 59.37.100" (the library's version at run time).
  virtual std::string name() const = 0;
};

// Create a decoder. Errors: Unsupported "built without libavcodec" when this build has no
// decoder backend (PRINTCAST_WITH_AVCODEC); Unsupported when libavcodec cannot be loaded (see
// below: "libavcodec.so.59 could not be loaded: <dlerror>: install libavcodec59"), or when the
// libavcodec found at run time has no H.264 decoder; Io when libavcodec cannot open it (out of
// memory).
//
// Lazy loading: in shared builds the process does not link libavcodec/libavutil (their shared
// library closure is ~20 MB of RSS, ~95 libraries, for a decoder that only runs when someone
// wants JPEGs from an H.264 camera). The first createH264Decoder() loads them with
// dlopen("libavcodec.so.<major>"/"libavutil.so.<major>", RTLD_NOW | RTLD_LOCAL), the majors the
// build was compiled against (so the ABI matches), and resolves the ~20 functions it uses.
// That happens once per process, thread-safely (concurrent first calls wait for one load); a
// failed load is not retried, and every later call returns the same Unsupported error. The
// libraries stay loaded until exit. Static builds (PRINTCAST_STATIC) link libavcodec and call
// it directly: "loaded" from the start.
hal::Result<std::unique_ptr<H264Decoder>> createH264Decoder();

// The decoder backend's state, for /api/stats and logs; never loads anything itself:
//   "libavcodec 59.37.100"              loaded (the library's version at run time), or a static build
//   "libavcodec (loaded at first use)"  built with the backend, not loaded yet (no createH264Decoder())
//   "unavailable: <why>"                loading failed (the message createH264Decoder() returns)
//   "not-built"                         built without the backend (PRINTCAST_WITH_AVCODEC)
// Thread-safe.
std::string h264DecoderName();

}  // namespace printcast::codecs
