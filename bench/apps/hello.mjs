// The hello world that bench/cli.bench.ts serves with `fastcgi-engine serve`: the smallest response, so the
// load generator's own cost is as visible as it can be.
export default function hello(req, res) {
  res.setHeader('Content-Type', 'text/plain');
  res.setHeader('Content-Length', '12');
  res.end('hello world\n');
}
