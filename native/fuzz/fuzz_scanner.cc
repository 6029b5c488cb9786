// libFuzzer target: runs scan_records and scan_pairs on arbitrary bytes and traps on any contract breach.
//
// As in llhttp's test/fuzzers/fuzz_parser.c, the first bytes are knobs rather than data, so one corpus covers
// every output size and start offset (scripts/make-fuzz-seeds.mjs writes seeds in this format):
//   byte 0  descriptor capacity - 1, low 6 bits (1..64)
//   byte 1  start offset, modulo (data length + 2); the top value is start > end, an invalid argument
//   byte 2  below 0xf0: slack slots after the last descriptor (mod stride), to prove capacity rounds down;
//           0xf0..0xff: an output of exactly (byte & 0x0f) slots, mostly too short for one descriptor
// The rest is the data; end is always its length.
#include <sanitizer/asan_interface.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "generated/known_names.h"
#include "scanner.h"

// Coverage feedback should come from the scanner alone: instrumenting these checks' loops and comparisons
// adds noise to the corpus and cost more than half the exec rate when measured.
#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)

namespace {

using namespace fcgi;

// A plain trap rather than assert(): it survives -DNDEBUG and libFuzzer reports it as a crash with the input.
#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

// Slots the scanner must not touch keep this value, so a stray write shows up as a changed slot. One byte
// repeated, so filling is a memset: the room-for-everything output in fuzz_scanner is 10 bytes per input byte.
constexpr uint8_t kSentinelByte = 0xa5;
constexpr uint32_t kSentinel = 0xa5a5a5a5u;

using ScanFn = uint32_t (*)(const uint8_t*, size_t, size_t, uint32_t*, size_t);

// Exactly n slots on the heap, so ASan flags a write one past the end. Hand-rolled rather than std::vector,
// whose template code lies outside the pragma above and would be instrumented.
struct Out {
  explicit Out(size_t n) : slots(new uint32_t[n]) { std::memset(slots, kSentinelByte, n * sizeof(uint32_t)); }
  Out(const Out&) = delete;
  Out& operator=(const Out&) = delete;
  ~Out() { delete[] slots; }
  void swap(Out& other) {
    uint32_t* mine = slots;
    slots = other.slots;
    other.slots = mine;
  }
  uint32_t& operator[](size_t i) { return slots[i]; }
  const uint32_t* descriptor(size_t i, size_t stride) const { return slots + OUT_HEADER_SLOTS + i * stride; }
  uint32_t* slots;
};

struct Call {
  const uint8_t* data;
  size_t start;
  size_t end;
};

bool in_range(const Call& c, uint64_t offset, uint64_t length) {
  return c.start <= offset && offset + length <= c.end;
}

uint32_t be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }

// Re-reads a §3.4 length independently of the scanner, so the reference cannot share its decoding slip.
bool read_length(const Call& c, size_t* q, uint64_t* length) {
  if (*q >= c.end) return false;
  const uint8_t* b = c.data + *q;
  if (b[0] < 0x80) {
    *length = b[0];
    *q += 1;
    return true;
  }
  if (c.end - *q < 4) return false;
  *length = (uint64_t{b[0] & 0x7fu} << 24) | (uint64_t{b[1]} << 16) | (uint64_t{b[2]} << 8) | b[3];
  *q += 4;
  return true;
}

// The unknown-name check runs the whole table for every pair, so the lengths are measured once.
struct KnownNameLengths {
  KnownNameLengths() {
    for (uint32_t k = 0; k < kKnownNameCount; k++) of[k] = std::strlen(known_names()[k]);
  }
  size_t of[kKnownNameCount];
};
const KnownNameLengths kNameLengths;

bool name_is(const uint8_t* p, uint64_t length, uint32_t id) {
  return kNameLengths.of[id] == length && std::memcmp(p, known_names()[id], length) == 0;
}

