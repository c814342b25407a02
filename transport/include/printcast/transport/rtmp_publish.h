// SPDX-License-Identifier: MIT
// RTMP publish: push the camera's H.264 to an RTMP ingest (go2rtc, MediaMTX, nginx-rtmp,
// YouTube-style services) as an FLV client of our own FlvStream: each FLV tag it would send to a
// /flv viewer (sequence header, then access units from an IDR, capture-time timestamps) becomes
// one RTMP video message.
//
// Specs: Adobe's RTMP specification 1.0 (5.2 handshake, 5.3 chunking, 5.4 protocol control
// messages, 7.2 commands), AMF0 (Adobe AMF0 specification 2.1: number, boolean, string, object,
// null, ECMA array), FLV 10.1 E.4.3 VIDEODATA as the video message body. Models read: ffmpeg's
// rtmpproto.c (the command sequence FMLE sends: connect, releaseStream, FCPublish, createStream,
// publish), go2rtc's pkg/rtmp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/hal/result.h"
#include "printcast/transport/fanout.h"
#include "printcast/transport/publish_status.h"
#include "printcast/transport/url.h"

namespace printcast::transport {

namespace rtmp {

// One RTMP message (5.4, 7.1): its type (1 set chunk size, 20 AMF0 command, 9 video...), the
// message stream id, the timestamp in ms and the payload.
struct Message {
  uint8_t type = 0;
  uint32_t streamId = 0;
  uint32_t timestamp = 0;
  std::vector<uint8_t> payload;
};

// Incremental reader of a peer's chunk stream (5.3.1: basic header with 1-3 byte chunk stream
// ids, message headers of type 0-3, extended timestamps), after the handshake. A Set Chunk Size
// message (type 1) from the peer applies to the chunks after it. Feed bytes in any split; pop
// whole messages. Errors (the reader stays failed): InvalidArgument (a type 1-3 header on a chunk
// stream never started, a chunk size outside 1..0x7fffffff, a message above maxMessageBytes).
// Memory: the partial messages of at most 64 chunk streams, each under maxMessageBytes.
class ChunkReader {
 public:
  explicit ChunkReader(size_t maxMessageBytes = size_t{1} << 20) : maxMessageBytes_(maxMessageBytes) {}
  hal::Status feed(std::span<const uint8_t> bytes);
  bool pop(Message& out);

 private:
  struct Stream {
    Message header;  // type, stream id, timestamp of the message in progress
    uint32_t length = 0;
    uint32_t delta = 0;
    bool extended = false;
    bool started = false;
    std::vector<uint8_t> body;
  };
  hal::Status parse();

  size_t maxMessageBytes_;
  size_t chunkSize_ = 128;
  hal::Status failed_;
  std::vector<uint8_t> buffer_;
  std::map<uint32_t, Stream> streams_;
  std::deque<Message> ready_;
};

// AMF0 values as the publisher needs them (7.2 command replies: _result, onStatus, _error).
struct Amf0Property;
struct Amf0Value {
  enum class Kind { Number, Boolean, String, Object, Null, Undefined } kind = Kind::Null;
  double number = 0;
  bool boolean = false;
  std::string string;
  std::vector<Amf0Property> object;  // Object and ECMA array, in order
  // A property of an object, or nullptr.
  const Amf0Value* get(std::string_view key) const;
};
struct Amf0Property {
  std::string key;
  Amf0Value value;
};
// Decode the values of a command message in order. Errors: InvalidArgument (truncated, a marker
// this reader does not know, nesting deeper than 8).
hal::Result<std::vector<Amf0Value>> decodeAmf0(std::span<const uint8_t> bytes);

}  // namespace rtmp

// Where an rtmp:// URL publishes: rtmp://host[:1935]/app[/more]/streamkey, or rtmps://host[:443]/...
// (the same inside TLS from the first byte: the server's certificate must chain to the system's
// CAs, or to those of the PEM file the SSL_CERT_FILE environment variable names, and name the
// host). The key (a secret) is the last path segment with its query; tcUrl is what connect
// announces.
struct RtmpTarget {
  Url url;
  std::string app, key, tcUrl;
  std::string shown() const { return tcUrl + "/***"; }  // for status and logs
};
// Errors: parseUrl()'s (Unsupported for another scheme, and for rtmps:// in a build without TLS:
// rtmpsSupported()), InvalidArgument (no app or no key; the message
// does not repeat the path, which may be the key).
hal::Result<RtmpTarget> parseRtmpUrl(std::string_view url);
// Whether `url` is one for RtmpPublisher: rtmp:// or rtmps:// (any case); not whether it is valid.
bool isRtmpUrl(std::string_view url);
// Whether this build publishes rtmps:// (it has a TLS client: GnuTLS, PRINTCAST_WITH_GNUTLS).
bool rtmpsSupported();

struct RtmpPublishOptions {
  std::chrono::milliseconds connectTimeout{3000};
  std::chrono::milliseconds responseTimeout{5000};
  std::chrono::milliseconds firstRetry{1000};  // doubling up to maxRetry; back to firstRetry after
  std::chrono::milliseconds maxRetry{30000};   // a session that was publishing
  uint32_t chunkSize = 4096;                   // what we announce and send with
};

using RtmpPublishStatus = PublishStatus;

// rtmp://host[:1935]/app[/more]/streamkey: connects (rtmps://: then the TLS handshake, GnuTLS,
// bounded by connectTimeout), does the plain RTMP handshake (C0 C1 / S0 S1 S2
// / C2), announces its chunk size, sends connect (app, tcUrl, flashVer, type nonprivate),
// releaseStream, FCPublish, createStream, then publish(key, "live") on the created stream, and
// writes each FLV tag of its subscription to `stream` as a video (9) or data (18) message. The
// server's messages are read throughout (a peer chunk size is honoured; _error or an onStatus
// with level "error" ends the session with its description). Retries like the RTSP publisher.
// Threading: start() and status() from any thread; the destructor closes and joins. `stream`
// outlives the publisher.
class RtmpPublisher {
 public:
  // Errors: InvalidArgument (not rtmp[s]://host/app/key), Unsupported (rtmps:// without TLS).
  // A TLS session that fails (a refused certificate: PermissionDenied) is retried like any other.
  static hal::Result<std::unique_ptr<RtmpPublisher>> start(const std::string& url, FlvStream& stream,
                                                           RtmpPublishOptions options = {});
  ~RtmpPublisher();
  RtmpPublisher(const RtmpPublisher&) = delete;
  RtmpPublisher& operator=(const RtmpPublisher&) = delete;
  PublishStatus status() const;

 private:
  struct Impl;
  explicit RtmpPublisher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace printcast::transport
