// SPDX-License-Identifier: MIT
// Huffman-table repair for MJPEG camera frames: insert the standard tables when DHT is missing.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace printcast::hal {

// USB (UVC) cameras commonly send MJPEG frames without a DHT segment (Huffman tables), relying
// on the decoder to assume the "typical" tables of ITU-T T.81 Annex K.3 (Tables K.3-K.6), which
// most JPEG decoders do not. This scans the markers from SOI up to SOS:
//  - a DHT (FFC4) is present -> returns false and leaves `out` untouched;
//  - no DHT -> `out` becomes the frame with one DHT segment holding the four standard tables
//    (DC/AC luminance class 0/1 id 0, DC/AC chrominance id 1) inserted just before SOS; true.
// Input that is not a JPEG (no SOI, truncated marker segments, no SOS) returns false.
// `out` keeps its capacity between calls, so a reused vector does not allocate per frame.
bool insertDefaultHuffmanTables(std::span<const uint8_t> jpeg, std::vector<uint8_t>& out);

// The DHT segment that insertDefaultHuffmanTables() inserts (marker FFC4 included).
std::span<const uint8_t> defaultHuffmanTablesSegment();

}  // namespace printcast::hal