// Walks the records the scanner reported, checking each descriptor against the bytes; returns where the walk
// ended, which must be OUT_CONSUMED.
size_t verify_records(const Call& c, Out& out, size_t capacity) {
  const uint32_t count = out[OUT_COUNT];
  size_t p = c.start;
  for (uint32_t i = 0; i < count; i++) {
    const uint32_t* d = out.descriptor(i, REC_STRIDE);
    CHECK(in_range(c, d[REC_CONTENT_OFFSET], uint64_t{d[REC_CONTENT_LENGTH]} + d[REC_PADDING_LENGTH]));
    // Descriptors must tile the input from start with no gaps, which also makes them strictly increasing.
    CHECK(d[REC_CONTENT_OFFSET] == p + RECORD_HEADER_LENGTH);
    const uint8_t* h = c.data + p;
    CHECK(h[0] == FCGI_VERSION && d[REC_TYPE] == h[1] && d[REC_REQUEST_ID] == be16(h + 2));
    CHECK(d[REC_CONTENT_LENGTH] == be16(h + 4) && d[REC_PADDING_LENGTH] == h[6]);
    p += RECORD_HEADER_LENGTH + d[REC_CONTENT_LENGTH] + d[REC_PADDING_LENGTH];
  }
  const size_t rest = c.end - p;
  switch (out[OUT_ERROR]) {
    case ERR_NONE:
      // Stopping short of a full output means what is left is a partial record with a good version byte.
      if (count < capacity && rest > 0) {
        CHECK(c.data[p] == FCGI_VERSION);
        CHECK(rest < RECORD_HEADER_LENGTH ||
              rest - RECORD_HEADER_LENGTH < size_t{be16(c.data + p + 4)} + c.data[p + 6]);
      }
      break;
    case ERR_BAD_VERSION:
      CHECK(rest > 0 && c.data[p] != FCGI_VERSION && out[OUT_ERROR_VALUE] == c.data[p]);
      break;
    default:
      CHECK(false);
  }
  return p;
}

size_t verify_pairs(const Call& c, Out& out, size_t capacity) {
  const uint32_t count = out[OUT_COUNT];
  size_t p = c.start;
  for (uint32_t i = 0; i < count; i++) {
    const uint32_t* d = out.descriptor(i, PAIR_STRIDE);
    CHECK(in_range(c, d[PAIR_NAME_OFFSET], d[PAIR_NAME_LENGTH]));
    CHECK(in_range(c, d[PAIR_VALUE_OFFSET], d[PAIR_VALUE_LENGTH]));
    size_t q = p;
    uint64_t name_length = 0;
    uint64_t value_length = 0;
    CHECK(read_length(c, &q, &name_length) && read_length(c, &q, &value_length));
    CHECK(d[PAIR_NAME_OFFSET] == q && d[PAIR_NAME_LENGTH] == name_length);
    CHECK(d[PAIR_VALUE_OFFSET] == q + name_length && d[PAIR_VALUE_LENGTH] == value_length);
    const uint8_t* name = c.data + q;
    const uint32_t id = d[PAIR_NAME_ID];
    if (id == NAME_UNKNOWN) {
      // A miss on a known name would silently cost the fast path, which no other test would notice.
      for (uint32_t k = 0; k < kKnownNameCount; k++) CHECK(!name_is(name, name_length, k));
    } else {
      CHECK(id < kKnownNameCount && name_is(name, name_length, id));
    }
    p = q + name_length + value_length;
  }
  size_t q = p;
  uint64_t name_length = 0;
  uint64_t value_length = 0;
  switch (out[OUT_ERROR]) {
    case ERR_NONE:
      if (count < capacity) CHECK(p == c.end);
      break;
    case ERR_PAIR_LENGTH_TRUNCATED:
      CHECK(p < c.end && !(read_length(c, &q, &name_length) && read_length(c, &q, &value_length)));
      break;
    case ERR_PAIR_DATA_TRUNCATED:
      CHECK(read_length(c, &q, &name_length) && read_length(c, &q, &value_length));
      CHECK(name_length + value_length > c.end - q);
      CHECK(out[OUT_ERROR_VALUE] == static_cast<uint32_t>(name_length + value_length));
      break;
    default:
      CHECK(false);
  }
  return p;
}

struct Scanner {
  ScanFn scan;
  size_t stride;
  size_t min_encoded;  // smallest input one descriptor can stand for, to size an output with room for all
  size_t (*verify)(const Call&, Out&, size_t);
};

const Scanner kRecords{scan_records, REC_STRIDE, RECORD_HEADER_LENGTH, verify_records};
const Scanner kPairs{scan_pairs, PAIR_STRIDE, 2, verify_pairs};
const Scanner* const kScanners[] = {&kRecords, &kPairs};

