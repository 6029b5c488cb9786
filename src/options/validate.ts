// Option checks shared by createServer and createClient: an option of one kind (a count, a byte size, a
// duration, a flag, a choice) is accepted or refused by the same rule on both sides. Each returns the value or
// its default (when the option is undefined) and throws InvalidArgumentError naming the option and the value.
import { InvalidArgumentError } from '../errors';

/**
 * The longest duration a timer can hold. Node's setTimeout turns a longer delay into 1 ms (with a
 * TimeoutOverflowWarning), so a timeout set to a month would fire at once.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined)
    return String(value);
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

function integerOption(name: string, value: unknown, fallback: number, min: number, max: number, unit: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
    throw new InvalidArgumentError(`${name} must be an integer ${range}${unit}, got ${describe(value)}`);
  }
  return value;
}

/** countOption: how many of something (connections, requests, params); an integer >= min (default 1). */
export function countOption(name: string, value: unknown, fallback: number, min = 1): number {
  return integerOption(name, value, fallback, min, Number.MAX_SAFE_INTEGER, '');
}

/** byteSizeOption: a size or a rate in bytes; an integer >= min (default 0). */
export function byteSizeOption(name: string, value: unknown, fallback: number, min = 0): number {
  return integerOption(name, value, fallback, min, Number.MAX_SAFE_INTEGER, ' (bytes)');
}

/** durationOption: milliseconds, an integer from min (default 0, which the timeouts read as "never") to MAX_DURATION_MS. */
export function durationOption(name: string, value: unknown, fallback: number, min = 0): number {
  return integerOption(name, value, fallback, min, MAX_DURATION_MS, ' (ms)');
}

/** modeOption: a file mode such as 0o660; an integer from 0 to 0o7777. */
export function modeOption(name: string, value: unknown): number | null {
  if (value === undefined) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0o7777) {
    throw new InvalidArgumentError(`${name} must be a file mode from 0 to 0o7777 (e.g. 0o660), got ${describe(value)}`);
  }
  return value;
}

/** booleanOption: true or false, nothing merely truthy ('false' would otherwise turn a feature on). */
export function booleanOption(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean')
    throw new InvalidArgumentError(`${name} must be true or false, got ${describe(value)}`);
  return value;
}

/** choiceOption: one of `choices` (compared with ===). */
export function choiceOption<T extends string | boolean>(
  name: string,
  value: unknown,
  choices: readonly T[],
  fallback: T,
): T;
export function choiceOption<T extends string | boolean>(
  name: string,
  value: unknown,
  choices: readonly T[],
  fallback: null,
): T | null;
export function choiceOption<T extends string | boolean>(
  name: string,
  value: unknown,
  choices: readonly T[],
  fallback: T | null,
): T | null {
  if (value === undefined) return fallback;
  if (!choices.includes(value as T)) {
    const listed = choices.map((c) => (typeof c === 'string' ? `'${c}'` : String(c)));
    throw new InvalidArgumentError(
      `${name} must be ${listed.slice(0, -1).join(', ')} or ${listed[listed.length - 1]}, got ${describe(value)}`,
    );
  }
  return value as T;
}

/** objectOption: a plain object (not null, not an array), or undefined. */
export function objectOption<T extends object>(name: string, value: unknown): T | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new InvalidArgumentError(`${name} must be an object, got ${describe(value)}`);
  return value as T;
}

/** optionsObject: the options argument itself; undefined is no options. */
export function optionsObject<T extends object>(api: string, value: unknown): T {
  if (value === undefined) return {} as T;
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new InvalidArgumentError(`${api} takes an options object, got ${describe(value)}`);
  return value as T;
}
