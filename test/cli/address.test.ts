// The command line reads addresses with the one grammar the client uses (src/wire/address.ts): what it
// cannot connect to by construction is a usage error (exit 2), before any connection is tried.
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers';

describe('command-line addresses', () => {
  it.each([
    [['request', '127.0.0.1:0'], 'has an invalid port'],
    [['request', '70000'], 'has an invalid port'],
    [['request', 'tcp://localhost'], 'cannot read address'],
    [['bench', 'localhost:99999', '--requests', '1'], 'has an invalid port'],
  ])('%j: exit 2', async (args, message) => {
    const result = await runCli(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });
});
