// SPDX-License-Identifier: MIT
// Moonraker client: JSON-RPC 2.0 over Moonraker's unix socket or its WebSocket, subscribed to the
// print's state and layer, reconnecting by itself when Moonraker restarts.
//
// Protocol (Moonraker docs, "JSON-RPC API" and "Printer Objects"):
//  - unix socket (~/printer_data/comms/moonraker.sock): each JSON message ends with byte 0x03;
//  - WebSocket ws://host:port/websocket: one JSON message per text frame (RFC 6455; our frames
//    are masked, as a client's must be).
// On every connection: server.connection.identify, then printer.objects.subscribe with
// {"print_stats":["state","filename","info"],"virtual_sdcard":["current_layer","total_layer"]};
// its result holds the initial status, later changes arrive as notify_status_update
// ([{changed fields}, eventtime]). A subscribe refused while Klippy is not ready is retried on
// notify_klippy_ready (and every 2 s). A lost connection is retried with backoff (0.5 s doubling
// to 8 s).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace printcast::streamer {

// What the timelapse needs from Moonraker's printer objects.
struct PrintStatus {
  std::string state;     // print_stats.state: standby|printing|paused|complete|cancelled|error ("" = unknown)
  std::string filename;  // print_stats.filename, relative to the gcodes folder ("" when none)
  // The current layer: virtual_sdcard.current_layer when Moonraker/Klipper report it, else
  // print_stats.info.current_layer (set by SET_PRINT_STATS_INFO in the slicer's layer-change gcode).
  std::optional<int> currentLayer;
  std::optional<int> totalLayer;  // the same sources, for total_layer
};

// The merged printer-object status (the subscribe result, with every notify_status_update
// applied on top) reduced to a PrintStatus. Pure; exposed for tests.
PrintStatus printStatusFrom(const nlohmann::json& objects);

struct MoonrakerConfig {
  std::string socketPath;  // non-empty: the unix socket is used, host/port are not
  std::string host = "127.0.0.1";
  uint16_t port = 7125;
  std::chrono::milliseconds firstRetry{500};
  std::chrono::milliseconds maxRetry{8000};
  std::string clientName = "printcast";
};

// Threading: one I/O thread of its own, started by start() and joined by stop() (or the
// destructor). Handlers run on that thread: keep them short (queue work elsewhere). Every public
// call is thread-safe.
class MoonrakerClient {
 public:
  using StatusHandler = std::function<void(const PrintStatus&)>;
  // Called on every (re)connection once subscribed, e.g. to register the webcam with call().
  using ConnectHandler = std::function<void(MoonrakerClient&)>;

  MoonrakerClient(MoonrakerConfig config, StatusHandler onStatus, ConnectHandler onConnect = {});
  ~MoonrakerClient();
  MoonrakerClient(const MoonrakerClient&) = delete;
  MoonrakerClient& operator=(const MoonrakerClient&) = delete;

  void start();
  void stop();  // idempotent

  // Send a JSON-RPC request (fire and forget: an error reply is logged and kept in lastError).
  // Queued while disconnected (up to 16 requests, oldest dropped).
  void call(const std::string& method, const nlohmann::json& params);

  struct State {
    std::string state;     // "connecting", "connected", "subscribed", "disconnected"
    std::string endpoint;  // "unix:/path" or "ws://host:port/websocket"
    std::string klippy;    // "ready", "not ready: <reason>", "disconnected", "" (unknown)
    std::string lastError;
    uint64_t connections = 0;  // successful connections since start
    uint64_t notifications = 0;
    std::chrono::milliseconds retryIn{0};  // while disconnected: time to the next attempt
    PrintStatus print;
  };
  State state() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace printcast::streamer
