// (req, res) handler; ?ms=N delays the answer; /crash exits the process.
export default function handler(req, res) {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/crash') process.exit(1);
  if (url.pathname === '/stderr') process.stderr.write('');
  setTimeout(
    () => {
      res.setHeader('Content-Type', 'text/plain');
      res.end(`node ${req.method} ${url.pathname} pid=${process.pid}`);
    },
    Number(url.searchParams.get('ms') ?? 0),
  );
}
