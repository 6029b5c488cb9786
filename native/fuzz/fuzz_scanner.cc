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

// The same scanner.cc compiled once more without coverage instrumentation (scripts/fuzz.sh renames its
// namespace with -Dfcgi=fcgi_uninstrumented), still under ASan and UBSan, for the output with room for
// everything below: that pass scans the bytes the rescanned pieces already scanned, so its feedback is a
// repeat. Instrumented, it cost a tenth of each input's time in comparison callbacks, and its feedback kept
// libFuzzer breeding a corpus of larger inputs (1-1.5 MB after 45 s instead of 0.3 MB) that reached no edge
// more and ran at a third of the rate.
namespace fcgi_uninstrumented {
uint32_t scan_records(const uint8_t* data, size_t start, size_t end, uint32_t* out, size_t out_length);
uint32_t scan_pairs(const uint8_t* data, size_t start, size_t end, uint32_t* out, size_t out_length);
}  // namespace fcgi_uninstrumented

namespace {

using namespace fcgi;

// A plain trap rather than assert(): it survives -DNDEBUG and libFuzzer reports it as a crash with the input.
#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

// Equality without memcmp: ASan's memcmp interceptor hands every call to libFuzzer's comparison tracing, which
// is there to steer inputs through the scanner's own compares; for this file's checks it was only cost (a
// tenth of the run). Eight bytes at a time, as these compare every descriptor and every pair's name.
bool same_bytes(const uint8_t* a, const uint8_t* b, size_t n) {
  for (; n >= 8; a += 8, b += 8, n -= 8) {
    uint64_t x;
    uint64_t y;
    std::memcpy(&x, a, 8);
    std::memcpy(&y, b, 8);
    if (x != y) return false;
  }
  for (; n > 0; a++, b++, n--) {
    if (*a != *b) return false;
  }
  return true;
}

bool same_slots(const uint32_t* a, const uint32_t* b, size_t n) {
  return same_bytes(reinterpret_cast<const uint8_t*>(a), reinterpret_cast<const uint8_t*>(b), n * sizeof(uint32_t));
}

// Slots the scanner must not touch keep this value, so a stray write shows up as a changed slot. One byte
// repeated, so filling is a memset.
constexpr uint8_t kSentinelByte = 0xa5;
constexpr uint32_t kSentinel = 0xa5a5a5a5u;

using ScanFn = uint32_t (*)(const uint8_t*, size_t, size_t, uint32_t*, size_t);

// A heap block kept for the whole run, of which one prefix at a time is addressable: the rest stays poisoned,
// so ASan flags an access one past the prefix exactly as with a block of that size, and the block's own left
// redzone guards the front. A fresh allocation per output is what held this target near 1,000 exec/s: ASan
// serves blocks over 128 KB with a new mmap each time, and faulting in their pages took most of the run.
class Window {
 public:
  Window() = default;
  Window(const Window&) = delete;
  Window& operator=(const Window&) = delete;

  // Returns a block of at least `size` bytes whose first `open` bytes (a partial last granule included) are
  // addressable; at most one prefix is open at a time.
  uint8_t* open(size_t size, size_t open) {
    CHECK(open_ == 0 && open <= size);
    if (size > capacity_ || block_ == nullptr) grow(size);
    if (open > 0) ASAN_UNPOISON_MEMORY_REGION(block_, open);
    open_ = open;
    return block_;
  }
  void close() {
    if (open_ > 0) ASAN_POISON_MEMORY_REGION(block_, open_);
    open_ = 0;
  }

