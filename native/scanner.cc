// The scanner core; see scanner.h for the contract.
#include "scanner.h"

#include "generated/known_names.h"

namespace fcgi {

namespace {

// Writes the output header; count and consumed always, the error triple only when set.
inline uint32_t finish(uint32_t* out, uint32_t count, size_t consumed) {
  out[OUT_COUNT] = count;
  out[OUT_CONSUMED] = static_cast<uint32_t>(consumed);
  return count;
}

inline uint32_t fail(uint32_t* out, uint32_t count, size_t at, uint32_t code, uint32_t value) {
  out[OUT_ERROR] = code;
  out[OUT_ERROR_OFFSET] = static_cast<uint32_t>(at);
  out[OUT_ERROR_VALUE] = value;
  return finish(out, count, at);
}

inline bool prologue(uint32_t* out, size_t start, size_t end, size_t out_length, size_t stride) {
  out[OUT_ERROR] = ERR_NONE;
  out[OUT_ERROR_OFFSET] = 0;
  out[OUT_ERROR_VALUE] = 0;
  if (start > end || out_length < OUT_HEADER_SLOTS + stride) {
    out[OUT_ERROR] = ERR_INVALID_ARGUMENT;
    out[OUT_ERROR_OFFSET] = static_cast<uint32_t>(start);
    finish(out, 0, start);
    return false;
  }
  return true;
}

// Reads a pair length at data[*q]; false when it does not fit before `end`.
inline bool read_length(const uint8_t* data, size_t* q, size_t end, uint32_t* length) {
  if (*q >= end) return false;
  const uint8_t b0 = data[*q];
  if (b0 < 0x80) {
    *length = b0;
    *q += 1;
    return true;
  }
  if (end - *q < 4) return false;
  *length = (static_cast<uint32_t>(b0 & 0x7f) << 24) | (static_cast<uint32_t>(data[*q + 1]) << 16) |
            (static_cast<uint32_t>(data[*q + 2]) << 8) | static_cast<uint32_t>(data[*q + 3]);
  *q += 4;
  return true;
}

}  // namespace

uint32_t scan_records(const uint8_t* data, size_t start, size_t end, uint32_t* out, size_t out_length) {
  if (out_length < OUT_HEADER_SLOTS) return 0;
  if (!prologue(out, start, end, out_length, REC_STRIDE)) return 0;
  const size_t capacity = (out_length - OUT_HEADER_SLOTS) / REC_STRIDE;
  uint32_t count = 0;
  size_t p = start;
  uint32_t* slot = out + OUT_HEADER_SLOTS;
  // invariant: start <= p <= end, and every record before p was reported.
  while (end - p >= RECORD_HEADER_LENGTH) {
    const uint8_t* h = data + p;
    if (h[0] != FCGI_VERSION) return fail(out, count, p, ERR_BAD_VERSION, h[0]);
    const size_t content_length = (static_cast<size_t>(h[4]) << 8) | h[5];
    const size_t padding_length = h[6];
    // Both lengths are at most 65535 + 255, so the sum cannot overflow size_t.
    if (end - p - RECORD_HEADER_LENGTH < content_length + padding_length) break;
    if (count == capacity) break;
    slot[REC_TYPE] = h[1];
    slot[REC_REQUEST_ID] = (static_cast<uint32_t>(h[2]) << 8) | h[3];
    slot[REC_CONTENT_OFFSET] = static_cast<uint32_t>(p + RECORD_HEADER_LENGTH);
    slot[REC_CONTENT_LENGTH] = static_cast<uint32_t>(content_length);
    slot[REC_PADDING_LENGTH] = static_cast<uint32_t>(padding_length);
    slot += REC_STRIDE;
    count++;
    p += RECORD_HEADER_LENGTH + content_length + padding_length;
  }
  // A partial header can still show a bad version: report it now rather than after more bytes arrive.
  if (p < end && data[p] != FCGI_VERSION) {
    return fail(out, count, p, ERR_BAD_VERSION, data[p]);
  }
  return finish(out, count, p);
}

uint32_t scan_pairs(const uint8_t* data, size_t start, size_t end, uint32_t* out, size_t out_length) {
  if (out_length < OUT_HEADER_SLOTS) return 0;
  if (!prologue(out, start, end, out_length, PAIR_STRIDE)) return 0;
  const size_t capacity = (out_length - OUT_HEADER_SLOTS) / PAIR_STRIDE;
  uint32_t count = 0;
  size_t p = start;
  uint32_t* slot = out + OUT_HEADER_SLOTS;
  while (p < end) {
    if (count == capacity) break;
    size_t q = p;
    uint32_t name_length = 0;
    uint32_t value_length = 0;
    if (!read_length(data, &q, end, &name_length) || !read_length(data, &q, end, &value_length)) {
      return fail(out, count, p, ERR_PAIR_LENGTH_TRUNCATED, 0);
    }
    // Each length is below 2^31, so the sum fits in 64 bits (and in uint32_t for OUT_ERROR_VALUE).
    const uint64_t declared = static_cast<uint64_t>(name_length) + value_length;
    if (declared > end - q) {
      return fail(out, count, p, ERR_PAIR_DATA_TRUNCATED, static_cast<uint32_t>(declared));
    }
    slot[PAIR_NAME_ID] = lookup_known_name(data + q, name_length);
    slot[PAIR_NAME_OFFSET] = static_cast<uint32_t>(q);
    slot[PAIR_NAME_LENGTH] = name_length;
    slot[PAIR_VALUE_OFFSET] = static_cast<uint32_t>(q + name_length);
    slot[PAIR_VALUE_LENGTH] = value_length;
    slot += PAIR_STRIDE;
    count++;
    p = q + declared;
  }
  return finish(out, count, p);
}

uint32_t known_names_hash() {
  uint32_t hash = 0x811c9dc5u;
  const char* const* names = known_names();
  for (uint32_t id = 0; id < kKnownNameCount; id++) {
    if (id > 0) hash = (hash ^ static_cast<uint8_t>('\n')) * 0x01000193u;
    for (const char* c = names[id]; *c != '\0'; c++) hash = (hash ^ static_cast<uint8_t>(*c)) * 0x01000193u;
  }
  return hash;
}

}  // namespace fcgi
