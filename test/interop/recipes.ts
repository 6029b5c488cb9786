// The deployment recipes: one template per web server or process manager. The interop suite renders them with
// temporary directories and free ports and runs them; scripts/gen-deploy-docs.mjs renders the same templates
// with the example values below into docs/deployment.md (test/interop/docs.test.ts fails when the two differ),
// so the documented configs are the tested ones.
//
// Placeholders are {{NAME}}; render() refuses a template with one it has no value for.

export interface RecipeFile {
  /** File name in the recipe's directory (the suite writes it there). */
  name: string;
  /** Fence language in the docs. */
  lang: string;
  template: string;
}

export interface Recipe {
  id: string;
  title: string;
  /** Debian packages the recipe needs. */
  packages: string[];
  files: RecipeFile[];
  /** How the suite starts it (foreground), as a shell command template. */
  command: string;
  /** Other ways the suite starts it. */
  variants?: { label: string; command: string }[];
  /** Values the docs render the templates with. */
  docValues: Record<string, string>;
  /** What a user of this server needs to know (markdown), each checked by the suite. */
  notes: string[];
}

/** Fills {{NAME}} placeholders; throws on one without a value. */
export function render(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_m, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`no value for {{${name}}}`);
    return String(value);
  });
}

/** The placeholders a template uses. */
export function placeholders(template: string): string[] {
  return [...new Set([...template.matchAll(/\{\{([A-Z0-9_]+)\}\}/g)].map((m) => m[1]!))];
}

// Example values for the docs: a state directory per server, the app in /srv/myapp.
const APP_DOC_VALUES = {
  APP_DIR: '/srv/myapp',
  APP_RUN: '/srv/myapp/run.sh',
  APP_SOCKET: '/run/myapp/app.sock',
  APP_PORT: '9000',
  APP_PORT_CGI: '9001',
  APP_PORT_PREFIX: '9002',
  APP_PORT_DENY: '9003',
  APP_PORT_REUSE: '9004',
  HTTP_PORT: '8080',
  HTTP_PORT_BIG: '8081',
};

// ---- nginx --------------------------------------------------------------------------------------------------

const NGINX_CONF = `# Run in the foreground: nginx -p {{DIR}} -c {{DIR}}/nginx.conf -e {{DIR}}/error.log
daemon off;
master_process on;
worker_processes 1;
pid {{DIR}}/nginx.pid;
error_log {{DIR}}/error.log info;

events {
  worker_connections 256;
}

http {
  access_log off;
  # Debian's nginx keeps request bodies and buffered responses under /var/lib/nginx unless told otherwise.
  client_body_temp_path {{DIR}}/tmp/body;
  fastcgi_temp_path {{DIR}}/tmp/fastcgi;
  proxy_temp_path {{DIR}}/tmp/proxy;
  scgi_temp_path {{DIR}}/tmp/scgi;
  uwsgi_temp_path {{DIR}}/tmp/uwsgi;
  # No size limit on request bodies: the application reads them as streams.
  client_max_body_size 0;

  # FastCGI connections are reused only with an upstream keepalive pool AND fastcgi_keep_conn on.
  upstream app_keepalive {
    server 127.0.0.1:{{APP_PORT}};
    keepalive 8;
  }

  server {
    listen 127.0.0.1:{{HTTP_PORT}};

    # The application at the root, over TCP. nginx sends SCRIPT_NAME = the whole path and no PATH_INFO;
    # req.url (REQUEST_URI) is right without a mount option.
    location / {
      include /etc/nginx/fastcgi_params;
      fastcgi_pass 127.0.0.1:{{APP_PORT}};
    }

    # Over a unix socket: nginx's worker user must be able to connect (socketMode: 0o666, or a shared group).
    location /unix/ {
      include /etc/nginx/fastcgi_params;
      fastcgi_pass unix:{{APP_SOCKET}};
    }

    # One FastCGI connection for many requests (FCGI_KEEP_CONN).
    location /keep/ {
      include /etc/nginx/fastcgi_params;
      fastcgi_keep_conn on;
      fastcgi_pass app_keepalive;
    }

    # Streaming both ways: request bodies reach the app as they arrive (a chunked upload then has
    # CONTENT_LENGTH ""), responses reach the client as written, so a slow client slows the app's writes.
    location /stream/ {
      include /etc/nginx/fastcgi_params;
      fastcgi_request_buffering off;
      fastcgi_buffering off;
      fastcgi_pass 127.0.0.1:{{APP_PORT}};
    }

    # nginx is half-duplex: once the app's response header arrives it stops sending the request body. An
    # app that answers (echoes, streams) before it has read a body bigger than the socket buffers then
    # waits for the rest forever, until fastcgi_read_timeout ("upstream timed out ... while reading
    # upstream"; 60s by default, 3s here so the suite sees it). Read the whole body first behind nginx.
    location /halfduplex/ {
      include /etc/nginx/fastcgi_params;
      fastcgi_request_buffering off;
      fastcgi_buffering off;
      fastcgi_read_timeout 3s;
      fastcgi_pass 127.0.0.1:{{APP_PORT}};
    }

    # Mounted at /split with SCRIPT_NAME=/split and PATH_INFO=/rest: the app runs with mount: 'cgi'.
    location /split/ {
      include /etc/nginx/fastcgi_params;
      fastcgi_split_path_info ^(/split)(/.*)$;
      fastcgi_param SCRIPT_NAME $fastcgi_script_name;
      fastcgi_param PATH_INFO $fastcgi_path_info;
      fastcgi_pass 127.0.0.1:{{APP_PORT_CGI}};
    }

    # Mounted at /prefix without split_path_info (SCRIPT_NAME = the whole path): the app runs with
    # mount: '/prefix'.
    location /prefix/ {
      include /etc/nginx/fastcgi_params;
      fastcgi_pass 127.0.0.1:{{APP_PORT_PREFIX}};
    }

    # An app whose FCGI_WEB_SERVER_ADDRS does not list 127.0.0.1 closes nginx's connections: 502.
    location /denied/ {
      include /etc/nginx/fastcgi_params;
      fastcgi_pass 127.0.0.1:{{APP_PORT_DENY}};
    }
  }

  # Request header lines up to 128 KB. nginx puts all params in one record, so more than 64 KiB of them
  # fails in nginx itself: 500 and "fastcgi request record is too big" in the error log.
  server {
    listen 127.0.0.1:{{HTTP_PORT_BIG}};
    large_client_header_buffers 4 128k;
    location / {
      include /etc/nginx/fastcgi_params;
      fastcgi_pass 127.0.0.1:{{APP_PORT}};
    }
  }
}
`;