 private:
  void grow(size_t size) {
    // Never empty, so an empty prefix is still a real pointer (memcpy and memset may not take null).
    size_t capacity = size > 2 * capacity_ ? size : 2 * capacity_;
    if (capacity < 64) capacity = 64;
    if (block_ != nullptr) {
      ASAN_UNPOISON_MEMORY_REGION(block_, capacity_);
      delete[] block_;
    }
    block_ = new uint8_t[capacity];
    capacity_ = capacity;
    ASAN_POISON_MEMORY_REGION(block_, capacity_);
  }
  uint8_t* block_ = nullptr;
  size_t capacity_ = 0;
  size_t open_ = 0;
};

// An output of `length` slots at the start of a Window, of which the first `open` are addressable and hold
// the sentinel. Usually open == length, so ASan flags a write one past the end. Hand-rolled rather than
// std::vector, whose template code lies outside the pragma above and would be instrumented.
struct Out {
  Out(Window* w, size_t n) : Out(w, n, n) {}
  Out(Window* w, size_t n, size_t open_slots)
      : window(w),
        slots(reinterpret_cast<uint32_t*>(w->open(n * sizeof(uint32_t), open_slots * sizeof(uint32_t)))),
        length(n),
        open(open_slots) {
    std::memset(slots, kSentinelByte, open * sizeof(uint32_t));
  }
  Out(const Out&) = delete;
  Out& operator=(const Out&) = delete;
  ~Out() { window->close(); }
  void swap(Out& other) {
    Window* w = window;
    window = other.window;
    other.window = w;
    uint32_t* p = slots;
    slots = other.slots;
    other.slots = p;
    size_t n = length;
    length = other.length;
    other.length = n;
    n = open;
    open = other.open;
    other.open = n;
  }
  uint32_t& operator[](size_t i) { return slots[i]; }
  const uint32_t* descriptor(size_t i, size_t stride) const { return slots + OUT_HEADER_SLOTS + i * stride; }
  Window* window;
  uint32_t* slots;
  size_t length;
  size_t open;
};

// One window per output that can be live at once: the rescan loop's current and next piece (which trade
// windows on each step), the output with room for everything, the determinism rerun inside scan_checked, and
// the input copy.
Window piece_window;
Window next_window;
Window whole_window;
Window again_window;
Window data_window;

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

// The unknown-name check must show that no known name equals the pair's name; grouping the table by length
// once makes that a compare against the two or three names of the same length instead of all of them.
constexpr size_t kMaxKnownNameLength = 64;
struct KnownNamesByLength {
  KnownNamesByLength() {
    for (uint32_t k = 0; k < kKnownNameCount; k++) {
      const size_t length = std::strlen(known_names()[k]);
      CHECK(length < kMaxKnownNameLength);
      of[k] = length;
      ids[length][count[length]++] = k;
    }
  }
  size_t of[kKnownNameCount];
  uint32_t count[kMaxKnownNameLength] = {};
  uint32_t ids[kMaxKnownNameLength][kKnownNameCount];
};
const KnownNamesByLength kNames;

bool name_is(const uint8_t* p, uint64_t length, uint32_t id) {
  return kNames.of[id] == length && same_bytes(p, reinterpret_cast<const uint8_t*>(known_names()[id]), length);
}

bool is_unknown_name(const uint8_t* p, uint64_t length) {
  if (length >= kMaxKnownNameLength) return true;
  for (uint32_t i = 0; i < kNames.count[length]; i++) {
    if (same_bytes(p, reinterpret_cast<const uint8_t*>(known_names()[kNames.ids[length][i]]), length)) return false;
  }
  return true;
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
      CHECK(is_unknown_name(name, name_length));
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
  ScanFn uninstrumented;  // the same function built without coverage callbacks
  size_t stride;
  size_t min_encoded;  // smallest input one descriptor can stand for, to size an output with room for any input
  size_t (*verify)(const Call&, Out&, size_t);
};

const Scanner kRecords{scan_records, fcgi_uninstrumented::scan_records, REC_STRIDE, RECORD_HEADER_LENGTH,
                       verify_records};
const Scanner kPairs{scan_pairs, fcgi_uninstrumented::scan_pairs, PAIR_STRIDE, 2, verify_pairs};
const Scanner* const kScanners[] = {&kRecords, &kPairs};

// The three kinds of call fuzz_scanner makes; scan_checked skips for each the checks another call covers.
enum class Pass {
  // The first call of an input, from its start offset into the configured output. The scanner keeps no state
  // between calls, so the same arguments must give the same bytes: this call alone is made twice to check
  // that. The later calls scan the same bytes again under other capacities and are compared with this one's
  // pieces, which a scanner with state would fail just as well; repeating every call doubled the scanning.
  kFirst,
  // A rescan from where a full output stopped.
  kRescan,
  // The output with room for everything. Made by the uninstrumented build, and its descriptors are not walked
  // against the bytes: they must equal the pieces', each walked already.
  kWhole,
};

// One call plus every check that needs only its own output. Returns the output's descriptor capacity, or 0
// when the arguments were invalid (the caller then has nothing more to compare).
size_t scan_checked(const Scanner& s, const Call& c, Out* result, Pass pass) {
  Out& out = *result;
  const ScanFn scan = pass == Pass::kWhole ? s.uninstrumented : s.scan;
  const uint32_t count = scan(c.data, c.start, c.end, out.slots, out.length);
  if (pass == Pass::kFirst) {
    Out again(&again_window, out.length);
    CHECK(scan(c.data, c.start, c.end, again.slots, again.length) == count);
    CHECK(same_slots(out.slots, again.slots, out.length));
  }

  if (out.length < OUT_HEADER_SLOTS) {
    CHECK(count == 0);
    for (size_t i = 0; i < out.length; i++) CHECK(out[i] == kSentinel);
    return 0;
  }
  CHECK(out[OUT_COUNT] == count);
  if (c.start > c.end || out.length < OUT_HEADER_SLOTS + s.stride) {
    CHECK(count == 0 && out[OUT_ERROR] == ERR_INVALID_ARGUMENT);
    CHECK(out[OUT_CONSUMED] == c.start && out[OUT_ERROR_OFFSET] == c.start);
    return 0;
  }
  const size_t capacity = (out.length - OUT_HEADER_SLOTS) / s.stride;
  const size_t consumed = out[OUT_CONSUMED];
  CHECK(count <= capacity);
  CHECK(c.start <= consumed && consumed <= c.end);
  if (out[OUT_ERROR] != ERR_NONE) CHECK(consumed == out[OUT_ERROR_OFFSET]);
  // Slots past `open` are poisoned, so ASan has already caught any access there.
  for (size_t i = OUT_HEADER_SLOTS + count * s.stride; i < out.open; i++) CHECK(out[i] == kSentinel);
  if (pass != Pass::kWhole) CHECK(s.verify(c, out, capacity) == consumed);
  return capacity;
}

// The descriptors of every piece of one rescan loop, in order; grows to the largest loop seen and is reused.
struct Collected {
  void clear() { length = 0; }
  void append(const uint32_t* slots, size_t n) {
    if (length + n > allocated) {
      allocated = 2 * (length + n);
      uint32_t* bigger = new uint32_t[allocated];
      if (length > 0) std::memcpy(bigger, data, length * sizeof(uint32_t));
      delete[] data;
      data = bigger;
    }
    if (n > 0) std::memcpy(data + length, slots, n * sizeof(uint32_t));
    length += n;
  }
  uint32_t* data = nullptr;
  size_t length = 0;
  size_t allocated = 0;
};
Collected collected;

// Drives the scanner the way a caller with a small output array does, rescanning from OUT_CONSUMED while the
// output comes back full, and checks that the pieces add up to one scan with room for every descriptor.
void fuzz_scanner(const Scanner& s, const Call& c, size_t out_length) {
  Out piece(&piece_window, out_length);
  const size_t capacity = scan_checked(s, c, &piece, Pass::kFirst);
  if (capacity == 0) return;

  collected.clear();
  for (;;) {
    const uint32_t count = piece[OUT_COUNT];
    collected.append(piece.descriptor(0, s.stride), count * s.stride);
    if (count < capacity || piece[OUT_ERROR] != ERR_NONE) break;
    const Call rest{c.data, piece[OUT_CONSUMED], c.end};
    Out next(piece.window == &piece_window ? &next_window : &piece_window, out_length);
    CHECK(scan_checked(s, rest, &next, Pass::kRescan) == capacity);
    // A full output followed by a rescan that neither advances nor stops would spin a caller forever.
    CHECK(next[OUT_CONSUMED] > rest.start || next[OUT_COUNT] == 0);
    piece.swap(next);
  }

  // Room for a descriptor per min_encoded bytes, as many as any input of this length can hold. Only the slots
  // up to one descriptor past what the pieces found are addressable and filled: the scanner has no business
  // beyond them, and filling and checking the worst case (10 bytes per input byte for pairs, 640 KB for a
  // 64 KB input) cost more than the scans.
  const size_t total = collected.length / s.stride;
  const size_t whole_length = OUT_HEADER_SLOTS + s.stride * ((c.end - c.start) / s.min_encoded + 1);
  Out whole(&whole_window, whole_length, OUT_HEADER_SLOTS + s.stride * (total + 1));
  CHECK(scan_checked(s, c, &whole, Pass::kWhole) > whole[OUT_COUNT]);
  CHECK(whole[OUT_COUNT] == total);
  CHECK(same_slots(collected.data, whole.descriptor(0, s.stride), collected.length));
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
  // pad bytes in front put data + start on a granule boundary (a Window's block is 8-aligned).
  const size_t poisoned = start < n ? start : n;
  const size_t pad = (8 - poisoned % 8) % 8;
  uint8_t* block = data_window.open(pad + n, pad + n);
  uint8_t* data = block + pad;
  std::memcpy(data, input + kConfigBytes, n);
  ASAN_POISON_MEMORY_REGION(block, pad + poisoned);
  const Call call{data, start, n};
  for (const Scanner* s : kScanners) {
    const size_t out_length =
        slack >= 0xf0 ? slack & 0x0fu : OUT_HEADER_SLOTS + capacity * s->stride + slack % s->stride;
    fuzz_scanner(*s, call, out_length);
  }
  data_window.close();
  return 0;
}

#pragma clang attribute pop
