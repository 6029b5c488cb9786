// Flags of the bench scripts (dos, fuzz-live, soak): node:util's parseArgs, with --help and a usage line on a bad
// flag, so each script states only its flags and defaults.
import { parseArgs } from 'node:util';

/** Parses `--name value` flags; prints `usage` and exits 0 on --help, 2 on an unknown or malformed flag. */
export function benchFlags<Name extends string>(argv: string[], usage: string, names: readonly Name[]): Partial<Record<Name, string>> {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const name of names) options[name] = { type: 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${usage}\n`);
    process.exit(2);
  }
  if (values.help === true) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const out: Partial<Record<Name, string>> = {};
  for (const name of names) {
    const value = values[name];
    if (typeof value === 'string') out[name] = value;
  }
  return out;
}

/** A numeric flag's value, or the default when it was not given; a non-number exits 2. */
export function numberFlag(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) {
    process.stderr.write(`--${name} wants a number, got ${JSON.stringify(value)}\n`);
    process.exit(2);
  }
  return n;
}
