// The N-API binding: typed-array arguments in, an integer count out. No JS strings, arrays or objects are made
// on the hot path; module setup uses node-addon-api, the two scan entry points use raw napi_* calls because
// node-addon-api's CallbackInfo costs 10-30 ns per call, as much as a short scan (the README's codec tables).
#include <napi.h>

#include <cstdint>

#include "generated/known_names.h"
#include "generated/layout.h"
#include "precise-timer.h"
#include "scanner.h"

namespace {

using ScanFn = uint32_t (*)(const uint8_t*, size_t, size_t, uint32_t*, size_t);

// (buf: Uint8Array, start: number, end: number, out: Uint32Array) -> number of descriptors.
// Argument types are checked because a wrong one would be a memory-safety bug, not a scan error; ranges are
// checked against the real buffer lengths so that no JS value can make the core read or write out of bounds.
template <ScanFn scan>
napi_value Scan(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 4) {
    napi_throw_type_error(env, nullptr, "scan(buf, start, end, out) takes 4 arguments");
    return nullptr;
  }
  napi_typedarray_type in_type;
  size_t in_length = 0;
  void* in_data = nullptr;
  napi_typedarray_type out_type;
  size_t out_length = 0;
  void* out_data = nullptr;
  uint32_t start = 0;
  uint32_t end = 0;
  if (napi_get_typedarray_info(env, argv[0], &in_type, &in_length, &in_data, nullptr, nullptr) != napi_ok ||
      in_type != napi_uint8_array ||
      napi_get_typedarray_info(env, argv[3], &out_type, &out_length, &out_data, nullptr, nullptr) != napi_ok ||
      out_type != napi_uint32_array || napi_get_value_uint32(env, argv[1], &start) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &end) != napi_ok) {
    napi_throw_type_error(env, nullptr, "scan(buf: Uint8Array, start: number, end: number, out: Uint32Array)");
    return nullptr;
  }
  uint32_t* out = static_cast<uint32_t*>(out_data);
  uint32_t count = 0;
  if (out_length >= fcgi::OUT_HEADER_SLOTS && end > in_length) {
    // Same answer as the TS twin: an end beyond the buffer is an argument error, reported in the header.
    out[fcgi::OUT_COUNT] = 0;
    out[fcgi::OUT_CONSUMED] = start;
    out[fcgi::OUT_ERROR] = fcgi::ERR_INVALID_ARGUMENT;
    out[fcgi::OUT_ERROR_OFFSET] = start;
    out[fcgi::OUT_ERROR_VALUE] = 0;
  } else if (end <= in_length) {
    count = scan(static_cast<const uint8_t*>(in_data), start, end, out, out_length);
  }
  napi_value result;
  napi_create_uint32(env, count, &result);
  return result;
}

Napi::Value RawFunction(Napi::Env env, const char* name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn);
  return Napi::Value(env, fn);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("scanRecords", RawFunction(env, "scanRecords", Scan<fcgi::scan_records>));
  exports.Set("scanPairs", RawFunction(env, "scanPairs", Scan<fcgi::scan_pairs>));
  RegisterPreciseTimer(env, exports);
  exports.Set("knownNamesHash", Napi::Number::New(env, fcgi::known_names_hash()));
  exports.Set("knownNameCount", Napi::Number::New(env, fcgi::kKnownNameCount));
  // The slot layout the addon was compiled with, for the loader's consistency check (cold path).
  Napi::Object layout = Napi::Object::New(env);
#define FCGI_LAYOUT(name) layout.Set(#name, Napi::Number::New(env, fcgi::name));
  FCGI_LAYOUT_FIELDS(FCGI_LAYOUT)
#undef FCGI_LAYOUT
  exports.Set("layout", layout);
  return exports;
}

}  // namespace

NODE_API_MODULE(fastcgi_engine, Init)
