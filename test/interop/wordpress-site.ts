// A WordPress site for the interop suite: Debian's `wordpress` package copied into a temp dir, a private
// MariaDB on a unix socket with one database per HTTP port, and a browser-like walker (cookies, forms, the
// REST API) that records every answer, so that two front ends can be walked alike and compared step by step
// (wordpress.interop.ts, wordpress-php-server.interop.ts).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import { findBinary, httpRequest, Proc, processStates, readText, removeDir, tempDir, waitForListen } from './harness';

const WORDPRESS = '/usr/share/wordpress';
const MARIADBD = findBinary(['mariadbd', 'mysqld']);
const INSTALL_DB = findBinary('mariadb-install-db');
const MARIADB = findBinary(['mariadb', 'mysql']);

/** Debian's WordPress and MariaDB are installed. */
export const HAVE_WORDPRESS =
  MARIADBD !== null && INSTALL_DB !== null && MARIADB !== null && fs.existsSync(`${WORDPRESS}/wp-login.php`);
export const WORDPRESS_PACKAGES = 'apt-get install mariadb-server wordpress php8.2-mysql php8.2-gd';

export const ADMIN_PASSWORD = 'a-long-test-password-1';
/** The post the walk publishes, and its slug under `/%postname%/`. */
export const POST_TITLE = 'Published through the interop walk';
export const POST_SLUG = 'published-through-the-interop-walk';
/** A 1x1 PNG, the media upload. */
export const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==',
  'base64',
);

const WP_CONFIG = (socket: string): string => `<?php
// One database per HTTP port: each front end under test installs its own site.
$port = preg_replace('/\\D/', '', $_SERVER['SERVER_PORT'] ?? '0');
define('DB_NAME', 'wp_' . $port);
define('DB_USER', 'root');
define('DB_PASSWORD', '');
define('DB_HOST', 'localhost:${socket}');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
define('WP_HOME', 'http://' . $_SERVER['HTTP_HOST']);
define('WP_SITEURL', 'http://' . $_SERVER['HTTP_HOST']);
define('WP_CONTENT_DIR', __DIR__ . '/wp-content');
define('AUTOMATIC_UPDATER_DISABLED', true);
define('DISABLE_WP_CRON', true);
define('WP_DEFAULT_THEME', 'walk');
define('WP_HTTP_BLOCK_EXTERNAL', true);
foreach (['AUTH', 'SECURE_AUTH', 'LOGGED_IN', 'NONCE'] as $k) { define($k . '_KEY', 'test-' . $k); define($k . '_SALT', 'salt-' . $k); }
$table_prefix = 'wp_';
if (!defined('ABSPATH')) define('ABSPATH', __DIR__ . '/');
require_once ABSPATH . 'wp-settings.php';
`;

const THEME_INDEX = `<!DOCTYPE html>
<html><head><?php wp_head(); ?></head><body>
<p id="view"><?php echo is_404() ? '404' : (is_singular() ? 'single ' . get_queried_object_id() : (is_search() ? 'search' : 'list')); ?></p><?php while (have_posts()) { the_post(); ?><article><h1><?php the_title(); ?></h1><?php the_content(); ?></article><?php } ?>
<?php wp_footer(); ?></body></html>
`;

/** The theme's line saying what WordPress made of the URL: 'single <ID>', 'search', 'list' or '404'. */
export function view(what: string): string {
  return `<p id="view">${what}</p>`;
}

/** The copied site and its database server. */
export class WordPressSite {
  readonly dir: string;
  /** The document root. */
  readonly root: string;
  readonly #socket: string;
  readonly #db: Proc;

  private constructor(dir: string, root: string, socket: string, db: Proc) {
    this.dir = dir;
    this.root = root;
    this.#socket = socket;
    this.#db = db;
  }

