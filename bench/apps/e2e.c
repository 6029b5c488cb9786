/*
 * The C peer of the end-to-end benchmark (bench/e2e.bench.ts): libfcgi's FCGX API, answering the routes of
 * bench/apps/e2e-handlers.ts with the same bytes. Built by the benchmark at run time:
 *
 *   gcc -O2 -o e2e-c e2e.c -lfcgi -lcrypto -lpthread
 *   e2e-c /path/to.sock [THREADS] | e2e-c 127.0.0.1:PORT [THREADS]
 *
 * Threads: libfcgi serves one request at a time per FCGX_Request, and with FCGI_KEEP_CONN a request object
 * stays on its connection until the web server closes it. nginx keeps up to one connection per request in
 * flight, so one thread per connection it may hold (default 64, twice the benchmark's default load) keeps every
 * connection served; fewer would leave connections unread while their threads wait on kept ones.
 */
#include <fcgiapp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char four_k[4096];
static char sixty_four_k[65536];
static int listen_fd;

static void letters(char *body, size_t n) {
  for (size_t i = 0; i < n; i++) body[i] = (char)('a' + i % 26);
}

static void reply(FCGX_Stream *out, int status, const char *body, size_t length) {
  /* FCGX_FPrintF is libfcgi's own printf: no %zu. */
  FCGX_FPrintF(out, "Status: %d\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", status, (int)length);
  FCGX_PutStr(body, (int)length, out);
}

static void echo_sha256(FCGX_Request *request) {
  static const char hex[] = "0123456789abcdef";
  char chunk[65536];
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  char text[2 * EVP_MAX_MD_SIZE];
  EVP_MD_CTX *hash = EVP_MD_CTX_new();
  EVP_DigestInit_ex(hash, EVP_sha256(), NULL);
  int n;
  while ((n = FCGX_GetStr(chunk, sizeof chunk, request->in)) > 0) EVP_DigestUpdate(hash, chunk, (size_t)n);
  EVP_DigestFinal_ex(hash, digest, &digest_length);
  EVP_MD_CTX_free(hash);
  for (unsigned int i = 0; i < digest_length; i++) {
    text[2 * i] = hex[digest[i] >> 4];
    text[2 * i + 1] = hex[digest[i] & 15];
  }
  reply(request->out, 200, text, 2 * digest_length);
}

static void handle(FCGX_Request *request) {
  const char *uri = FCGX_GetParam("DOCUMENT_URI", request->envp);
  const char *method = FCGX_GetParam("REQUEST_METHOD", request->envp);
  if (uri == NULL) uri = "";
  if (method == NULL) method = "";
  const char *slash = strrchr(uri, '/');
  const char *route = slash == NULL ? uri : slash + 1;
  int get = strcmp(method, "GET") == 0;
  if (strcmp(route, "echo") == 0 && strcmp(method, "POST") == 0)
    echo_sha256(request);
  else if (get && strcmp(route, "hello") == 0)
    reply(request->out, 200, "hello world\n", 12);
  else if (get && strcmp(route, "4k") == 0)
    reply(request->out, 200, four_k, sizeof four_k);
  else if (get && strcmp(route, "64k") == 0)
    reply(request->out, 200, sixty_four_k, sizeof sixty_four_k);
  else
    reply(request->out, 404, "not found\n", 10);
}

static void *serve(void *unused) {
  (void)unused;
  FCGX_Request request;
  FCGX_InitRequest(&request, listen_fd, 0);
  while (FCGX_Accept_r(&request) >= 0) {
    handle(&request);
    FCGX_Finish_r(&request);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: e2e-c PATH|HOST:PORT [THREADS]\n");
    return 2;
  }
  int threads = argc == 3 ? atoi(argv[2]) : 64;
  if (threads < 1) threads = 1;
  letters(four_k, sizeof four_k);
  letters(sixty_four_k, sizeof sixty_four_k);
  if (FCGX_Init() != 0) {
    fprintf(stderr, "FCGX_Init failed\n");
    return 1;
  }
  /* libfcgi turns SIGTERM into a flag it reads between requests, which threads blocked in accept() never do:
   * the benchmark stops its backends with SIGTERM, so let it end the process. */
  signal(SIGTERM, SIG_DFL);
  if (strchr(argv[1], ':') == NULL) remove(argv[1]); /* a stale socket file from an earlier run */
  listen_fd = FCGX_OpenSocket(argv[1], 1024);
  if (listen_fd < 0) {
    fprintf(stderr, "cannot listen on %s\n", argv[1]);
    return 1;
  }
  pthread_t *pool = calloc((size_t)threads, sizeof *pool);
  for (int i = 0; i < threads; i++) pthread_create(&pool[i], NULL, serve, NULL);
  for (int i = 0; i < threads; i++) pthread_join(pool[i], NULL);
  return 0;
}
