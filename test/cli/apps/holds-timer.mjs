// (req, res) handler whose module also holds a timer, as a database pool or a metrics flush would: the process
// has something besides the FastCGI server keeping it alive. ?ms=N delays the answer.
setInterval(() => undefined, 60_000);

export default function handler(req, res) {
  const url = new URL(req.url, 'http://localhost');
  setTimeout(() => res.end(`timer ${url.pathname} pid=${process.pid}`), Number(url.searchParams.get('ms') ?? 0));
}
