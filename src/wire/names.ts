// The spec's names for record types, roles and protocolStatus values, by value, and what each refusal means to
// a client: the one table that traces, reports and errors read them from.
import { ErrorCode, type ErrorCodeValue } from '../errors';
import { ProtocolStatus, RecordType, Role } from './constants';

function byValue(table: Readonly<Record<string, number>>): Readonly<Record<number, string>> {
  return Object.freeze(Object.fromEntries(Object.entries(table).map(([name, value]) => [value, name])));
}

/** Spec names by record type value (`STDOUT`), for messages and traces. */
export const RECORD_TYPE_NAMES = byValue(RecordType);
/** Spec names by role value (`RESPONDER`). */
export const ROLE_NAMES = byValue(Role);
/** Spec names by END_REQUEST protocolStatus value (`OVERLOADED`). */
export const PROTOCOL_STATUS_NAMES = byValue(ProtocolStatus);

/** recordTypeName returns the spec name of a record type, or `type N` for one the spec does not define. */
export function recordTypeName(type: number): string {
  return RECORD_TYPE_NAMES[type] ?? `type ${type}`;
}

/** protocolStatusName returns the spec name of a protocolStatus, or the number for one the spec does not define. */
export function protocolStatusName(status: number): string {
  return PROTOCOL_STATUS_NAMES[status] ?? String(status);
}

/** What an END_REQUEST that refused a request means to the client that sent it. */
export interface Refusal {
  /** The error code a client reports for it. */
  readonly code: ErrorCodeValue;
  /** Why the backend refused, in words, ending with the spec name in parentheses. */
  readonly reason: string;
}

// FastCGI 1.0 §5.5: the protocolStatus values other than REQUEST_COMPLETE refuse the request.
const REFUSALS: Readonly<Record<number, Refusal>> = {
  [ProtocolStatus.CANT_MPX_CONN]: {
    code: ErrorCode.CANT_MPX_CONN,
    reason: 'it cannot multiplex requests on one connection (CANT_MPX_CONN)',
  },
  [ProtocolStatus.OVERLOADED]: { code: ErrorCode.OVERLOADED, reason: 'it is overloaded (OVERLOADED)' },
  [ProtocolStatus.UNKNOWN_ROLE]: {
    code: ErrorCode.UNKNOWN_ROLE,
    reason: 'it does not play the requested role (UNKNOWN_ROLE)',
  },
};
const UNKNOWN_REFUSAL: Refusal = { code: ErrorCode.UNKNOWN_PROTOCOL_STATUS, reason: 'unknown protocol status' };

/** refusalOf returns the error code and reason for a protocolStatus other than REQUEST_COMPLETE. */
export function refusalOf(protocolStatus: number): Refusal {
  return REFUSALS[protocolStatus] ?? UNKNOWN_REFUSAL;
}
