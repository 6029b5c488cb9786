// FastCGI 1.0 protocol constants, named as in the spec (§8), in `as const` tables typed by their values.

/** Record types (FastCGI 1.0 §8: FCGI_BEGIN_REQUEST … FCGI_UNKNOWN_TYPE). */
export const RecordType = {
  BEGIN_REQUEST: 1,
  ABORT_REQUEST: 2,
  END_REQUEST: 3,
  PARAMS: 4,
  STDIN: 5,
  STDOUT: 6,
  STDERR: 7,
  DATA: 8,
  GET_VALUES: 9,
  GET_VALUES_RESULT: 10,
  UNKNOWN_TYPE: 11,
} as const;
export type RecordTypeValue = (typeof RecordType)[keyof typeof RecordType];

/** Roles carried by BEGIN_REQUEST (FastCGI 1.0 §5.1). */
export const Role = {
  RESPONDER: 1,
  AUTHORIZER: 2,
  FILTER: 3,
} as const;
export type RoleValue = (typeof Role)[keyof typeof Role];

/** BEGIN_REQUEST flags; KEEP_CONN is the only one the spec defines. */
export const Flag = {
  KEEP_CONN: 1,
} as const;

/** END_REQUEST protocolStatus values (FastCGI 1.0 §5.5). */
export const ProtocolStatus = {
  REQUEST_COMPLETE: 0,
  CANT_MPX_CONN: 1,
  OVERLOADED: 2,
  UNKNOWN_ROLE: 3,
} as const;
export type ProtocolStatusValue = (typeof ProtocolStatus)[keyof typeof ProtocolStatus];

/** Names a GET_VALUES query may ask for (FastCGI 1.0 §4.1). */
export const ManagementVariable = {
  MAX_CONNS: 'FCGI_MAX_CONNS',
  MAX_REQS: 'FCGI_MAX_REQS',
  MPXS_CONNS: 'FCGI_MPXS_CONNS',
} as const;

export const VERSION = 1;
export const HEADER_LENGTH = 8;
/** Management records use request id 0 (FastCGI 1.0 §3.3). */
export const NULL_REQUEST_ID = 0;
export const MAX_CONTENT_LENGTH = 0xffff;
export const MAX_PADDING_LENGTH = 0xff;
/** A name or value length must fit in 31 bits (FastCGI 1.0 §3.4). */
export const MAX_PAIR_LENGTH = 0x7fffffff;
/** The listening socket a spawning web server hands the application (FastCGI 1.0 §2.2). */
export const LISTENSOCK_FILENO = 0;