export const nginx: Recipe = {
  id: 'nginx',
  title: 'nginx',
  packages: ['nginx-light'],
  files: [{ name: 'nginx.conf', lang: 'nginx', template: NGINX_CONF }],
  command: 'nginx -p {{DIR}} -c {{DIR}}/nginx.conf -e {{DIR}}/error.log',
  docValues: { ...APP_DOC_VALUES, DIR: '/var/lib/myapp/nginx' },
  notes: [
    'One FastCGI connection per request. Connections are reused (FCGI_KEEP_CONN, request id 1 every time) only with an `upstream { keepalive N; }` pool **and** `fastcgi_keep_conn on`: the suite sends 100 requests through `/keep/` over one connection.',
    "Debian's `fastcgi_params` sends SCRIPT_NAME = the whole path and no PATH_INFO, HTTP_HOST = `$host` (the port is dropped), and `CONTENT_TYPE` / `CONTENT_LENGTH` as `\"\"` on a GET (the engine treats both as absent). With `fastcgi_split_path_info` SCRIPT_NAME and PATH_INFO are right: `mount: 'cgi'`.",
    'Buffering is on by default both ways: request bodies are read completely (to temp files) before the app sees them, so chunked uploads get their real CONTENT_LENGTH; responses are absorbed into temp files (up to 1 GB) whatever the client\'s speed, so the app never feels a slow client. `fastcgi_request_buffering off` and `fastcgi_buffering off` stream both ways: a chunked upload then has `CONTENT_LENGTH ""` (the app reads to the end of the body), and a stalled client stalls `res.write()` (the suite stalls a 100 MB download: the app stops after a few MB, its memory flat).',
    "**nginx is half-duplex**: once the app's response header arrives, nginx stops sending the request body. An app that starts its response and then reads on (an echo, a streaming transform) waits forever for the rest of a body bigger than the socket buffers; nginx gives up after `fastcgi_read_timeout` with `upstream timed out (110: Connection timed out) while reading upstream`, and the app sees the request aborted. Read the whole body before writing behind nginx.",
    'All params go in one record: more than 64 KiB of them fails in nginx with 500 and `fastcgi request record is too big` (first `large_client_header_buffers`, 8 KB per line by default, answers 400).',
    'The response header block must fit `fastcgi_buffer_size` (4 KB, one page): more gives 502 and `upstream sent too big header`. Raise it (`fastcgi_buffer_size 16k;`) for big cookies or CSP headers.',
    'Duplicate request headers arrive as duplicate params (the engine joins them with `, `, cookies with `; `); duplicate response headers stay separate lines. The reason phrase the app sends (`res.statusMessage`) reaches the client.',
    "A client that goes away makes nginx close the FastCGI connection at once, buffered or not: the handler sees the abort (`req.fastcgi.signal`, `res` 'close').",
    "Started as root, the workers run as `nobody` (Debian's nginx.conf says `user www-data`): a unix socket must be reachable by that user (`socketMode: 0o666`, or a shared group and `0o660`).",
  ],
};

// ---- lighttpd ----------------------------------------------------------------------------------------------

