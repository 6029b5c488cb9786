// A real Prometheus (Debian package prometheus) scraping `serve --status-path` through a real nginx
// (nginx-light), each started in a temporary directory: the OpenMetrics page is parsed by Prometheus's own
// scraper, and a counter queried back through its HTTP API matches the requests sent.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  NODE,
  Proc,
  ROOT,
  TSX_LOADER,
  findBinary,
  freePorts,
  httpRequest,
  removeDir,
  tempDir,
  waitForListen,
} from './harness';
import { describeServer } from './suite';

const nginxConf = (dir: string, httpPort: number, appPort: number): string => `daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events {
  worker_connections 64;
}
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  proxy_temp_path ${dir}/tmp/proxy;
  scgi_temp_path ${dir}/tmp/scgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  server {
    listen 127.0.0.1:${httpPort};
    # The status page, as for php-fpm's pm.status_path: an exact location before the application's.
    location = /fcgi-status {
      include /etc/nginx/fastcgi_params;
      fastcgi_pass 127.0.0.1:${appPort};
    }
    location / {
      include /etc/nginx/fastcgi_params;
      fastcgi_pass 127.0.0.1:${appPort};
    }
  }
}
`;

const prometheusConf = (httpPort: number): string => `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: fastcgi
    metrics_path: /fcgi-status
    params:
      openmetrics: ['']
    static_configs:
      - targets: ['127.0.0.1:${httpPort}']
`;

interface QueryAnswer {
  status: string;
  data: { result: { metric: Record<string, string>; value: [number, string] }[] };
}

describeServer(
  'Prometheus scraping serve --status-path through nginx',
  [
    { binary: 'prometheus', pkg: 'prometheus' },
    { binary: 'nginx', pkg: 'nginx-light' },
  ],
  () => {
    let dir: string;
    let app: Proc;
    let nginx: Proc;
    let prometheus: Proc;
    let httpPort: number;
    let promPort: number;

    beforeAll(async () => {
      dir = tempDir('prometheus');
      fs.mkdirSync(path.join(dir, 'tmp'));
      const [HTTP_PORT, APP_PORT, PROM_PORT] = await freePorts(3);
      httpPort = HTTP_PORT;
      promPort = PROM_PORT;
      app = new Proc(
        'serve',
        [
          NODE,
          '--import',
          TSX_LOADER,
          path.join(ROOT, 'src/cli/main.ts'),
          'serve',
          path.join(ROOT, 'test/cli/apps/fetch-object.mjs'),
          '--port',
          String(APP_PORT),
          '--status-path',
          '/fcgi-status',
        ],
        { cwd: ROOT },
      );
      await waitForListen(APP_PORT, 20_000, app);
      fs.writeFileSync(path.join(dir, 'nginx.conf'), nginxConf(dir, HTTP_PORT, APP_PORT));
      nginx = new Proc(
        'nginx',
        [findBinary('nginx')!, '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')],
        { cwd: dir },
      );
      await waitForListen(HTTP_PORT, 20_000, nginx);
      fs.writeFileSync(path.join(dir, 'prometheus.yml'), prometheusConf(HTTP_PORT));
      prometheus = new Proc(
        'prometheus',
        [
          findBinary('prometheus')!,
          `--config.file=${path.join(dir, 'prometheus.yml')}`,
          `--storage.tsdb.path=${path.join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${PROM_PORT}`,
        ],
        { cwd: dir },
      );
      await waitForListen(PROM_PORT, 30_000, prometheus);
    });

    afterAll(async () => {
      await prometheus?.stop();
      await nginx?.stop();
      await app?.stop();
      if (dir !== undefined) removeDir(dir);
    });

    async function query(expr: string): Promise<QueryAnswer['data']['result']> {
      const result = await httpRequest({ port: promPort, path: `/api/v1/query?query=${encodeURIComponent(expr)}` });
      const answer = JSON.parse(result.body.toString('utf8')) as QueryAnswer;
      expect(answer.status).toBe('success');
      return answer.data.result;
    }

    async function eventually(expr: string, accept: (value: number) => boolean, what: string): Promise<number> {
      const deadline = Date.now() + 30_000;
      let last = 'no sample yet';
      for (;;) {
        const result = await query(expr);
        if (result.length > 0) {
          const value = Number(result[0]!.value[1]);
          if (accept(value)) return value;
          last = String(value);
        }
        if (Date.now() > deadline)
          throw new Error(`${what}: ${expr} is ${last} after 30 s\nprometheus:\n${prometheus.output().slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }

    it('scrapes the OpenMetrics page through nginx; the counters queried back match the requests sent', async () => {
      for (let i = 0; i < 3; i++) expect((await httpRequest({ port: httpPort, path: '/missing' })).status).toBe(404);
      for (let i = 0; i < 5; i++) expect((await httpRequest({ port: httpPort, path: `/page${i}` })).status).toBe(200);
      // The page as nginx serves it: the content type Prometheus picks its OpenMetrics parser by.
      const page = await httpRequest({ port: httpPort, path: '/fcgi-status?openmetrics' });
      expect(page.headers['content-type']).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');

      await eventually('up{job="fastcgi"}', (v) => v === 1, 'the scrape succeeds');
      expect(
        await eventually(
          'fastcgi_engine_requests_total{job="fastcgi",status_class="4xx"}',
          (v) => v === 3,
          'the 404s are counted',
        ),
      ).toBe(3);
      // Prometheus's own scrapes are requests too: 5 pages, the page read above, and at least one scrape.
      expect(
        await eventually(
          'fastcgi_engine_requests_total{job="fastcgi",status_class="2xx"}',
          (v) => v >= 7,
          'the 200s are counted',
        ),
      ).toBeGreaterThanOrEqual(7);
      const buckets = await query('fastcgi_engine_request_duration_seconds_bucket{job="fastcgi",le="+Inf"}');
      const count = await query('fastcgi_engine_request_duration_seconds_count{job="fastcgi"}');
      expect(buckets[0]!.value[1]).toBe(count[0]!.value[1]);
      const pool = await query('fastcgi_engine_up');
      expect(pool[0]!.metric.pool).toBe('fetch-object');
    });
  },
);
