// Flags of the bench scripts (dos, fuzz-live, soak, e2e): node:util's parseArgs, with --help and a usage line on
// a bad flag, so each script states only its flags and defaults.
import { parseArgs } from 'node:util';

/**
 * Parses `--name value` flags and `--switch` flags (true when given); prints `usage` and exits 0 on --help, 2 on
 * an unknown or malformed flag.
 */
export function benchFlags<Name extends string, Switch extends string = never>(
  argv: string[],
  usage: string,
  names: readonly Name[],
  switches: readonly Switch[] = [],
): Partial<Record<Name, string>> & Partial<Record<Switch, true>> {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const name of names) options[name] = { type: 'string' };
  for (const name of switches) options[name] = { type: 'boolean' };
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
  const out: Partial<Record<Name, string>> & Partial<Record<Switch, true>> = {};
  for (const name of names) {
    const value = values[name];
    if (typeof value === 'string') (out as Partial<Record<Name, string>>)[name] = value;
  }
  for (const name of switches) if (values[name] === true) (out as Partial<Record<Switch, true>>)[name] = true;
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
