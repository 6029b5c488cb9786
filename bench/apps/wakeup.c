// The machine's own floor for open-loop timing, with no Node and no FastCGI in it (bench/open-loop.bench.ts).
//
//   wakeup timer RATE COUNT     a thread sleeping on an absolute timerfd, due every 1/RATE s: how late it wakes
//   wakeup pingpong RATE COUNT  one byte to an echo process over a unix socketpair and back, sent every 1/RATE s
//                               (RATE 0: back to back, the closed loop): the round trip, two wake-ups from idle
//
// Prints one JSON object: percentiles in ms. Built by the bench with `cc -O2`; Linux only (timerfd).
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int compare(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static double at(const int64_t *sorted, int n, double q) {
  int i = (int)(q * (n - 1) + 0.5);
  return sorted[i] / 1e6;
}

static void sleep_until(int tfd, int64_t due) {
  struct itimerspec spec;
  memset(&spec, 0, sizeof spec);
  spec.it_value.tv_sec = due / 1000000000;
  spec.it_value.tv_nsec = due % 1000000000;
  timerfd_settime(tfd, TFD_TIMER_ABSTIME, &spec, NULL);
  uint64_t expirations;
  if (read(tfd, &expirations, sizeof expirations) < 0) exit(3);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: wakeup timer|pingpong RATE COUNT\n");
    return 2;
  }
  int pingpong = strcmp(argv[1], "pingpong") == 0;
  double rate = atof(argv[2]);
  int count = atoi(argv[3]);
  if (count < 1 || rate < 0 || (!pingpong && rate <= 0)) return 2;
  int64_t *samples = malloc(sizeof(int64_t) * count);
  int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
  int pair[2] = {-1, -1};
  pid_t echo = -1;
  if (pingpong) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) return 3;
    echo = fork();
    if (echo == 0) {
      char byte;
      close(pair[0]);
      while (read(pair[1], &byte, 1) == 1) {
        if (write(pair[1], &byte, 1) != 1) break;
      }
      _exit(0);
    }
    close(pair[1]);
  }
  int64_t period = rate > 0 ? (int64_t)(1e9 / rate) : 0;
  int64_t due = now_ns() + 20000000;  // start 20 ms out
  for (int i = 0; i < count; i++) {
    if (period > 0) sleep_until(tfd, due);
    if (pingpong) {
      char byte = 'x';
      int64_t sent = now_ns();
      if (write(pair[0], &byte, 1) != 1 || read(pair[0], &byte, 1) != 1) return 3;
      samples[i] = now_ns() - sent;
    } else {
      samples[i] = now_ns() - due;
    }
    due += period;
  }
  if (pingpong) {
    close(pair[0]);
    waitpid(echo, NULL, 0);
  }
  qsort(samples, count, sizeof(int64_t), compare);
  printf("{\"mode\":\"%s\",\"rate\":%g,\"count\":%d,\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,\"p999\":%.4f,\"max\":%.4f}\n",
         argv[1], rate, count, at(samples, count, 0.5), at(samples, count, 0.9), at(samples, count, 0.99),
         at(samples, count, 0.999), samples[count - 1] / 1e6);
  return 0;
}
