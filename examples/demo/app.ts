// The demo application: a plain node:http-style handler, served over FastCGI by the engine's createServer.
import { createHash } from 'node:crypto';
import type { FastCGIIncomingMessage, FastCGIServerResponse } from '../../src/index';

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>fastcgi-engine demo</title>
<style>body { font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem }</style>
<h1>fastcgi-engine demo</h1>
<p>This page comes from a Node application served over <b>FastCGI</b> on a unix socket by
<code>createServer</code>; the HTTP server you are talking to is <code>createGateway</code>, a FastCGI client
in front of it (the role nginx plays in production).</p>
<ul>
  <li><a href="/hello?name=FastCGI">/hello?name=FastCGI</a>: a small text response</li>
  <li><a href="/params/extra/path?x=1">/params/extra/path?x=1</a>: the CGI params the gateway sent</li>
  <li><a href="/stream">/stream</a>: a response streamed in ten pieces</li>
  <li><a href="/stderr">/stderr</a>: writes to FastCGI STDERR (see the terminal)</li>
  <li><a href="/slow?ms=6000">/slow?ms=6000</a>: slower than the gateway's 5 s timeout, so 504</li>
</ul>
<form method="post" action="/upload" enctype="application/octet-stream">
  <p>Upload a file (its size and SHA-256 come back): <input type="file" name="f"> <button>Send</button></p>
</form>
`;

/** handle serves the demo's routes. */
export async function handle(req: FastCGIIncomingMessage, res: FastCGIServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://demo');
  switch (url.pathname) {
    case '/':
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.end(PAGE);
      return;
    case '/hello':
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end(`Hello, ${url.searchParams.get('name') ?? 'world'}!\n`);
      return;
    case '/stream':
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      for (let i = 1; i <= 10; i++) {
        res.write(`piece ${i} of 10\n`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      res.end();
      return;
    case '/stderr':
      req.fastcgi.stderr.write('the demo app wrote this to FastCGI STDERR\n');
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('Written to STDERR: the gateway logs it.\n');
      return;
    case '/slow': {
      const ms = Math.min(Number(url.searchParams.get('ms') ?? 1000), 60_000);
      await new Promise((resolve) => setTimeout(resolve, ms));
      res.end(`waited ${ms} ms\n`);
      return;
    }
    case '/upload': {
      const hash = createHash('sha256');
      let length = 0;
      for await (const chunk of req) {
        length += (chunk as Buffer).length;
        hash.update(chunk as Buffer);
      }
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end(
        `received ${length} bytes (CONTENT_LENGTH ${req.cgiParams.CONTENT_LENGTH ?? 'none'}), sha256 ${hash.digest('hex')}\n`,
      );
      return;
    }
    default:
      if (url.pathname.startsWith('/params')) {
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.end(`${JSON.stringify(req.cgiParams, null, 2)}\n`);
        return;
      }
      res.statusCode = 404;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end('Not found\n');
  }
}
