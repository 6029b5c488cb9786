// The known CGI names: ids the scanners return for names they recognise, so params need no name strings.
import names from './known-names.json';

/** Known names in id order; `KNOWN_NAMES[id]` is the interned name string for a scanner's PAIR_NAME_ID. */
export const KNOWN_NAMES: readonly string[] = Object.freeze([...names]);

/** Name → id, for `Params.get(name)` lookups by id. */
export const KNOWN_NAME_IDS: ReadonlyMap<string, number> = new Map(KNOWN_NAMES.map((name, id) => [name, id]));

/** FNV-1a (32-bit) of the names joined by '\n'; native/scanner.cc computes the same from its generated table. */
export function hashKnownNames(list: readonly string[]): number {
  let hash = 0x811c9dc5;
  for (let id = 0; id < list.length; id++) {
    const name = id > 0 ? `\n${list[id]}` : list[id]!;
    for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193) >>> 0;
  }
  return hash;
}

export const KNOWN_NAMES_HASH = hashKnownNames(KNOWN_NAMES);