const LIGHTTPD_CONF = `# Run in the foreground: lighttpd -D -f {{DIR}}/lighttpd.conf
server.modules = ( "mod_fastcgi" )
server.bind = "127.0.0.1"
server.port = {{HTTP_PORT}}
server.document-root = "{{DIR}}/www"
server.errorlog = "{{DIR}}/error.log"
server.pid-file = "{{DIR}}/lighttpd.pid"
server.upload-dirs = ( "{{DIR}}/tmp" )
# All request headers together may take 64 KB (default 8 KB).
server.max-request-field-size = 65535

# A prefix key ("/app") takes SCRIPT_NAME from the prefix and PATH_INFO from the rest, for every path that
# starts with those characters (so "/app" also takes /application/x). "check-local" => "disable": the
# paths are not files.
fastcgi.server = (
  # An authorizer: each request under /private/ goes to the app first (role AUTHORIZER, no body). 200 lets
  # it through, to the responders below, with each Variable-NAME header of the answer as a variable NAME in
  # their params; any other status goes to the client as the app sent it.
  "/private/" => ((
    "host" => "127.0.0.1", "port" => {{APP_PORT}},
    "mode" => "authorizer",
    "check-local" => "disable"
  )),
  # /app/x/y gives SCRIPT_NAME=/app and PATH_INFO=/x/y: run the app with mount: 'cgi' (or '/app').
  "/app" => ((
    "host" => "127.0.0.1", "port" => {{APP_PORT_CGI}},
    "check-local" => "disable"
  )),
  # A trailing slash moves the next segment into SCRIPT_NAME: /slash/a/b gives SCRIPT_NAME=/slash/a and
  # PATH_INFO=/b. Run the app with mount: '/slash'.
  "/slash/" => ((
    "host" => "127.0.0.1", "port" => {{APP_PORT_PREFIX}},
    "check-local" => "disable"
  )),
  # An app listening on a unix socket.
  "/unix/" => ((
    "socket" => "{{APP_SOCKET}}",
    "check-local" => "disable"
  )),
  # lighttpd starts the app itself: bin-path is run with a listening unix socket {{DIR}}/spawn.sock-0 on
  # fd 0 (the app calls server.listen() with no address) and the cwd set to the directory of bin-path.
  "/spawn/" => ((
    "socket" => "{{DIR}}/spawn.sock",
    "bin-path" => "{{APP_RUN}}",
    "max-procs" => 1,
    "check-local" => "disable"
  )),
  # The same over TCP (fd 0 listens on 127.0.0.1:{{SPAWN_PORT}}), with FCGI_WEB_SERVER_ADDRS for the app.
  "/spawntcp/" => ((
    "host" => "127.0.0.1", "port" => {{SPAWN_PORT}},
    "bin-path" => "{{APP_RUN}}",
    "bin-environment" => ( "FCGI_WEB_SERVER_ADDRS" => "127.0.0.1" ),
    "max-procs" => 1,
    "check-local" => "disable"
  )),
  # The same app, but its FCGI_WEB_SERVER_ADDRS does not list 127.0.0.1: it refuses lighttpd.
  "/spawndeny/" => ((
    "host" => "127.0.0.1", "port" => {{SPAWN_PORT_DENY}},
    "bin-path" => "{{APP_RUN}}",
    "bin-environment" => ( "FCGI_WEB_SERVER_ADDRS" => "10.9.8.7" ),
    "max-procs" => 1,
    "check-local" => "disable"
  )),
  # The root: lighttpd still splits the first segment off, /foo/bar gives SCRIPT_NAME=/foo and
  # PATH_INFO=/bar. Run the app with mount: '/' (or use "fix-root-scriptname" as under /fixroot/ below).
  "/" => ((
    "host" => "127.0.0.1", "port" => {{APP_PORT}},
    "check-local" => "disable"
  ))
)

# "fix-root-scriptname" => "enable": SCRIPT_NAME="" and PATH_INFO = the whole path; mount: 'cgi' works.
$HTTP["url"] =~ "^/fixroot/" {
  fastcgi.server = (
    "/" => ((
      "host" => "127.0.0.1", "port" => {{APP_PORT_CGI}},
      "check-local" => "disable",
      "fix-root-scriptname" => "enable"
    ))
  )
}

# By default lighttpd reads the whole request body before the app sees it and the whole response before
# the client does. 2 streams both with minimal buffering, so a slow client slows the app's writes. A chunked
# upload is then refused with 411 (a CGI request needs CONTENT_LENGTH).
$HTTP["url"] =~ "^/stream/" {
  server.stream-request-body = 2
  server.stream-response-body = 2
}
`;

export const lighttpd: Recipe = {
  id: 'lighttpd',
  title: 'lighttpd',
  packages: ['lighttpd'],
  files: [{ name: 'lighttpd.conf', lang: 'lighttpd', template: LIGHTTPD_CONF }],
  command: 'lighttpd -D -f {{DIR}}/lighttpd.conf',
  docValues: { ...APP_DOC_VALUES, DIR: '/var/lib/myapp/lighttpd', SPAWN_PORT: '9010', SPAWN_PORT_DENY: '9011' },
  notes: [
    'Never FCGI_KEEP_CONN: one connection per request.',
    'SCRIPT_NAME / PATH_INFO depend on the prefix: `"/app"` gives `/app` + `/x/y` (`mount: \'cgi\'` works) and also takes `/application/x` (prefixes match as strings); `"/app/"` moves the next segment into SCRIPT_NAME (`/app/a` + `/b`: use `mount: \'/app\'`); the root `"/"` splits the first segment off (`/foo` + `/bar`: use `mount: \'/\'`, or `"fix-root-scriptname" => "enable"` and `mount: \'cgi\'`).',
    "By default lighttpd reads the whole request body first (chunked uploads get their real CONTENT_LENGTH) and collects the whole response before sending it with a Content-Length. Meanwhile it does not watch the client: **a client that leaves is not passed on**, the handler runs to its end. `server.stream-request-body = 2` and `server.stream-response-body = 2` stream both ways with backpressure, and a departed client is then seen on the app's next write; a chunked upload is then refused with 411 unless it arrived whole with the headers. A silent long-poll is never aborted.",
    "The reason phrase is lighttpd's own (`404 Not Found` whatever the app says).",
    'Duplicate request headers are merged with `, ` (cookies with `; `); a control byte in a header value gets 400.',
    'All request headers together are limited by `server.max-request-field-size` (8 KB by default, 64 KB in this config; more gives 431), so params never pass 64 KiB. The response header block must stay under 64 KB: more gives 502 and `response headers too large`.',
    'STDERR lands in `server.errorlog` as `(mod_fastcgi.c.449) FastCGI-stderr:…`.',
    '`bin-path` runs the app at startup with a listening socket on fd 0: a unix socket gets a `-0` suffix (`spawn.sock-0`), TCP listens on `port`; the cwd is the directory of `bin-path`; `bin-environment` adds variables. A dead app is started again on the next request. FCGI_WEB_SERVER_ADDRS only makes sense over TCP: a unix peer is never in the list.',
    '`"mode" => "authorizer"` entries run first (role AUTHORIZER, no body, no SCRIPT_NAME, PATH_INFO or CONTENT_LENGTH); a 200 passes the request on to the responders with each `Variable-NAME: value` header as a param `NAME` (use `res.setVariable(name, value)` and `res.allow()`); any other answer goes to the client with its body.',
  ],
};

// ---- h2o -----------------------------------------------------------------------------------------------------

