// SPDX-License-Identifier: MIT
// The Anycubic MQTT video responder over libmosquitto (MQTT 3.1.1, QoS 1); anycubic_mqtt.h.
// TLS is not libmosquitto's: it connects in plain TCP to a TlsTunnel on 127.0.0.1, which speaks
// TLS to the broker with transport's TLS client. libmosquitto's only TLS is OpenSSL, which does
// not fit the printers' static images (~2.4 MB); the images carry libmosquitto built without TLS
// and mbedTLS, and every build runs this one path.
#include <mosquitto.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "anycubic_mqtt.h"
#include "printcast/hal/thread_name.h"
#include "printcast/transport/tls_tunnel.h"

namespace printcast::streamer {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kQos = 1;
constexpr int kLoopTimeoutMs = 200;  // bounds stop()'s wait

std::string randomHex(size_t digits) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string out;
  while (out.size() < digits) out += fmt::format("{:016x}", rng());
  out.resize(digits);
  return out;
}

// RFC 4122 version 4 UUID text, as the firmware's msgids.
std::string uuid4() {
  std::string h = randomHex(32);
  h[12] = '4';
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  return fmt::format("{}-{}-{}-{}-{}", h.substr(0, 8), h.substr(8, 4), h.substr(12, 4), h.substr(16, 4),
                     h.substr(20, 12));
}

int64_t unixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::once_flag gLibInit;

class MosquittoResponder final : public AnycubicMqttResponder {
 public:
  MosquittoResponder(AnycubicMqttConfig config, std::function<void(bool)> onCapture)
      : config_(std::move(config)), onCapture_(std::move(onCapture)) {
    st_.state = "stopped";
  }
  ~MosquittoResponder() override { stop(); }

