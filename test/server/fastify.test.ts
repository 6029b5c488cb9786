import { describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer, type RequestListener } from '../../src/server/server';
import { TestPeer, parseCgiResponse } from '../helpers/fcgi-peer';

describe('Fastify through serverFactory', () => {
  it('serves routes, JSON bodies and hooks unchanged', async () => {
    const app = Fastify({
      serverFactory: (handler) => createServer(handler as unknown as RequestListener) as unknown as HttpServer,
    });
    app.addHook('onSend', async (_request, reply) => {
      reply.header('X-Hook', 'yes');
    });
    app.get('/items/:id', async (request) => ({ id: (request.params as { id: string }).id, ip: request.ip }));
    app.post('/sum', async (request) => ({ sum: (request.body as number[]).reduce((a, b) => a + b, 0) }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const port = (app.server.address() as AddressInfo).port;
      const get = parseCgiResponse(
        (
          await (
            await TestPeer.connect({ port })
          ).request({
            params: { REQUEST_METHOD: 'GET', REQUEST_URI: '/items/7', REMOTE_ADDR: '198.51.100.1', HTTP_HOST: 'x' },
          })
        ).stdout,
      );
      expect([get.status, get.header('x-hook')]).toEqual([200, 'yes']);
      expect(JSON.parse(get.body.toString())).toEqual({ id: '7', ip: '198.51.100.1' });
      const body = Buffer.from('[1,2,3,4]');
      const post = parseCgiResponse(
        (
          await (
            await TestPeer.connect({ port })
          ).request({
            params: {
              REQUEST_METHOD: 'POST',
              REQUEST_URI: '/sum',
              CONTENT_TYPE: 'application/json',
              CONTENT_LENGTH: String(body.length),
              HTTP_HOST: 'x',
            },
            stdin: body,
          })
        ).stdout,
      );
      expect(JSON.parse(post.body.toString())).toEqual({ sum: 10 });
    } finally {
      await app.close();
    }
  });
});