const H2O_CONF = `# Run in the foreground: h2o -c {{DIR}}/h2o.conf
# Started as root, h2o switches to this user (nobody when omitted). Files it opens after that (a pid-file in
# a root-owned directory) fail with "Permission denied"; the error log is opened before.
user: nobody
error-log: {{DIR}}/error.log
listen:
  host: 127.0.0.1
  port: {{HTTP_PORT}}
# h2o sends SCRIPT_NAME "" and PATH_INFO = the whole path under every path below: an app mounted under a
# prefix runs with mount: '/prefix' (REQUEST_URI is the whole path).
hosts:
  default:
    paths:
      # The application at the root, over TCP. fastcgi.timeout.io (30 s by default) bounds each read and
      # write on the FastCGI connection.
      "/":
        fastcgi.connect:
          host: 127.0.0.1
          port: {{APP_PORT}}
          type: tcp
        fastcgi.timeout.io: 30000
      # Over a unix socket ("port" is the socket's path): h2o runs as nobody, so the socket must be
      # reachable by it (socketMode: 0o666, or a shared group).
      "/unix":
        fastcgi.connect:
          port: {{APP_SOCKET}}
          type: unix
      # fastcgi.timeout.keepalive > 0 (milliseconds) keeps idle FastCGI connections that long, with
      # FCGI_KEEP_CONN; 0, the default, closes each one after its request.
      "/keep":
        fastcgi.connect:
          host: 127.0.0.1
          port: {{APP_PORT}}
          type: tcp
        fastcgi.timeout.keepalive: 10000
      # An app mounted under /prefix: mount: '/prefix'.
      "/prefix":
        fastcgi.connect:
          host: 127.0.0.1
          port: {{APP_PORT_PREFIX}}
          type: tcp
      # An app whose FCGI_WEB_SERVER_ADDRS does not list 127.0.0.1 closes h2o's connections: 502.
      "/denied":
        fastcgi.connect:
          host: 127.0.0.1
          port: {{APP_PORT_DENY}}
          type: tcp
`;

export const h2o: Recipe = {
  id: 'h2o',
  title: 'h2o',
  packages: ['h2o'],
  files: [{ name: 'h2o.conf', lang: 'yaml', template: H2O_CONF }],
  command: 'h2o -c {{DIR}}/h2o.conf',
  docValues: { ...APP_DOC_VALUES, DIR: '/var/lib/myapp/h2o' },
  notes: [
    'One FastCGI connection per request unless `fastcgi.timeout.keepalive` is above 0 (milliseconds): then h2o sends FCGI_KEEP_CONN and reuses idle connections (the suite sends 100 requests through `/keep` over one connection, request id 1 every time). `fastcgi.timeout.io` (30 s) bounds each read and write.',
    'SCRIPT_NAME is always `""` and PATH_INFO the whole decoded path, whatever `paths:` entry matched; REQUEST_URI is the whole path. At the root no `mount` is needed; under a prefix use `mount: \'/prefix\'`. No GATEWAY_INTERFACE, and no CONTENT_LENGTH or CONTENT_TYPE on a GET.',
    "h2o reads the whole request body before the app sees it (a chunked upload gets its real CONTENT_LENGTH; an echo of 16 MB works) and absorbs the whole response whatever the client's speed (the suite's app finishes a 32 MB download while the client reads nothing; h2o spills large buffers to files under `temp-buffer-path`, /tmp by default): the app never feels a slow client.",
    'A client that leaves mid-response is passed on at once (the handler sees the abort); before the response header arrives h2o does not watch the client: a silent long-poll runs to its end.',
    'The reason phrase the app sends reaches the client. Duplicate request headers arrive as duplicate params (the engine joins them with `, `), but h2o merges Cookie lines itself with `;` and no space (`c1=1;c2=2`); duplicate response headers stay separate lines. A control byte in a header value gets 400.',
    'At most 100 request header lines: more gives 400. A single header of 70 KB passes intact (params over 64 KiB are spread over records).',
    'STDERR lands in `error-log`, one line per record: `[lib/handler/fastcgi.c] in request:/path-cut-to-32-chars...:text`.',
    "An app that refuses the connection (FCGI_WEB_SERVER_ADDRS) gives 503, with nothing in h2o's error log.",
    'Started as root, h2o runs as `user` (`nobody` when omitted): a unix socket must be reachable by that user (`socketMode: 0o666`, or a shared group), and files it opens later (a `pid-file`) must be writable by it.',
  ],
};

// ---- Caddy ---------------------------------------------------------------------------------------------------

const CADDYFILE = `# Run in the foreground: caddy run --config {{DIR}}/Caddyfile --adapter caddyfile
# with HOME, XDG_DATA_HOME and XDG_CONFIG_HOME set to a directory of its own (Caddy keeps its storage and
# an autosave of the config there).
{
	# No admin endpoint (it listens on localhost:2019 by default) and no certificates: plain HTTP.
	admin off
	auto_https off
	# Caddy's own log (errors from the proxy included), JSON lines.
	log {
		output file {{DIR}}/error.log
		level INFO
	}
}

http://127.0.0.1:{{HTTP_PORT}} {
	# Without "split", Caddy sends SCRIPT_NAME "" and PATH_INFO = the path; REQUEST_URI is the path the
	# client asked for. The app over a unix socket (unix/ + the absolute path).
	handle /unix/* {
		reverse_proxy unix/{{APP_SOCKET}} {
			transport fastcgi
		}
	}

	# handle_path strips /prefix from PATH_INFO but REQUEST_URI keeps it: run the app with mount: '/prefix'.
	handle_path /prefix/* {
		reverse_proxy 127.0.0.1:{{APP_PORT_PREFIX}} {
			transport fastcgi
		}
	}

	# "split /split" makes SCRIPT_NAME /split and PATH_INFO the rest: run the app with mount: 'cgi'.
	handle /split/* {
		reverse_proxy 127.0.0.1:{{APP_PORT_CGI}} {
			transport fastcgi {
				split /split
			}
		}
	}

	# Caddy writes the whole request body before it reads the response. An app that answers (echoes,
	# streams) before it has read a body bigger than the socket buffers waits for Caddy, which waits for it,
	# until write_timeout (none by default: forever; 3s here so the suite sees it), then 502. Read the whole
	# body first behind Caddy.
	handle /halfduplex/* {
		reverse_proxy 127.0.0.1:{{APP_PORT}} {
			transport fastcgi {
				write_timeout 3s
			}
		}
	}

	# An app whose FCGI_WEB_SERVER_ADDRS does not list 127.0.0.1 closes Caddy's connections: 502.
	handle /denied/* {
		reverse_proxy 127.0.0.1:{{APP_PORT_DENY}} {
			transport fastcgi
		}
	}

	# The application at the root, over TCP. read_timeout and write_timeout bound each read and write on the
	# FastCGI connection (none by default). capture_stderr is meant to log the app's STDERR, but Caddy
	# 2.6.2 never passes the option on: nothing is logged (fixed in later releases).
	handle {
		reverse_proxy 127.0.0.1:{{APP_PORT}} {
			transport fastcgi {
				dial_timeout 3s
				read_timeout 60s
				write_timeout 60s
				capture_stderr
			}
		}
	}
}
`;

