// SPDX-License-Identifier: MIT
// The MQTT side of the camera program on Anycubic's go-klipper firmware: the slicer (and the
// firmware's web side) ask for the live view with startCapture / stopCapture on the local broker,
// and the camera program reports on the report topic, as gkcam does. Without these reports the
// slicer shows the camera as disconnected. Learned from h264-streamer's MQTTVideoResponder
// (h264_server.py) and its rkmpi_enc mqtt_client.c; see protocols.md.
//
// Broker: 127.0.0.1:9883, MQTT 3.1.1 over TLS with a self-signed certificate, user name and
// password from /userdata/app/gk/config/device_account.json ({"deviceId","username","password"}).
// Topics ({modelId}: the printer model's number, api.cfg's cloud.modelId, e.g. "20025" for a
// Kobra S1; {deviceId}: device_account.json's deviceId):
//   requests  anycubic/anycubicCloud/v1/web/printer/{modelId}/{deviceId}/video
//             anycubic/anycubicCloud/v1/slicer/printer/{modelId}/{deviceId}/video
//             {"type":"video","action":"startCapture"|"stopCapture","timestamp":<ms>,
//              "msgid":"<uuid>","data":null}
//   reports   anycubic/anycubicCloud/v1/printer/public/{modelId}/{deviceId}/video/report
//             {"type":"video","action":"<the request's>","timestamp":<ms, now>,"msgid":"<new uuid>",
//              "state":"initSuccess"|"pushStopped","code":200,"msg":"","data":null}
// The firmware itself publishes a stopCapture report when it thinks the camera program is gone;
// while the slicer wants the live view, such a report (one whose msgid is not ours) is answered
// with an initSuccess report, as h264-streamer does, at most once a second.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/hal/result.h"

namespace printcast::streamer {

inline constexpr std::string_view kAnycubicDeviceAccountPath = "/userdata/app/gk/config/device_account.json";
inline constexpr std::string_view kAnycubicApiConfigPath = "/userdata/app/gk/config/api.cfg";

// The firmware's broker account. Errors: InvalidArgument (not JSON, or deviceId / username /
// password missing or not non-empty strings; the message never contains the password).
struct AnycubicDeviceAccount {
  std::string deviceId;
  std::string username;
  std::string password;
};
hal::Result<AnycubicDeviceAccount> parseDeviceAccount(std::string_view json);
// Read and parse the file. Errors: NoDevice (no such file: not a go-klipper firmware),
// PermissionDenied, Io, InvalidArgument (as parseDeviceAccount).
hal::Result<AnycubicDeviceAccount> loadDeviceAccount(const std::filesystem::path& file);

// cloud.modelId of the firmware's api.cfg (JSON; a string or a number, returned as digits).
// Errors: InvalidArgument. The board's detection already knows the model id on Anycubic boards;
// this is for when it does not.
hal::Result<std::string> parseApiConfigModelId(std::string_view json);

struct AnycubicVideoTopics {
  std::string web;     // requests from the web / app side
  std::string slicer;  // requests from the slicer
  std::string report;  // our reports
};
AnycubicVideoTopics anycubicVideoTopics(std::string_view modelId, std::string_view deviceId);

// The responder's decisions, without a network: one received message in, the reports to publish
// out. Pure but for the clock and the msgid source it is given (tests pass fixed ones).
// Threading: one caller at a time.
class AnycubicMqttVideoLogic {
 public:
  struct Publish {
    std::string topic;
    std::string payload;
  };
  struct Hooks {
    std::function<int64_t()> nowMs;         // Unix time in ms for "timestamp"
    std::function<std::string()> newMsgId;  // a fresh msgid (UUID text) for each report
    // Called on startCapture (true) / stopCapture (false) requests: the streamer may keep the
    // FLV/H.264 output warm for the slicer. Optional.
    std::function<void(bool streaming)> onCapture;
  };
  AnycubicMqttVideoLogic(AnycubicVideoTopics topics, Hooks hooks, bool counterSpuriousStop = true);

