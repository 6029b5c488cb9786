// A small PHP site on disk for the front-end tests (test/php/front-end.test.ts, test/interop/php-front-end.interop.ts):
// scripts that print what PHP saw, static files, a directory without index, dotfiles, PHP-looking files that
// must never be sent as source, and files for X-Accel-Redirect / X-Sendfile.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// PATH_INFO: nginx's usual block always sends one, empty without a path after the script; the front end sends
// none then (RFC 3875 §4.1.5 makes them the same): printed as '' either way.
const SHOW = `<?php
header('Content-Type: application/json');
echo json_encode(['script' => basename(__FILE__), 'REQUEST_URI' => $_SERVER['REQUEST_URI'], 'SCRIPT_NAME' => $_SERVER['SCRIPT_NAME'],
  'PATH_INFO' => $_SERVER['PATH_INFO'] ?? '', 'QUERY_STRING' => $_SERVER['QUERY_STRING'], 'REQUEST_METHOD' => $_SERVER['REQUEST_METHOD'],
  'get' => $_GET, 'post' => $_POST]);
`;

export interface Site {
  root: string;
  /** Outside the root: the X-Accel-Redirect / X-Sendfile directory. */
  files: string;
  dispose(): void;
}

export function makeSite(): Site {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'fcgi-php-site-'));
  fs.chmodSync(base, 0o755);
  const root = path.join(base, 'www');
  const files = path.join(base, 'files');
  const write = (file: string, text: string | Buffer): void => {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), text);
  };
  write('index.php', SHOW);
  write('show.php', SHOW);
  write('sub/index.php', SHOW);
  write('html/index.html', '<h1>static index</h1>\n');
  write('empty/.keep', '');
  write('style.css', 'body { color: red }\n');
  write('data.bin', Buffer.alloc(10_000, 7));
  write('X.PHP', '<?php echo "SOURCE-LEAK";');
  write('config.inc', '<?php $password = "SOURCE-LEAK";');
  write('old.phtml', '<?php echo "SOURCE-LEAK";');
  write('uploads/evil.jpg', '<?php echo "RAN-AN-UPLOAD";');
  write('.env', 'SECRET=SOURCE-LEAK\n');
  write('.htaccess', 'Deny from all # SOURCE-LEAK\n');
  write('.git/config', '[core] SOURCE-LEAK\n');
  write('.well-known/security.txt', 'Contact: mailto:security@example.org\n');
  write('vendor/composer.json', '{"SOURCE-LEAK": true}\n');
  write('cookies.php', `<?php setcookie('a', '1'); setcookie('b', '2'); header('X-From-App: yes'); echo 'cookies';`);
  write(
    'download.php',
    `<?php
$target = $_GET['to'] ?? 'report.txt';
header(($_GET['via'] ?? 'accel') === 'accel' ? 'X-Accel-Redirect: ' . $target : 'X-Sendfile: ' . $target);
header('Content-Disposition: attachment; filename="report.txt"');
setcookie('seen', '1');
setcookie('twice', '2');
echo 'this body is replaced by the file';`,
  );
  fs.mkdirSync(files);
  fs.writeFileSync(path.join(files, 'report.txt'), 'the protected report\n');
  return { root, files, dispose: () => fs.rmSync(base, { recursive: true, force: true }) };
}

/** Paths the tests ask for, and where nginx's usual PHP server block and the front end agree. */
export const COMPARED_PATHS = [
  '/',
  '/?a=1&b=2',
  '/show.php',
  '/show.php?x=y',
  '/show.php/extra/path?q=1',
  '/show.php/',
  '/sub/',
  '/sub',
  '/sub/?k=v',
  '/html/',
  '/empty/',
  '/style.css',
  '/data.bin',
  '/pretty/permalink/?p=3',
  '/missing.php',
  '/missing.css',
  '/uploads/evil.jpg/x.php',
  '/.env',
  '/.htaccess',
  '/.git/config',
  '/.well-known/security.txt',
  '/a/../show.php',
  '/%73how.php',
];