export const caddy: Recipe = {
  id: 'caddy',
  title: 'Caddy',
  packages: ['caddy'],
  files: [{ name: 'Caddyfile', lang: 'caddyfile', template: CADDYFILE }],
  command: 'caddy run --config {{DIR}}/Caddyfile --adapter caddyfile',
  docValues: { ...APP_DOC_VALUES, DIR: '/var/lib/myapp/caddy' },
  notes: [
    'Run it in the foreground with `caddy run`, an `http://` site address, `auto_https off` (no certificates) and `admin off` (or the admin endpoint on a port of your choice; 2019 by default); HOME, XDG_DATA_HOME and XDG_CONFIG_HOME say where Caddy keeps its storage and an autosave of the config.',
    'Caddy 2.6 never keeps a FastCGI connection: a new one per request, no FCGI_KEEP_CONN.',
    "Without `split`, SCRIPT_NAME is `\"\"` and PATH_INFO the decoded path; REQUEST_URI is always the path the client asked for. `split /app` gives SCRIPT_NAME `/app` and PATH_INFO the rest (`mount: 'cgi'`); `handle_path /prefix/*` strips the prefix from PATH_INFO only (`mount: '/prefix'`). DOCUMENT_ROOT and SCRIPT_FILENAME come from `root` (by default Caddy's working directory). Caddy adds X-Forwarded-For, -Proto and -Host.",
    'A GET has `CONTENT_LENGTH "0"` (the app sees `content-length: 0`); a chunked upload is streamed with `CONTENT_LENGTH "-1"` (the engine reads to the end of the body).',
    '**Caddy writes the whole request body before it reads the response.** An app that answers (echoes, streams) before it has read a body bigger than the socket buffers waits for Caddy, which waits for it, until `write_timeout` (none by default: forever), then 504 and `write tcp …: i/o timeout` in the log; the app sees the request aborted. Read the body first behind Caddy. Responses are streamed with backpressure: a stalled client stalls `res.write()`, memory stays flat.',
    'A client that leaves mid-response is passed on at once; before the response header arrives Caddy does not watch the client: a silent long-poll runs to its end.',
    "The reason phrase is Go's own (`404 Not Found` whatever the app says), and the CGI `Status` header reaches the client as a header (`Status: 404 Nope Not Here`).",
    'Duplicate request headers are merged with `, `, **cookies too** (`c1=1, c2=2`, which cookie parsers read as one cookie `c1` = `1, c2=2`); duplicate response headers stay separate lines. A control byte in a header value gets 400.',
    "A single param is cut to 65500 bytes minus 8 and its name's length, silently (a 70 KB header arrives as its first 65482 bytes); 200 headers of 100 bytes pass.",
    '**STDERR is dropped**: `capture_stderr` is accepted but Caddy 2.6.2 never passes it to its FastCGI client, so nothing is logged (later releases log it at WARN, ERROR for a status of 400 and up). Log from the app itself.',
    'An app that refuses the connection (FCGI_WEB_SERVER_ADDRS) gives 502 and `"msg":"EOF"` in Caddy\'s log (or `write: broken pipe` when the close came while Caddy was still writing).',
  ],
};

// ---- HAProxy -------------------------------------------------------------------------------------------------

const HAPROXY_CFG = `# Run in the foreground: haproxy -db -f {{DIR}}/haproxy.cfg
global
  maxconn 4096
  # The fcgi-app's STDERR lines and HAProxy's own messages go to stderr.
  log stderr format raw local0 info

defaults
  mode http
  log global
  timeout connect 5s
  timeout client 60s
  timeout server 60s

# The FastCGI side: HAProxy speaks FastCGI itself (no separate module). docroot is required; it becomes
# DOCUMENT_ROOT and the prefix of SCRIPT_FILENAME.
fcgi-app engine
  docroot {{DIR}}/www
  log-stderr global
  # Ask the app (GET_VALUES) whether it multiplexes and how many requests it takes; with mpxs-conns,
  # HAProxy puts up to FCGI_MAX_REQS streams on one connection.
  option get-values
  option mpxs-conns
  option keep-conn

frontend web
  bind 127.0.0.1:{{HTTP_PORT}}
  default_backend app

backend app
  use-fcgi-app engine
  # Share idle and multiplexed backend connections between client connections.
  http-reuse always
  server app1 127.0.0.1:{{APP_PORT}} proto fcgi

# The same app with multiplex: false (it answers FCGI_MPXS_CONNS 0): kept connections, one request at a time.
frontend web_single
  bind 127.0.0.1:{{HTTP_PORT_SINGLE}}
  default_backend app_single

backend app_single
  use-fcgi-app engine
  http-reuse always
  server app2 127.0.0.1:{{APP_PORT_SINGLE}} proto fcgi
`;

