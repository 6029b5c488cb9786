// `npm start` runs examples/demo/main.ts: the demo app on a unix socket behind the gateway. Started here on a
// free port, asked for a few pages, then stopped with SIGTERM by its PID.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';

const root = path.join(__dirname, '..', '..');

describe('npm start (examples/demo)', () => {
  it('serves the demo app through the gateway and cleans up on SIGTERM', { timeout: 30_000 }, async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'examples', 'demo', 'main.ts')], {
      cwd: root,
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let output = '';
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /gateway: +HTTP on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output);
        if (match !== null) resolve(match[1]!);
      });
      child.once('exit', () => reject(new Error(`the demo exited early: ${output}`)));
    });
    const socketDir = path.dirname(/application: FastCGI on unix:(\S+)/.exec(output)![1]!);
    expect(output).toContain(`Open ${url} in a browser`);
    const home = await fetch(url);
    expect(home.status).toBe(200);
    expect(await home.text()).toContain('fastcgi-engine demo');
    expect(await (await fetch(`${url}hello?name=test`)).text()).toBe('Hello, test!\n');
    const params = (await (await fetch(`${url}params/a/b?x=1`)).json()) as Record<string, string>;
    expect(params).toMatchObject({ REQUEST_URI: '/params/a/b?x=1', QUERY_STRING: 'x=1', REQUEST_METHOD: 'GET' });
    const upload = await fetch(`${url}upload`, { method: 'POST', body: 'abc' });
    expect(await upload.text()).toMatch(/^received 3 bytes \(CONTENT_LENGTH 3\)/);
    expect(fs.existsSync(socketDir)).toBe(true);
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
    expect(fs.existsSync(socketDir)).toBe(false);
  });
});
