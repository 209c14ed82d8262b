#define _GNU_SOURCE
/* keepalive: N requests of one kind on one HTTP/1.1 keep-alive connection; prints the
 * microseconds per request (to 0.1 µs). A plain client, so that curl's own cost is not measured.
 * Every answer is checked: a status other than 2xx (or the EXPECT environment variable's, e.g.
 * 404) ends it with an error, so that no figure times refusals. Host is 127.0.0.1, a name the
 * daemon answers to (it answers others 421 misdirected-request).
 *   keepalive PORT METHOD PATH N */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 20];

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: keepalive PORT METHOD PATH N\n"); return 2; }
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, n = atoi(argv[4]);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
    char request[1024];
    int length = snprintf(request, sizeof request, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
                          argv[2], argv[3]);
    const char *expect = getenv("EXPECT");
    int expected = expect ? atoi(expect) : 0;
    struct timespec s, e;
    clock_gettime(CLOCK_MONOTONIC, &s);
    for (int i = 0; i < n; i++) {
        if (write(fd, request, (size_t)length) != length) { perror("write"); return 1; }
        size_t have = 0;
        long body = -1;
        char *end = NULL;
        for (;;) {
            ssize_t r = read(fd, buf + have, sizeof buf - have - 1);
            if (r <= 0) { fprintf(stderr, "connection closed\n"); return 1; }
            have += (size_t)r;
            buf[have] = 0;
            if (!end && (end = strstr(buf, "\r\n\r\n"))) {
                char *cl = strcasestr(buf, "\r\nContent-Length:");
                body = cl && cl < end ? atol(cl + 17) : 0;
                int status = have > 12 ? atoi(buf + 9) : 0;
                if (expected ? status != expected : (status < 200 || status > 299)) {
                    fprintf(stderr, "keepalive: request %d answered %d: %.200s\n", i, status, buf);
                    return 1;
                }
            }
            if (end && have >= (size_t)(end + 4 - buf) + (size_t)body) break;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &e);
    printf("%.1f\n", ((e.tv_sec - s.tv_sec) * 1e9 + (e.tv_nsec - s.tv_nsec)) / (n * 1000.0));
    return 0;
}