export const haproxy: Recipe = {
  id: 'haproxy',
  title: 'HAProxy',
  packages: ['haproxy'],
  files: [{ name: 'haproxy.cfg', lang: 'haproxy', template: HAPROXY_CFG }],
  command: 'haproxy -db -f {{DIR}}/haproxy.cfg',
  docValues: { ...APP_DOC_VALUES, DIR: '/var/lib/myapp/haproxy', HTTP_PORT_SINGLE: '8082', APP_PORT_SINGLE: '9005' },
  notes: [
    'HAProxy is the only common front end that multiplexes: with `option get-values` and `http-reuse always` it asks the app for FCGI_MPXS_CONNS and FCGI_MAX_REQS and puts up to that many requests at once on one connection. The engine answers FCGI_MAX_REQS with `maxRequestsPerConnection` (128 by default), the number it takes on one connection, so no stream is refused.',
    '**HAProxy 2.6 loses streams when it multiplexes under load**: when it adds a stream to a connection whose output buffer is partly full (uploads, bursts), it sends BEGIN_REQUEST and at once ABORT_REQUEST, without the params, and answers the client 500 (termination state `IH` in its log). The suite sees this in a burst of 400 requests with 5 MB uploads (a few dozen streams; none reach the app). With `multiplex: false` in the app (FCGI_MPXS_CONNS 0) HAProxy keeps connections and sends one request at a time on each, and the same burst is answered in full: use that behind HAProxy 2.6 until a release with a fixed FastCGI multiplexer.',
    'Without `option keep-conn` every request gets its own connection; without `option mpxs-conns` a kept connection carries one request at a time.',
    "SCRIPT_NAME is the whole path and PATH_INFO is empty unless `path-info` is set in the fcgi-app (a regex with two groups, as nginx's `fastcgi_split_path_info`); DOCUMENT_ROOT and SCRIPT_FILENAME come from `docroot`.",
  ],
};

// ---- Apache --------------------------------------------------------------------------------------------------

// What both Apache recipes start with: a self-contained server root (no /etc/apache2, no envvars).
const APACHE_HEAD = `# Run in the foreground: apache2 -f {{DIR}}/httpd.conf -DFOREGROUND
# (Apache allows comments only on lines of their own, never after a directive.)
ServerRoot "{{DIR}}"
ServerName localhost
Listen 127.0.0.1:{{HTTP_PORT}}
PidFile {{DIR}}/httpd.pid
DefaultRuntimeDir {{DIR}}
ErrorLog {{DIR}}/error.log
LogLevel warn
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule setenvif_module /usr/lib/apache2/modules/mod_setenvif.so
`;

const APACHE_COMMON = `# Without TypesConfig, startup fails with AH01597 (it looks for ServerRoot/mime.types).
TypesConfig /etc/mime.types
# User and Group apply when started as root.
User www-data
Group www-data
DocumentRoot "{{DIR}}/htdocs"
<Directory "/">
  Require all granted
</Directory>
# Request header lines up to 128 KB (default 8190 bytes) and 300 of them (default 100).
LimitRequestFieldSize 131072
LimitRequestFields 300
`;

const APACHE_PROXY_CONF = `${APACHE_HEAD}LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_fcgi_module /usr/lib/apache2/modules/mod_proxy_fcgi.so
${APACHE_COMMON}
# mod_proxy_fcgi sends SCRIPT_NAME = the whole path and no PATH_INFO: run the app with mount: '/tcp'.
# One connection per request (no FCGI_KEEP_CONN) unless enablereuse=on.
ProxyPass "/tcp/" "fcgi://127.0.0.1:{{APP_PORT}}/"

# Connection reuse: FCGI_KEEP_CONN=1, a pool per Apache child process. Its own backend address: two
# ProxyPass lines to the same URL share one worker with the first one's parameters (AH01146).
ProxyPass "/reuse/" "fcgi://127.0.0.1:{{APP_PORT_REUSE}}/" enablereuse=on

# An app on a unix socket (it must be reachable by User).
ProxyPass "/unix/" "unix:{{APP_SOCKET}}|fcgi://localhost/"

# SCRIPT_NAME=/pi and PATH_INFO=/rest: run the app with mount: 'cgi' (or '/pi'). Only SetEnvIf sets
# proxy-fcgi-pathinfo early enough; SetEnv runs too late and does nothing.
<Location "/pi/">
  SetEnvIf Request_URI . proxy-fcgi-pathinfo=unescape
  ProxyPass "fcgi://127.0.0.1:{{APP_PORT_CGI}}/"
</Location>

# An app whose FCGI_WEB_SERVER_ADDRS does not list 127.0.0.1 refuses Apache: 503.
ProxyPass "/denied/" "fcgi://127.0.0.1:{{APP_PORT_DENY}}/"
`;

export const apacheProxyFcgi: Recipe = {
  id: 'apache-proxy-fcgi',
  title: 'Apache mod_proxy_fcgi',
  packages: ['apache2'],
  files: [{ name: 'httpd.conf', lang: 'apache', template: APACHE_PROXY_CONF }],
  command: 'apache2 -f {{DIR}}/httpd.conf -DFOREGROUND',
  docValues: { ...APP_DOC_VALUES, DIR: '/var/lib/myapp/apache2' },
  notes: [
    "One connection per request (no FCGI_KEEP_CONN) unless the worker has `enablereuse=on`; each Apache child process keeps its own pool. Two `ProxyPass` lines to the same backend URL share one worker, and only the first one's parameters count (AH01146 `Ignoring parameter 'enablereuse=on' … because of worker sharing`): give the reused backend its own address.",
    "SCRIPT_NAME is the whole path and there is no PATH_INFO: run the app with `mount: '/prefix'`. Or set `proxy-fcgi-pathinfo` with SetEnvIf (SetEnv runs too late) for SCRIPT_NAME + PATH_INFO and `mount: 'cgi'`. SCRIPT_FILENAME is `proxy:fcgi://host:port/path`.",
    "Apache streams both ways, full duplex: a slow client slows the app's writes, an echo of 16 MB works.",
    "A chunked upload has CONTENT_LENGTH when the body fits Apache's 16 KB prefetch; otherwise there is no CONTENT_LENGTH and `HTTP_TRANSFER_ENCODING: chunked` (the engine reads to the end of the body either way).",
    'Params go in records of at most 16 KB: more than 64 KiB of params in all is fine (the suite sends 75 KB), but a single variable over 16 KB is dropped with AH02536. Raise `LimitRequestFieldSize` (8190) and `LimitRequestFields` (100) for big or many headers.',
    'A response header line over 8 KB gives 500 (AH01070, `Premature end of script headers`). Duplicate response headers are merged with `, ` except Set-Cookie; duplicate request headers are merged too, **cookies with `, `**. The reason phrase the app sends reaches the client.',
    'Apache reads the app and writes the client in turn: a client that leaves is noticed only when a write to it fails (a big response: at once; a silent long-poll runs to its end).',
    "STDERR lands in the error log as `AH01071: Got error '…'`. A refused or crashed app gives 503 with `AH01067: Failed to read FastCGI header` and `AH01075: Error dispatching request`.",
    'With `enablereuse=on` Apache keeps idle connections without reading them: on SIGTERM the engine ends them and does not wait for Apache to answer.',
  ],
};

