// (req, res) handler that reports each request it handles on stderr ("served <tag> pid=<pid>"), so a test can
// tell which requests the application really ran; ?ms=N delays the answer.
export default function handler(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const tag = url.searchParams.get('tag') ?? '-';
  process.stderr.write(`served ${tag} pid=${process.pid}\n`);
  setTimeout(
    () => {
      res.setHeader('Content-Type', 'text/plain');
      res.end(`tag=${tag} pid=${process.pid}`);
    },
    Number(url.searchParams.get('ms') ?? 0),
  );
}
