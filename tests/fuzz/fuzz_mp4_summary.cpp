// SPDX-License-Identifier: MIT
// libFuzzer target: readMp4Summary, which reads the moov box of every .mp4 in a timelapse folder
// (files from a USB stick: outside input). The input is the file's content, given through a
// memfd. Oracles: no crash, leak or overread (ASan); an accepted file has a finite,
// non-negative duration or a sample count; a refusal names its reason.
#include <sys/mman.h>
#include <unistd.h>

#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "timelapse_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = ::memfd_create("fuzz.mp4", MFD_CLOEXEC);
  assert(fd >= 0);
  size_t done = 0;
  while (done < size) {
    const ssize_t w = ::write(fd, data + done, size - done);
    assert(w > 0);
    done += static_cast<size_t>(w);
  }
  const auto summary = printcast::streamer::readMp4Summary(fd);
  if (summary) {
    assert(std::isfinite(summary->durationSeconds));
    assert(summary->durationSeconds >= 0);
    assert(summary->samples >= 0);
    assert(summary->durationSeconds > 0 || summary->samples > 0);
  } else {
    assert(!summary.error().message.empty());
  }
  ::close(fd);
  return 0;
}