// One call plus every check that needs only its own output. Returns the output's descriptor capacity, or 0
// when the arguments were invalid (the caller then has nothing more to compare).
size_t scan_checked(const Scanner& s, const Call& c, size_t out_length, Out* result) {
  Out& out = *result;
  const uint32_t count = s.scan(c.data, c.start, c.end, out.slots, out_length);
  // The scanner keeps no state between calls, so the same arguments must give the same bytes.
  Out again(out_length);
  CHECK(s.scan(c.data, c.start, c.end, again.slots, out_length) == count);
  CHECK(std::memcmp(out.slots, again.slots, out_length * sizeof(uint32_t)) == 0);

  if (out_length < OUT_HEADER_SLOTS) {
    CHECK(count == 0);
    for (size_t i = 0; i < out_length; i++) CHECK(out[i] == kSentinel);
    return 0;
  }
  CHECK(out[OUT_COUNT] == count);
  if (c.start > c.end || out_length < OUT_HEADER_SLOTS + s.stride) {
    CHECK(count == 0 && out[OUT_ERROR] == ERR_INVALID_ARGUMENT);
    CHECK(out[OUT_CONSUMED] == c.start && out[OUT_ERROR_OFFSET] == c.start);
    return 0;
  }
  const size_t capacity = (out_length - OUT_HEADER_SLOTS) / s.stride;
  const size_t consumed = out[OUT_CONSUMED];
  CHECK(count <= capacity);
  CHECK(c.start <= consumed && consumed <= c.end);
  if (out[OUT_ERROR] != ERR_NONE) CHECK(consumed == out[OUT_ERROR_OFFSET]);
  for (size_t i = OUT_HEADER_SLOTS + count * s.stride; i < out_length; i++) CHECK(out[i] == kSentinel);
  CHECK(s.verify(c, out, capacity) == consumed);
  return capacity;
}

// Drives the scanner the way a caller with a small output array does, rescanning from OUT_CONSUMED while the
// output comes back full, and checks that the pieces add up to one scan with room for every descriptor.
void fuzz_scanner(const Scanner& s, const Call& c, size_t out_length) {
  Out piece(out_length);
  const size_t capacity = scan_checked(s, c, out_length, &piece);
  if (capacity == 0) return;

  const size_t whole_length = OUT_HEADER_SLOTS + s.stride * ((c.end - c.start) / s.min_encoded + 1);
  Out whole(whole_length);
  CHECK(scan_checked(s, c, whole_length, &whole) > whole[OUT_COUNT]);

  size_t total = 0;
  for (;;) {
    const uint32_t count = piece[OUT_COUNT];
    CHECK(total + count <= whole[OUT_COUNT]);
    CHECK(std::memcmp(piece.descriptor(0, s.stride), whole.descriptor(total, s.stride),
                      count * s.stride * sizeof(uint32_t)) == 0);
    total += count;
    if (count < capacity || piece[OUT_ERROR] != ERR_NONE) break;
    const Call rest{c.data, piece[OUT_CONSUMED], c.end};
    Out next(out_length);
    CHECK(scan_checked(s, rest, out_length, &next) == capacity);
    // A full output followed by a rescan that neither advances nor stops would spin a caller forever.
    CHECK(next[OUT_CONSUMED] > rest.start || next[OUT_COUNT] == 0);
    piece.swap(next);
  }
  CHECK(total == whole[OUT_COUNT]);
  CHECK(piece[OUT_CONSUMED] == whole[OUT_CONSUMED]);
  CHECK(piece[OUT_ERROR] == whole[OUT_ERROR] && piece[OUT_ERROR_OFFSET] == whole[OUT_ERROR_OFFSET] &&
        piece[OUT_ERROR_VALUE] == whole[OUT_ERROR_VALUE]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* input, size_t size) {
  constexpr size_t kConfigBytes = 3;
  if (size < kConfigBytes) return 0;
  const size_t capacity = (input[0] & 63u) + 1;
  const size_t n = size - kConfigBytes;
  const size_t start = input[1] % (n + 2);
  const uint8_t slack = input[2];

  // A private copy that ends exactly at `end` makes any read past it an ASan error. Reads that stray back
  // before `start` are caught by poisoning the prefix, and ASan poisons whole 8-byte granules only, so a few
  // pad bytes in front put data + start on a granule boundary (heap blocks themselves are 8-aligned).
  const size_t poisoned = start < n ? start : n;
  const size_t pad = (8 - poisoned % 8) % 8;
  uint8_t* block = new uint8_t[pad + n];
  uint8_t* data = block + pad;
  std::memcpy(data, input + kConfigBytes, n);
  ASAN_POISON_MEMORY_REGION(block, pad + poisoned);
  const Call call{data, start, n};
  for (const Scanner* s : kScanners) {
    const size_t out_length =
        slack >= 0xf0 ? slack & 0x0fu : OUT_HEADER_SLOTS + capacity * s->stride + slack % s->stride;
    fuzz_scanner(*s, call, out_length);
  }
  ASAN_UNPOISON_MEMORY_REGION(block, pad + n);
  delete[] block;
  return 0;
}

#pragma clang attribute pop
