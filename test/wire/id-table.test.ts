import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdTable } from '../../src/wire/id-table';

describe('IdTable', () => {
  it('behaves as a Map of ids under any mix of set, delete and clear (one request in a field, the rest in a Map)', () => {
    const op = fc.oneof(
      fc.record({ set: fc.integer({ min: 1, max: 6 }), value: fc.integer() }),
      fc.record({ delete: fc.integer({ min: 1, max: 6 }) }),
      fc.constant({ clear: true }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const table = new IdTable<number>();
        const model = new Map<number, number>();
        for (const o of ops) {
          if ('set' in o) {
            table.set(o.set, o.value);
            model.set(o.set, o.value);
          } else if ('delete' in o) expect(table.delete(o.delete)).toBe(model.delete(o.delete));
          else {
            table.clear();
            model.clear();
          }
          expect(table.size).toBe(model.size);
          for (let id = 0; id <= 7; id++) {
            expect(table.get(id)).toBe(model.get(id));
            expect(table.has(id)).toBe(model.has(id));
          }
          expect(table.values().sort((a, b) => a - b)).toEqual([...model.values()].sort((a, b) => a - b));
        }
      }),
      { numRuns: 500 },
    );
  });
});