const APACHE_FCGID_CONF = `${APACHE_HEAD}LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
LoadModule fcgid_module /usr/lib/apache2/modules/mod_fcgid.so
${APACHE_COMMON}
# mod_fcgid's sockets and process table: started as root, these must be writable by User.
FcgidIPCDir {{DIR}}/fcgidsock
FcgidProcessTableFile {{DIR}}/fcgid_shm
# Request bodies are read completely (spooled to disk past 64 KB) before the app gets them, and the
# default limit of 128 KB answers bigger ones with 500: raise it.
FcgidMaxRequestLen 1073741824
# One request per process at a time: concurrency is more processes, each a Node process.
FcgidMaxProcessesPerClass 4
# The app gets no environment but PATH and these.
FcgidInitialEnv NODE_ENV production

# The app is spawned on demand with a listening unix socket on fd 0 (it calls server.listen() with no
# address), as User, with the cwd set to {{APP_DIR}}. SCRIPT_NAME is the script (/fcgid/run.sh) and
# PATH_INFO the rest: run the app with mount: 'cgi'.
Alias /fcgid/ {{APP_DIR}}/
<Directory "{{APP_DIR}}">
  Options +ExecCGI
  <Files "run.sh">
    SetHandler fcgid-script
  </Files>
  <Files "deny.sh">
    SetHandler fcgid-script
  </Files>
</Directory>
# Variables for one wrapper only: FCGI_WEB_SERVER_ADDRS makes the app refuse every unix peer, mod_fcgid
# included (500).
FcgidCmdOptions {{APP_DIR}}/deny.sh InitialEnv FCGI_WEB_SERVER_ADDRS=127.0.0.1

# The app checks the password and the access too (role AUTHORIZER; FCGI_APACHE_ROLE says which).
# Variable-NAME headers of its 200 answers become variable NAME for the request.
<Location "/fcgid/run.sh/private">
  AuthType Basic
  AuthName "private"
  FcgidAuthenticator {{APP_RUN}}
  FcgidAuthorizer {{APP_RUN}}
  Require valid-user
</Location>
`;

export const apacheFcgid: Recipe = {
  id: 'apache-fcgid',
  title: 'Apache mod_fcgid',
  packages: ['apache2', 'libapache2-mod-fcgid'],
  files: [{ name: 'httpd.conf', lang: 'apache', template: APACHE_FCGID_CONF }],
  command: 'apache2 -f {{DIR}}/httpd.conf -DFOREGROUND',
  docValues: { ...APP_DOC_VALUES, DIR: '/var/lib/myapp/apache2' },
  notes: [
    "mod_fcgid starts the app on demand with a listening unix socket on fd 0, as `User`, with the script's directory as cwd and no environment but PATH and `FcgidInitialEnv` / `FcgidCmdOptions … InitialEnv`. Each process takes one request at a time; more at once start more processes, up to `FcgidMaxProcessesPerClass`. Never FCGI_KEEP_CONN.",
    "SCRIPT_NAME is the script (`/fcgid/run.sh`) and PATH_INFO the rest: `mount: 'cgi'` gives the app `/x/y` for `/fcgid/run.sh/x/y` and `/` for the script itself.",
    'The request body is read completely (spooled to disk past 64 KB) before the app gets it, with its real CONTENT_LENGTH; `FcgidMaxRequestLen` (128 KB by default) answers bigger bodies with 500.',
    'mod_fcgid writes the whole body before it reads the response: an app that writes more than the socket buffers hold before it has read its body waits for mod_fcgid, which waits for it, until `FcgidIOTimeout` (40 s) and a 500. Read the body first.',
    "All params in one record: more than 64 KiB gives 500 (`can't init env request header`). A response header line over 8 KB gives 500.",
    "A client that leaves is noticed once the app's output passes mod_fcgid's 64 KB buffer; a silent long-poll runs to its end.",
    'STDERR lands in the error log as `mod_fcgid: stderr: …`.',
    'Do not set FCGI_WEB_SERVER_ADDRS: mod_fcgid connects over a unix socket, which the spec never allows (500, `End of script output before headers`).',
    '`FcgidAuthenticator` and `FcgidAuthorizer` call the app with role AUTHORIZER and `FCGI_APACHE_ROLE` = AUTHENTICATOR (with REMOTE_USER and REMOTE_PASSWD) or AUTHORIZER. A refusal from the authorizer reaches the client as 401. `Variable-` headers of both phases are merged: the same variable from both arrives as `alice, alice`.',
    "If an app process exits on its own (someone else's SIGTERM), mod_fcgid may send it one more request: 500 `End of script output before headers`; the next one starts a new process.",
  ],
};

// ---- process managers ----------------------------------------------------------------------------------------

