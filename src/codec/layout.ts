// Slot indices of the scanners' output arrays: the one contract shared by the native addon and the TS twin.
//
// This file is the single source: scripts/gen-native-headers.mjs turns every `export const NAME = N;` line
// below into native/generated/layout.h, and the loader compares the addon's copy with these values before
// it trusts the addon. Add slots and error codes at the end; never renumber (prebuilds in the wild use them).

// Header of every output array.
/** Number of descriptors written. */
export const OUT_COUNT = 0;
/** Absolute offset where scanning stopped: the end, the start of a partial record/pair, or a full output. */
export const OUT_CONSUMED = 1;
/** A ScanError code (ERR_*); ERR_NONE when the scan met no malformed input. */
export const OUT_ERROR = 2;
/** Absolute offset of the record or pair that caused the error. */
export const OUT_ERROR_OFFSET = 3;
/** A number that explains the error (the version byte, the declared pair length). */
export const OUT_ERROR_VALUE = 4;
/** Descriptors start here; slots 5..7 are reserved. */
export const OUT_HEADER_SLOTS = 8;

// One record descriptor (padding already skipped).
export const REC_TYPE = 0;
export const REC_REQUEST_ID = 1;
export const REC_CONTENT_OFFSET = 2;
export const REC_CONTENT_LENGTH = 3;
export const REC_PADDING_LENGTH = 4;
export const REC_STRIDE = 5;

// One name-value pair descriptor.
export const PAIR_NAME_ID = 0;
export const PAIR_NAME_OFFSET = 1;
export const PAIR_NAME_LENGTH = 2;
export const PAIR_VALUE_OFFSET = 3;
export const PAIR_VALUE_LENGTH = 4;
export const PAIR_STRIDE = 5;

/** PAIR_NAME_ID of a name that is not in the known-name table. */
export const NAME_UNKNOWN = 0xffffffff;

// Scan error codes.
export const ERR_NONE = 0;
/** A record header's version byte is not 1. */
export const ERR_BAD_VERSION = 1;
/** The params stream ends inside a pair's 1- or 4-byte length. */
export const ERR_PAIR_LENGTH_TRUNCATED = 2;
/** A pair's declared name + value length runs past the end of the params stream. */
export const ERR_PAIR_DATA_TRUNCATED = 3;
/** start > end, end beyond the buffer, or an output array too short for one descriptor. */
export const ERR_INVALID_ARGUMENT = 4;

/** The FastCGI record header size; a constant of the protocol, kept here because both scanners use it. */
export const RECORD_HEADER_LENGTH = 8;
/** The only protocol version (FastCGI 1.0 §8: FCGI_VERSION_1). */
export const FCGI_VERSION = 1;
