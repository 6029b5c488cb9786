export default (request) => new Response(`fetch-fn ${new URL(request.url).pathname}`, { status: 503 });