  hal::Status start() override {
    {
      std::lock_guard lock(mutex_);
      if (running_) return {};
    }
    if (config_.modelId.empty())
      return hal::Error{hal::Errc::InvalidArgument, 0, "MQTT responder: no printer model id (modelId)"};
    auto account = loadDeviceAccount(config_.accountFile);
    if (!account) return std::move(account).error();
    account_ = std::move(*account);
    const std::string deviceId = config_.deviceId.empty() ? account_.deviceId : config_.deviceId;
    topics_ = anycubicVideoTopics(config_.modelId, deviceId);
    logic_ = std::make_unique<AnycubicMqttVideoLogic>(
        topics_, AnycubicMqttVideoLogic::Hooks{unixMs, uuid4, onCapture_}, config_.counterSpuriousStop);

    transport::TlsTunnelOptions tunnel;
    tunnel.host = config_.host;
    tunnel.port = config_.port;
    // The printer (no caFile): encrypted, not verified (AnycubicMqttConfig::caFile says why).
    tunnel.tls.verify = config_.caFile.empty() ? transport::TlsVerify::None : transport::TlsVerify::ChainOnly;
    tunnel.tls.caFile = config_.caFile;
    auto opened = transport::TlsTunnel::start(std::move(tunnel));
    if (!opened) return opened.error();
    tunnel_ = std::move(*opened);

    std::call_once(gLibInit, [] { mosquitto_lib_init(); });
    const std::string clientId = config_.clientIdPrefix + "_" + randomHex(8);
    mosq_ = mosquitto_new(clientId.c_str(), /*clean_session=*/true, this);
    if (mosq_ == nullptr) {
      tunnel_.reset();
      return hal::errnoError("MQTT responder: mosquitto_new");
    }
    auto fail = [&](const char* what, int rc) -> hal::Status {
      mosquitto_destroy(mosq_);
      mosq_ = nullptr;
      tunnel_.reset();
      return hal::Error{hal::Errc::Io, 0,
                        fmt::format("MQTT responder: {}: {}", what, mosquitto_strerror(rc))};
    };
    int rc = mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    if (rc != MOSQ_ERR_SUCCESS) return fail("protocol version", rc);
    rc = mosquitto_username_pw_set(mosq_, account_.username.c_str(), account_.password.c_str());
    if (rc != MOSQ_ERR_SUCCESS) return fail("credentials", rc);
    mosquitto_connect_callback_set(mosq_, &MosquittoResponder::onConnect);
    mosquitto_message_callback_set(mosq_, &MosquittoResponder::onMessageCb);

    {
      std::lock_guard lock(mutex_);
      running_ = true;
    }
    thread_ = std::thread([this] {
      hal::nameThisThread("mqtt");
      run();
    });
    spdlog::info("anycubic mqtt: responding to video requests of model {} on {}:{}", config_.modelId,
                 config_.host, config_.port);
    return {};
  }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      if (!running_) return;
      running_ = false;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    mosquitto_destroy(mosq_);
    mosq_ = nullptr;
    tunnel_.reset();
    std::lock_guard lock(mutex_);
    st_.state = "stopped";
  }

  State state() const override {
    std::lock_guard lock(mutex_);
    return st_;
  }

 private:
  static void onConnect(mosquitto* m, void* self, int rc) {
    static_cast<MosquittoResponder*>(self)->connected(m, rc);
  }
  static void onMessageCb(mosquitto*, void* self, const mosquitto_message* msg) {
    static_cast<MosquittoResponder*>(self)->message(msg);
  }

  void connected(mosquitto* m, int rc) {
    if (rc != 0) {
      // 4: bad user name or password, 5: not authorised (MQTT 3.1.1 section 3.2.2.3).
      refused_ = fmt::format("broker refused the connection: {} (check {})", mosquitto_connack_string(rc),
                             config_.accountFile.string());
      return;
    }
    for (const auto* topic : {&topics_.web, &topics_.slicer, &topics_.report}) {
      const int s = mosquitto_subscribe(m, nullptr, topic->c_str(), kQos);
      if (s != MOSQ_ERR_SUCCESS)
        spdlog::warn("anycubic mqtt: subscribe {}: {}", *topic, mosquitto_strerror(s));
    }
    std::lock_guard lock(mutex_);
    st_.state = "connected";
    ++st_.connections;
    st_.retryIn = std::chrono::milliseconds(0);
    established_ = true;
  }

  void message(const mosquitto_message* msg) {
    if (msg == nullptr || msg->topic == nullptr) return;
    const std::string_view payload(static_cast<const char*>(msg->payload),
                                   msg->payload == nullptr ? 0 : static_cast<size_t>(msg->payloadlen));
    const auto publishes = logic_->onMessage(msg->topic, payload);
    for (const auto& p : publishes) {
      const int rc = mosquitto_publish(mosq_, nullptr, p.topic.c_str(), static_cast<int>(p.payload.size()),
                                       p.payload.data(), kQos, /*retain=*/false);
      if (rc != MOSQ_ERR_SUCCESS)
        spdlog::warn("anycubic mqtt: publish {}: {}", p.topic, mosquitto_strerror(rc));
    }
    std::lock_guard lock(mutex_);
    st_.video = logic_->stats();
  }

  void setState(const char* s) {
    std::lock_guard lock(mutex_);
    st_.state = s;
  }

  void run() {
    auto backoff = config_.firstRetry;
    std::string lastLogged;
    while (true) {
      {
        std::lock_guard lock(mutex_);
        if (!running_) break;
        st_.state = "connecting";
      }
      refused_.clear();
      established_ = false;
      // connect(), not reconnect(): after a refused CONNACK libmosquitto 2.0's reconnect() answers
      // "invalid arguments"; connect() sets everything up again.
      int rc = mosquitto_connect(mosq_, "127.0.0.1", tunnel_->port(), config_.keepaliveS);
      std::string error;
      if (rc == MOSQ_ERR_SUCCESS) {
        while (true) {
          {
            std::lock_guard lock(mutex_);
            if (!running_) break;
          }
          rc = mosquitto_loop(mosq_, kLoopTimeoutMs, 1);
          if (rc != MOSQ_ERR_SUCCESS) break;
        }
        bool stopping;
        {
          std::lock_guard lock(mutex_);
          stopping = !running_;
        }
        if (stopping) {
          if (established_) {
            mosquitto_disconnect(mosq_);
            (void)mosquitto_loop(mosq_, kLoopTimeoutMs, 1);  // let DISCONNECT go out
          }
          break;
        }
        const auto tunnelEnd = tunnel_->lastEnd();
        if (!refused_.empty()) {
          error = refused_;
        } else if (tunnelEnd && !tunnelEnd->error.empty()) {
          // Why the TLS side ended: "cannot connect" when it never got a session.
          error = fmt::format("{}: {}", tunnelEnd->established ? "connection lost" : "cannot connect",
                              tunnelEnd->error);
        } else if (rc == MOSQ_ERR_ERRNO) {
          error = fmt::format("connection lost: {}", std::strerror(errno));
        } else {
          error = fmt::format("connection lost: {}", mosquitto_strerror(rc));
        }
      } else {
        error = rc == MOSQ_ERR_ERRNO ? fmt::format("cannot connect to {}:{}: {}", config_.host, config_.port,
                                                   std::strerror(errno))
                                     : fmt::format("cannot connect to {}:{}: {}", config_.host, config_.port,
                                                   mosquitto_strerror(rc));
      }
      if (established_) backoff = config_.firstRetry;  // it worked: start the backoff over
      {
        std::lock_guard lock(mutex_);
        st_.state = "waiting";
        st_.lastError = error;
        st_.retryIn = backoff;
        ++st_.failures;
      }
      if (error != lastLogged) {
        spdlog::warn("anycubic mqtt: {}; retrying with backoff up to {:.1f} s", error,
                     static_cast<double>(config_.maxRetry.count()) / 1000.0);
        lastLogged = error;
      }
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, backoff, [this] { return !running_; });
      backoff = std::min(backoff * 2, config_.maxRetry);
    }
  }

  AnycubicMqttConfig config_;
  std::function<void(bool)> onCapture_;
  AnycubicDeviceAccount account_;
  AnycubicVideoTopics topics_;
  std::unique_ptr<AnycubicMqttVideoLogic> logic_;  // responder thread only
  std::unique_ptr<transport::TlsTunnel> tunnel_;   // start() to stop(); libmosquitto connects to it
  mosquitto* mosq_ = nullptr;
  std::thread thread_;
  // Responder thread only (set by callbacks that run inside mosquitto_loop()).
  std::string refused_;
  bool established_ = false;

  mutable std::mutex mutex_;  // guards running_ and st_
  std::condition_variable wake_;
  bool running_ = false;
  State st_;
};

}  // namespace

hal::Result<std::unique_ptr<AnycubicMqttResponder>> createAnycubicMqttResponder(
    AnycubicMqttConfig config, std::function<void(bool)> onCapture) {
  return std::unique_ptr<AnycubicMqttResponder>(
      std::make_unique<MosquittoResponder>(std::move(config), std::move(onCapture)));
}

}  // namespace printcast::streamer
