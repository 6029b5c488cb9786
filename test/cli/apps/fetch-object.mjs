export default {
  async fetch(request) {
    const body = await request.text();
    return new Response(`fetch ${request.method} ${new URL(request.url).pathname} body=${body}`, {
      status: new URL(request.url).pathname === '/missing' ? 404 : 200,
    });
  },
};
