// nginx with the usual PHP server block (Debian's snippets/fastcgi-php.conf), in a temp dir, for the PHP
// front-end comparisons (php-front-end.interop.ts, wordpress.interop.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findBinary, Proc, waitForListen } from './harness';

const NGINX = findBinary('nginx');

/** nginx's usual PHP server block; `user root` when the suite runs as root, so workers reach the 0600 socket. */
export function nginxPhpConf(dir: string, port: number, root: string, socket: string): string {
  return `daemon off;
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  client_body_temp_path ${dir}/body;
  fastcgi_temp_path ${dir}/fastcgi;
  proxy_temp_path ${dir}/proxy;
  scgi_temp_path ${dir}/scgi;
  uwsgi_temp_path ${dir}/uwsgi;
  client_max_body_size 64m;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    index index.php index.html;
    absolute_redirect off;
    location ~ /\\.(?!well-known) { deny all; }
    location / { try_files $uri $uri/ /index.php?$args; }
    location ~ [^/]\\.php(/|$) {
      fastcgi_split_path_info ^(.+?\\.php)(/.*)$;
      try_files $fastcgi_script_name =404;
      set $path_info $fastcgi_path_info;
      fastcgi_param PATH_INFO $path_info;
      fastcgi_index index.php;
      include /etc/nginx/fastcgi.conf;
      fastcgi_pass unix:${socket};
    }
  }
}
`;
}

/** nginx with nginxPhpConf in `dir`, listening on `port`. */
export async function startNginx(dir: string, port: number, root: string, socket: string): Promise<Proc> {
  fs.writeFileSync(path.join(dir, 'nginx.conf'), nginxPhpConf(dir, port, root, socket));
  const proc = new Proc('nginx', [
    NGINX!,
    '-p',
    dir,
    '-c',
    path.join(dir, 'nginx.conf'),
    '-e',
    path.join(dir, 'error.log'),
  ]);
  await waitForListen(port, 15_000, proc);
  return proc;
}