  /** A fresh MariaDB and a copy of Debian's WordPress with a wp-config.php that picks the database by port. */
  static async start(name: string): Promise<WordPressSite> {
    const dir = tempDir(name);
    const data = path.join(dir, 'db');
    const socket = path.join(dir, 'db.sock');
    execFileSync(
      INSTALL_DB!,
      [`--datadir=${data}`, '--auth-root-authentication-method=normal', '--user=root', '--skip-test-db'],
      { stdio: 'ignore' },
    );
    const db = new Proc('mariadbd', [
      MARIADBD!,
      '--no-defaults',
      `--datadir=${data}`,
      `--socket=${socket}`,
      '--skip-networking',
      // InnoDB's reads through io_uring (MariaDB 10.11's default where the kernel has it) are the one part of
      // this server whose completion comes from outside it; plain pread/pwrite for a test database. Two CI runs
      // saw the first page through nginx hang for 60 s (PHP waits on MariaDB with no timeout), which a lost
      // completion on a cold buffer pool would explain; not confirmed (the step's report would show it).
      '--innodb-use-native-aio=0',
      '--user=root',
      `--pid-file=${dir}/db.pid`,
    ]);
    await waitForListen(socket, 30_000, db);
    const root = path.join(dir, 'www');
    fs.mkdirSync(root);
    // Copied, not linked: PHP resolves symlinks in __DIR__, and wp-load.php would find Debian's wp-config.php.
    for (const entry of fs.readdirSync(WORDPRESS)) {
      if (entry !== 'wp-config.php' && entry !== 'wp-content')
        fs.cpSync(path.join(WORDPRESS, entry), path.join(root, entry), { recursive: true, dereference: true });
    }
    fs.mkdirSync(path.join(root, 'wp-content/uploads'), { recursive: true });
    fs.symlinkSync(path.join(WORDPRESS, 'wp-content/plugins'), path.join(root, 'wp-content/plugins'));
    // Debian ships the themes in other packages: a minimal one, so that pages show what WordPress found.
    const theme = path.join(root, 'wp-content/themes/walk');
    fs.mkdirSync(theme, { recursive: true });
    fs.writeFileSync(path.join(theme, 'style.css'), '/*\nTheme Name: Walk\n*/\n');
    fs.writeFileSync(path.join(theme, 'index.php'), THEME_INDEX);
    fs.writeFileSync(path.join(root, 'wp-config.php'), WP_CONFIG(socket));
    return new WordPressSite(dir, root, socket, db);
  }

