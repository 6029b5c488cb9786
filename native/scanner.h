// The FastCGI scanner core: record framing and name-value pair scanning over caller-owned memory.
//
// Plain C++17 with no N-API, no allocation and no exceptions, so the same code runs in the addon and under
// libFuzzer. Output goes into a caller-owned uint32_t array laid out as in src/codec/layout.ts (mirrored in
// generated/layout.h): a header of OUT_HEADER_SLOTS slots, then fixed-stride descriptors. All offsets are
// absolute indexes into `data`. Malformed input is reported through out[OUT_ERROR], never by crashing,
// asserting or reading outside [start, end).
#pragma once

#include <cstddef>
#include <cstdint>

#include "generated/layout.h"

namespace fcgi {

// Scans complete records in data[start, end) and writes one REC_STRIDE descriptor per record (type, request
// id, content offset and length, padding length; padding is skipped).
// precondition: data holds at least `end` bytes, out holds out_length slots.
// Returns the number of descriptors written (also out[OUT_COUNT]). out[OUT_CONSUMED] is where scanning
// stopped: `end`, the start of a trailing partial record, or the first record that did not fit in `out`
// (then count == capacity and the caller scans again from there). On a bad version byte out[OUT_ERROR] is
// ERR_BAD_VERSION, out[OUT_ERROR_OFFSET] the record's offset, out[OUT_ERROR_VALUE] the byte, and
// out[OUT_CONSUMED] that same offset; records before it are still reported. Invalid arguments (start > end,
// out_length < OUT_HEADER_SLOTS + REC_STRIDE) give ERR_INVALID_ARGUMENT and 0; out_length <
// OUT_HEADER_SLOTS writes nothing.
uint32_t scan_records(const uint8_t* data, size_t start, size_t end, uint32_t* out, size_t out_length);

// Scans name-value pairs (FastCGI 1.0 §3.4: 1-byte lengths below 128, else 4 bytes big-endian with the top bit
// set) in data[start, end), a complete params stream or any prefix of one, and writes one PAIR_STRIDE
// descriptor per pair: the known-name id (NAME_UNKNOWN if none), name offset/length, value offset/length.
// precondition: as scan_records.
// Returns the number of descriptors written. Stops at `end`, when `out` is full (out[OUT_CONSUMED] is the next
// pair), or at a pair that does not fit before `end`: ERR_PAIR_LENGTH_TRUNCATED when a length is cut,
// ERR_PAIR_DATA_TRUNCATED when name + value run past `end` (OUT_ERROR_VALUE = their declared total, which
// can reach 2^32 - 2); in both cases out[OUT_CONSUMED] = out[OUT_ERROR_OFFSET] = the pair's offset, so a
// caller holding only a prefix of the stream can treat the error as "need more bytes".
uint32_t scan_pairs(const uint8_t* data, size_t start, size_t end, uint32_t* out, size_t out_length);

// FNV-1a (32-bit) of the known names joined by '\n', in id order; the loader compares it with the TS table.
uint32_t known_names_hash();

}  // namespace fcgi
