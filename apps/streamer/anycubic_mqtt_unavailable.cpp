// SPDX-License-Identifier: MIT
// Stand-in for the Anycubic MQTT responder in builds without libmosquitto (PRINTCAST_WITH_MOSQUITTO).
#include "anycubic_mqtt.h"

namespace printcast::streamer {

hal::Result<std::unique_ptr<AnycubicMqttResponder>> createAnycubicMqttResponder(AnycubicMqttConfig,
                                                                                std::function<void(bool)>) {
  return hal::Result<std::unique_ptr<AnycubicMqttResponder>>(
      hal::Errc::Unsupported,
      "Anycubic MQTT responder: built without libmosquitto (PRINTCAST_WITH_MOSQUITTO)");
}

}  // namespace printcast::streamer