  /** Creates the (empty) database the site uses when served on `port`. */
  createDatabase(port: number): void {
    execFileSync(MARIADB!, ['--no-defaults', '-S', this.#socket, '-uroot', '-e', `CREATE DATABASE wp_${port}`]);
  }

  /**
   * The database's side of a stalled request: its last output, what its connections are running (the CLI is
   * given 10 s: a server that does not answer it says as much) and what its threads wait in.
   */
  report(): string {
    let processes: string;
    try {
      processes = execFileSync(
        MARIADB!,
        ['--no-defaults', '-S', this.#socket, '-uroot', '--connect-timeout=5', '-e', 'SHOW FULL PROCESSLIST'],
        { timeout: 10_000, encoding: 'utf8' },
      );
    } catch (error) {
      processes = `SHOW FULL PROCESSLIST failed: ${(error as Error).message}`;
    }
    return [
      `--- mariadbd output (last 3000 characters)\n${this.#db.output().slice(-3000)}`,
      `--- SHOW FULL PROCESSLIST\n${processes}`,
      `--- mariadbd threads\n${processStates([this.#db.pid])}`,
    ].join('\n');
  }

  async stop(): Promise<void> {
    await this.#db.stop('SIGTERM', 10_000);
    removeDir(this.dir);
  }
}

class Jar {
  readonly cookies = new Map<string, string>();
  take(setCookie: string[] | undefined): void {
    for (const line of setCookie ?? []) {
      const [pair] = line.split(';');
      const at = pair!.indexOf('=');
      this.cookies.set(pair!.slice(0, at), pair!.slice(at + 1));
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/** One answer: what is compared between front ends (the port replaced by PORT), and the body. */
export interface Step {
  what: string;
  status: number;
  location: string | undefined;
  /** Whether the body held the step's marker text (undefined: no marker asked). */
  marked: boolean | undefined;
  body: Buffer;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface GoOptions {
  form?: Record<string, string>;
  json?: unknown;
  body?: Buffer;
  headers?: Record<string, string>;
  method?: string;
  /** Text the body should hold; recorded as `marked` and compared. */
  marker?: string;
  /** Send a GET that stalls once more (default true). False for a GET that changes state (log out). */
  retry?: boolean;
}

export interface VisitorOptions {
  /** How long one step may take. Default 25 s: well under nginx's fastcgi_read_timeout (60 s), so that a stalled
   * request is reported while it is still stalled (the tests' timeouts leave room for a GET's second try). */
  timeoutMs?: number;
  /** What to add to a failed step's error: the servers' logs and states, read at the moment of the failure. */
  report?: () => string;
}

/** A browser of one front end: keeps cookies, records each step. */
export class Visitor {
  readonly port: number;
  readonly steps: Step[] = [];
  readonly #jar = new Jar();
  readonly #timeoutMs: number;
  readonly #report: (() => string) | undefined;

  constructor(port: number, options: VisitorOptions = {}) {
    this.port = port;
    this.#timeoutMs = options.timeoutMs ?? 25_000;
    this.#report = options.report;
  }

  async go(what: string, url: string, options: GoOptions = {}): Promise<Step> {
    const headers: Record<string, string> = { Cookie: this.#jar.header(), ...options.headers };
    let body: Buffer | string | undefined = options.body;
    if (options.form !== undefined) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(options.form).toString();
    } else if (options.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.json);
    }
    const send = (): ReturnType<typeof httpRequest> =>
      httpRequest({
        port: this.port,
        path: url,
        headers,
        timeoutMs: this.#timeoutMs,
        ...(options.method === undefined ? {} : { method: options.method }),
        ...(body === undefined ? {} : { body }),
      });
    const report = (error: Error): string => {
      let servers = '';
      try {
        servers = this.#report === undefined ? '' : `\n${this.#report()}`;
      } catch (failure) {
        servers = `\nthe report failed: ${(failure as Error).message}`;
      }
      return `${what}: ${error.message}${servers}`;
    };
    const result = await send().catch(async (error: Error) => {
      // A GET that stalls is reported and sent once more (a GET changes nothing): two CI runs saw the first
      // install.php through nginx hang for 60 s, before any front end under test was involved, and pass alone.
      // The report goes to the log, so a stall that a second try gets past still leaves its trace.
      if (
        body !== undefined ||
        options.method !== undefined ||
        options.retry === false ||
        !error.message.startsWith('timed out')
      ) {
        throw new Error(report(error), { cause: error });
      }
      console.warn(`WordPress walk on port ${this.port}: stalled, sending again\n${report(error)}`);
      return send().catch((again: Error) => {
        throw new Error(`again: ${report(again)}`, { cause: again });
      });
    });
    this.#jar.take(result.headers['set-cookie']);
    const text = result.body.toString();
    const step: Step = {
      what,
      status: result.status,
      location: result.headers.location?.replaceAll(String(this.port), 'PORT'),
      marked: options.marker === undefined ? undefined : text.includes(options.marker),
      body: result.body,
      text,
      headers: result.headers,
    };
    this.steps.push(step);
    return step;
  }

  /** The famous five-minute install, as the form on install.php?step=2 does it. */
  async install(): Promise<void> {
    await this.go('install page', '/wp-admin/install.php', { marker: 'Information needed' });
    const installed = await this.go('install', '/wp-admin/install.php?step=2', {
      form: {
        weblog_title: 'Test',
        user_name: 'admin',
        admin_password: ADMIN_PASSWORD,
        admin_password2: ADMIN_PASSWORD,
        pw_weak: '1',
        admin_email: 'admin@example.org',
        blog_public: '0',
        language: '',
      },
      marker: 'Success!',
    });
    expect(installed.text, 'install').toContain('Success!');
  }

  async logIn(): Promise<void> {
    this.#jar.cookies.set('wordpress_test_cookie', 'WP%20Cookie%20check');
    await this.go('login page', '/wp-login.php', { marker: 'user_login' });
    const login = await this.go('log in', '/wp-login.php', {
      form: {
        log: 'admin',
        pwd: ADMIN_PASSWORD,
        'wp-submit': 'Log In',
        testcookie: '1',
        redirect_to: `http://127.0.0.1:${this.port}/wp-admin/`,
      },
    });
    expect(login.status, 'log in').toBe(302);
    expect(login.location).toBe('http://127.0.0.1:PORT/wp-admin/');
  }

  /**
   * Settings → Permalinks with the custom structure `/%postname%/`, as the form posts it (`selection=custom`:
   * the preset radio's value would carry WordPress's `/index.php` prefix when it thinks the server cannot
   * rewrite, which is what the custom field is for).
   */
  async prettyPermalinks(): Promise<void> {
    const page = await this.go('permalink settings', '/wp-admin/options-permalink.php', {
      marker: 'permalink_structure',
    });
    const nonce = /name="_wpnonce" value="([0-9a-f]+)"/.exec(page.text)?.[1];
    expect(nonce, 'the permalink form nonce').toBeDefined();
    const saved = await this.go('save permalinks', '/wp-admin/options-permalink.php', {
      form: {
        _wpnonce: nonce!,
        _wp_http_referer: '/wp-admin/options-permalink.php',
        selection: 'custom',
        permalink_structure: '/%postname%/',
        category_base: '',
        tag_base: '',
        submit: 'Save Changes',
      },
    });
    expect(saved.status, 'save permalinks').toBe(302);
    expect(saved.location).toContain('options-permalink.php?settings-updated=true');
    const after = await this.go('permalink settings saved', saved.location!.replace('http://127.0.0.1:PORT', ''), {
      marker: 'value="/%postname%/"',
    });
    expect(after.marked, 'the saved structure').toBe(true);
  }
}

/** The last `chars` characters of a log file, headed by its name. */
export function logTail(name: string, file: string, chars = 3000): string {
  return `--- ${name} (${file}, last ${chars} characters)\n${readText(file).slice(-chars)}`;
}

/** Each step as compared between front ends: what, status, Location, marker. */
export function comparable(steps: readonly Step[]): [string, number, string | undefined, boolean | undefined][] {
  return steps.map((s) => [s.what, s.status, s.location, s.marked]);
}
