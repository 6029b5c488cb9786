// The shapes a caller may give request params in; apart from client.ts so that the request, the diagnostics
// messages and the client itself can all name them without importing each other.
import type { PairInput } from '../wire/pairs';

/** A param value: a byte string or UTF-8 text (see PairInput), raw bytes, or a number; undefined leaves it out. */
export type ParamValue = PairInput | number | undefined;

/** Params as an object, or as [name, value] pairs (duplicates allowed, order kept). */
export type ParamsInput = Readonly<Record<string, ParamValue>> | Iterable<readonly [PairInput, PairInput]>;