  // Any topic and payload (untrusted bytes). Returns the reports to publish (0 or 1). Ignored:
  // other topics, payloads that are not a JSON object with type "video" and a known action, a
  // msgid already handled (the same request on both topics or a QoS 1 redelivery: the last 64
  // are remembered).
  std::vector<Publish> onMessage(std::string_view topic, std::string_view payload);

  // The report payload for `action` with `state`: the shape above.
  std::string reportPayload(std::string_view action, std::string_view state, const std::string& msgid) const;

  struct Stats {
    uint64_t requests = 0;   // startCapture / stopCapture requests answered
    uint64_t ignored = 0;    // messages not acted on (malformed, duplicate, other topic)
    uint64_t countered = 0;  // spurious stopCapture reports answered with initSuccess
    bool streaming = false;  // the last request was startCapture
  };
  const Stats& stats() const { return stats_; }

 private:
  bool seen(const std::string& msgid);  // remembers it

  AnycubicVideoTopics topics_;
  Hooks hooks_;
  bool counterSpuriousStop_;
  std::deque<std::string> msgids_;  // ours and handled requests', newest last, at most 64
  int64_t lastCounterMs_ = -1;
  Stats stats_;
};

struct AnycubicMqttConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 9883;
  std::filesystem::path accountFile = std::string(kAnycubicDeviceAccountPath);
  std::string modelId;   // required: the board's Anycubic model id, else api.cfg's
  std::string deviceId;  // "" = the account file's deviceId
  // TLS. caFile empty (the printer): the broker's certificate is not verified. The firmware's
  // broker presents a self-signed certificate that is not issued for 127.0.0.1 and whose issuer
  // printcast has no copy of; the connection never leaves the machine (loopback), so encryption
  // without verification is what the firmware's own clients and h264-streamer do. With caFile
  // set (tests), the chain is verified against it, but not the host name (TlsVerify::ChainOnly).
  std::string caFile;
  std::chrono::milliseconds firstRetry{1000};  // reconnect backoff: doubles up to maxRetry
  std::chrono::milliseconds maxRetry{30000};
  int keepaliveS = 60;
  std::string clientIdPrefix = "printcast";  // client id: "<prefix>_<8 hex digits>"
  bool counterSpuriousStop = true;
};

// Threading: one thread of its own (start() to stop()) runs libmosquitto's network loop,
// reconnects (1 s doubling to 30 s by default; libmosquitto's own reconnect loop grows
// quadratically, sleeps uninterruptibly and gives up on TLS errors, so it is not used) and calls
// the logic and the onCapture hook. start() and stop() do not wait for the network; stop() joins
// the thread within about a second (it sends DISCONNECT first when connected). state() is
// thread-safe.
class AnycubicMqttResponder {
 public:
  virtual ~AnycubicMqttResponder() = default;

  // Read the account file, open the TLS tunnel (transport/tls_tunnel.h) and start the thread.
  // Errors: those of loadDeviceAccount(), InvalidArgument (no modelId), Unsupported (no TLS
  // client in this build), Io (the tunnel's socket, libmosquitto's set-up). A broker that is not
  // there yet is not an error: the thread keeps trying.
  virtual hal::Status start() = 0;
  virtual void stop() = 0;  // idempotent

  struct State {
    std::string state;         // "stopped", "connecting", "connected", "waiting"
    std::string lastError;     // e.g. "broker refused the connection: not authorised (check ...)"
    uint64_t connections = 0;  // successful CONNACKs since start
    uint64_t failures = 0;     // failed attempts and lost connections
    std::chrono::milliseconds retryIn{0};
    AnycubicMqttVideoLogic::Stats video;
  };
  virtual State state() const = 0;
};

// The libmosquitto responder. Errors: Unsupported (built without libmosquitto:
// PRINTCAST_WITH_MOSQUITTO), Io (libmosquitto could not be initialised).
hal::Result<std::unique_ptr<AnycubicMqttResponder>> createAnycubicMqttResponder(
    AnycubicMqttConfig config, std::function<void(bool streaming)> onCapture = {});

}  // namespace printcast::streamer
