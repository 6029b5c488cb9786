import { describe, expect, it } from 'vitest';
import { createServer } from '../../src/server/server';
import { ErrorCode, FastCGIError } from '../../src/errors';
import { parseCgiResponse } from '../helpers/fcgi-peer';
import { start } from './harness';

describe('RequestSocket', () => {
  it('refuses `body` after setBodySink took the body, with a FastCGIError FCGI_ERR_INVALID_STATE', async () => {
    let caught: unknown = null;
    const { peer } = await start(
      createServer((req, res) => {
        req.fastcgi.setBodySink({ push: () => true, destroy: () => undefined });
        try {
          void req.fastcgi.body;
        } catch (error) {
          caught = error;
        }
        res.end('done');
      }),
    );
    const response = parseCgiResponse((await (await peer()).request({ params: { REQUEST_URI: '/' } })).stdout);
    expect(response.body.toString()).toBe('done');
    expect(caught).toBeInstanceOf(FastCGIError);
    expect((caught as FastCGIError).code).toBe(ErrorCode.INVALID_STATE);
  });
});