export const spawnFcgi: Recipe = {
  id: 'spawn-fcgi',
  title: 'spawn-fcgi',
  packages: ['spawn-fcgi'],
  files: [],
  // -n: exec the app in place (no fork), so the process manager above (systemd, runit, daemontools) sees it.
  command: 'spawn-fcgi -n -a 127.0.0.1 -p {{APP_PORT}} -- {{APP_RUN}}',
  variants: [{ label: 'unix socket', command: 'spawn-fcgi -n -s {{APP_SOCKET}} -M 0660 -- {{APP_RUN}}' }],
  docValues: { ...APP_DOC_VALUES },
  notes: [
    "`-n` execs the app in place (the process keeps spawn-fcgi's PID), for a supervisor above it; without `-n` it forks and exits. `-F N` starts N processes on one socket.",
    "The app inherits spawn-fcgi's environment (FCGI_WEB_SERVER_ADDRS included); `-M` sets a unix socket's mode, `-u` / `-g` drop privileges when started as root.",
  ],
};

const SUPERVISOR_CONF = `; Run in the foreground: supervisord -n -c {{DIR}}/supervisord.conf
[supervisord]
nodaemon=true
logfile={{DIR}}/supervisord.log
pidfile={{DIR}}/supervisord.pid
childlogdir={{DIR}}

; supervisord creates the socket and hands it to every process as fd 0: numprocs processes
; accept() on one socket.
[fcgi-program:app]
socket=tcp://127.0.0.1:{{APP_PORT}}
command={{APP_RUN}}
process_name=%(program_name)s_%(process_num)02d
numprocs=2
environment=FCGI_WEB_SERVER_ADDRS="127.0.0.1"
; On stop: SIGTERM, in-flight requests finish, then exit 0. Leave the app's closeTimeout (30 s) room.
stopsignal=TERM
stopwaitsecs=40

[fcgi-program:app_unix]
socket=unix://{{APP_SOCKET}}
socket_mode=0660
command={{APP_RUN}}
numprocs=1
stopsignal=TERM
stopwaitsecs=40
`;

export const supervisor: Recipe = {
  id: 'supervisor',
  title: 'supervisor',
  packages: ['supervisor'],
  files: [{ name: 'supervisord.conf', lang: 'ini', template: SUPERVISOR_CONF }],
  command: 'supervisord -n -c {{DIR}}/supervisord.conf',
  docValues: { ...APP_DOC_VALUES, DIR: '/var/lib/myapp/supervisor' },
  notes: [
    'supervisord creates the socket and hands it to each of the `numprocs` processes as fd 0; they all accept on it.',
    "`environment=` reaches the app (here FCGI_WEB_SERVER_ADDRS); `socket_mode` sets a unix socket's mode.",
    "On stop each process gets SIGTERM: requests in flight finish, the process exits 0 (`stopped: app_00 (exit status 0)` in the log). Keep `stopwaitsecs` above the app's `closeTimeout` (30 s), or supervisord's SIGKILL cuts the last requests.",
  ],
};

const SYSTEMD_SOCKET = `# {{UNIT}}.socket: systemd creates the socket at boot and starts {{UNIT}}.service on the first connection.
[Unit]
Description=myapp FastCGI socket

[Socket]
ListenStream={{APP_SOCKET}}
SocketMode=0660

[Install]
WantedBy=sockets.target
`;

const SYSTEMD_SERVICE = `# {{UNIT}}.service: the app gets the socket as fd 3 with LISTEN_FDS / LISTEN_PID (server.listen() with no
# address finds it).
[Unit]
Description=myapp FastCGI application
Requires={{UNIT}}.socket

[Service]
ExecStart={{APP_RUN}}
# SIGTERM: in-flight requests finish (up to closeTimeout, 30 s by default), then exit 0.
KillSignal=SIGTERM
TimeoutStopSec=40
`;

export const systemd: Recipe = {
  id: 'systemd',
  title: 'systemd socket activation',
  packages: ['systemd'],
  files: [
    { name: 'myapp.socket', lang: 'ini', template: SYSTEMD_SOCKET },
    { name: 'myapp.service', lang: 'ini', template: SYSTEMD_SERVICE },
  ],
  // The suite passes the socket the way systemd does, without systemd as PID 1, and checks the units with
  // systemd-analyze verify.
  command: 'systemd-socket-activate -l {{APP_SOCKET}} {{APP_RUN}}',
  docValues: { ...APP_DOC_VALUES, UNIT: 'myapp' },
  notes: [
    "`server.listen()` with no address takes systemd's socket (fd 3, when `LISTEN_PID` is the app's PID); keep `exec` in any wrapper so the PID stays the one systemd started.",
    'On stop systemd sends SIGTERM: requests in flight finish within `closeTimeout` (30 s), then the app exits 0; keep `TimeoutStopSec` above it.',
    'The suite checks both units with `systemd-analyze verify` and runs the service with `systemd-socket-activate`, which passes the socket the way systemd does.',
  ],
};

export const cgiFcgiStart: Recipe = {
  id: 'cgi-fcgi',
  title: 'cgi-fcgi -start',
  packages: ['libfcgi-bin'],
  files: [],
  // Starts the app detached (its parent becomes PID 1) and exits. The app gets no arguments: use a wrapper.
  command: 'cgi-fcgi -start -connect {{APP_SOCKET}} {{APP_RUN}}',
  docValues: { ...APP_DOC_VALUES },
  notes: [
    '`cgi-fcgi -start -connect` creates the socket, starts the app detached (its parent becomes PID 1) with the socket on fd 0, and exits; stop the app by its PID. The app gets no arguments: point it at a wrapper.',
    'As a client (`cgi-fcgi -bind -connect`), its whole environment becomes the params, in 8184-byte records that split pairs (the engine joins them). It exits 254 when a record header arrives split across two of its reads (a bug in its reader), which grows likely with large responses.',
  ],
};

export const RECIPES: Recipe[] = [
  nginx,
  lighttpd,
  h2o,
  caddy,
  haproxy,
  apacheProxyFcgi,
  apacheFcgid,
  spawnFcgi,
  supervisor,
  systemd,
  cgiFcgiStart,
];
