// Where one request for a PHP site goes, decided as nginx's usual PHP server block decides it (try_files
// `$uri $uri/ /index.php?$args`, `index index.php`, `fastcgi_split_path_info`, deny dotfiles), with one rule
// nginx lacks: a file whose name ends in a PHP extension, in any letter case, is never sent as a static file.
import { promises as fs, type Stats } from 'node:fs';
import { posix } from 'node:path';

/** How paths map to files and scripts; resolved once per front end. */
export interface RouteSettings {
  /** The document root on this machine. */
  readonly root: string;
  /** Index files tried in order for a path ending in '/'. */
  readonly index: readonly string[];
  /** The script for paths that name no file (the query string is kept), or null for 404. */
  readonly frontController: string | null;
  /** Splits a path into a script and PATH_INFO; a path it matches goes to PHP when the script exists. */
  readonly splitPath: RegExp;
  /** Refused paths (403): a string is a path prefix, a RegExp is tested against the decoded path. */
  readonly deny: readonly (string | RegExp)[];
  /** Dot segments (`.git`, `.env`, `.htaccess`) refused, `.well-known` excepted. */
  readonly denyDotfiles: boolean;
}

/** What to do with a request. */
export type Route =
  /** To the backend, as if the request had asked for `url` (the script, PATH_INFO and the query). */
  | { readonly kind: 'php'; readonly url: string }
  /** A static file: `path` is the decoded path under the root. */
  | { readonly kind: 'static'; readonly path: string }
  | { readonly kind: 'redirect'; readonly location: string }
  | { readonly kind: 'status'; readonly status: 400 | 403 | 404; readonly reason: string };

/** The default of `splitPath`: up to the first segment ending in `.php`; the gateway's default too. */
export const DEFAULT_SPLIT_PATH = /^(.+?\.php)(\/.*)?$/;

// Extensions php-fpm or Apache's mod_php would run; their source is never served, whatever the letter case
// (a case-insensitive file system opens `X.PHP` for `x.php`).
const PHP_SOURCE = /\.(php\d*|phtml|phar|phps|inc)$/i;

/** routeFor decides where a request URL (relative to the mount point) goes, checking the files it names. */
export async function routeFor(url: string, originalPath: string, settings: RouteSettings): Promise<Route> {
  const queryAt = url.indexOf('?');
  const query = queryAt === -1 ? '' : url.slice(queryAt);
  const rawPath = queryAt === -1 ? url : url.slice(0, queryAt);
  const decoded = percentDecode(rawPath);
  if (decoded.includes('\0')) return { kind: 'status', status: 400, reason: 'the path holds a NUL byte' };
  // `.` and `..` resolved, never above '/', as the gateway resolves them for SCRIPT_FILENAME.
  const path = posix.normalize(`/${decoded}`);
  const denied = deniedBy(path, settings);
  if (denied !== null) return { kind: 'status', status: 403, reason: denied };

  const split = settings.splitPath.exec(path);
  if (split !== null && split[1] !== undefined) {
    // nginx: `try_files $fastcgi_script_name =404`; the script must exist, or cgi.fix_pathinfo tricks
    // (/upload/evil.jpg/x.php) would run something else.
    const script = await statOf(settings.root + split[1]);
    if (script?.isFile() === true) return { kind: 'php', url };
    return { kind: 'status', status: 404, reason: `no script ${split[1]}` };
  }

  const stats = await statOf(settings.root + path);
  if (stats?.isDirectory() === true) {
    if (!path.endsWith('/')) return { kind: 'redirect', location: `${originalPath}/${query}` };
    for (const name of settings.index) {
      const candidate = await statOf(settings.root + path + name);
      if (candidate?.isFile() !== true) continue;
      const target = path + name;
      if (settings.splitPath.test(target)) return { kind: 'php', url: `${rawPath}${encodeSegment(name)}${query}` };
      if (PHP_SOURCE.test(name)) return { kind: 'status', status: 403, reason: `${target} is PHP source` };
      return { kind: 'static', path: target };
    }
    // nginx answers a directory with no index (autoindex off) 403, before its try_files fallback.
    return { kind: 'status', status: 403, reason: `directory ${path} has no index` };
  }
  if (stats?.isFile() === true) {
    if (PHP_SOURCE.test(path)) return { kind: 'status', status: 403, reason: `${path} is PHP source` };
    return { kind: 'static', path };
  }
  if (settings.frontController !== null) return { kind: 'php', url: settings.frontController + query };
  return { kind: 'status', status: 404, reason: `no file ${path}` };
}

function deniedBy(path: string, settings: RouteSettings): string | null {
  if (settings.denyDotfiles) {
    for (const segment of path.split('/')) {
      if (segment.startsWith('.') && segment !== '.well-known') return `dot segment ${segment}`;
    }
  }
  for (const rule of settings.deny) {
    if (typeof rule === 'string' ? path.startsWith(rule) : rule.test(path)) return `deny rule ${String(rule)}`;
  }
  return null;
}

async function statOf(file: string): Promise<Stats | null> {
  try {
    return await fs.stat(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG') return null;
    throw error;
  }
}

/** %XX escapes to bytes, read as UTF-8 (file names on disk); malformed escapes stay as they are. */
export function percentDecode(text: string): string {
  if (!text.includes('%')) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x25 && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(...Buffer.from(text[i]!, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

function encodeSegment(name: string): string {
  return encodeURIComponent(name);
}

/** A decoded path as a URL path again, each segment escaped (for `send`, which decodes it). */
export function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}
