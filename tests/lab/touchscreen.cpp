// SPDX-License-Identifier: MIT
// printcast-lab-touchscreen: a uinput multi-touch touchscreen named like a printer's panel (lab only).
//   printcast-lab-touchscreen [--name hyn_ts] [--size 800x480]
// Prints "ready /dev/input/eventN" once the node exists, then lives until SIGTERM/SIGINT.
#include <libevdev/libevdev-uinput.h>
#include <libevdev/libevdev.h>
#include <linux/input.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  std::string name = "hyn_ts";
  int width = 800, height = 480;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--name") {
      name = argv[i + 1];
    } else if (key == "--size" && std::sscanf(argv[i + 1], "%dx%d", &width, &height) == 2) {
    } else {
      std::fprintf(stderr, "usage: %s [--name NAME] [--size WxH]\n", argv[0]);
      return 2;
    }
  }
  libevdev* dev = libevdev_new();
  libevdev_set_name(dev, name.c_str());
  libevdev_set_id_bustype(dev, BUS_VIRTUAL);
  libevdev_enable_property(dev, INPUT_PROP_DIRECT);
  libevdev_enable_event_type(dev, EV_KEY);
  libevdev_enable_event_code(dev, EV_KEY, BTN_TOUCH, nullptr);
  libevdev_enable_event_type(dev, EV_ABS);
  // Ranges as the printers' panels report them: x in [0, width], y in [0, height], 10 slots.
  auto abs = [&](unsigned code, int min, int max) {
    input_absinfo info{};
    info.minimum = min;
    info.maximum = max;
    libevdev_enable_event_code(dev, EV_ABS, code, &info);
  };
  abs(ABS_X, 0, width);
  abs(ABS_Y, 0, height);
  abs(ABS_MT_SLOT, 0, 9);
  abs(ABS_MT_TRACKING_ID, 0, 65535);
  abs(ABS_MT_POSITION_X, 0, width);
  abs(ABS_MT_POSITION_Y, 0, height);
  abs(ABS_MT_TOUCH_MAJOR, 0, 255);
  abs(ABS_MT_PRESSURE, 0, 255);
  libevdev_uinput* uinput = nullptr;
  const int rc = libevdev_uinput_create_from_device(dev, LIBEVDEV_UINPUT_OPEN_MANAGED, &uinput);
  if (rc < 0) {
    std::fprintf(stderr, "printcast-lab-touchscreen: /dev/uinput: %s\n", std::strerror(-rc));
    return 1;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  const char* node = libevdev_uinput_get_devnode(uinput);
  std::printf("ready %s\n", node ? node : "?");
  std::fflush(stdout);
  int received = 0;
  sigwait(&signals, &received);
  libevdev_uinput_destroy(uinput);
  libevdev_free(dev);
  return 0;
}
