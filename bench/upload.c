/* upload: a lean HTTP client that POSTs MIB mebibytes of SourceSink's pattern (byte i of each
 * 512-byte packet is i % 63) as a chunked body of CHUNK-byte chunks, straight from memory: what
 * an upload costs the daemon when the client is not the bottleneck (curl reading a pipe is, in
 * the lab's guest: it reaches about 100 MB/s against a server that drops the body).
 *   upload PORT PATH MIB CHUNK       prints MB/s, then ok or the answer's first line */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: upload PORT PATH MIB CHUNK\n"); return 2; }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
    long long total = atoll(argv[3]) * 1048576LL;
    size_t chunk = (size_t)atol(argv[4]);
    unsigned char *data = malloc(chunk);
    for (size_t j = 0; j < chunk; j++) data[j] = (unsigned char)((j % 512) % 63);
    char head[1024];
    int h = snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n", argv[2]);
    struct timespec s, e;
    clock_gettime(CLOCK_MONOTONIC, &s);
    if (write(fd, head, (size_t)h) != h) return 1;
    for (long long sent = 0; sent < total; sent += (long long)chunk) {
        char line[32];
        int l = snprintf(line, sizeof line, "%zx\r\n", chunk);
        struct iovec v[3] = {{line, (size_t)l}, {data, chunk}, {"\r\n", 2}};
        size_t left = (size_t)l + chunk + 2;
        while (left > 0) {
            ssize_t r = writev(fd, v, 3);
            if (r <= 0) { perror("writev"); return 1; }
            left -= (size_t)r;
            for (int i = 0; i < 3; i++) {
                size_t t = (size_t)r < v[i].iov_len ? (size_t)r : v[i].iov_len;
                v[i].iov_base = (char *)v[i].iov_base + t;
                v[i].iov_len -= t;
                r -= (ssize_t)t;
            }
        }
    }
    if (write(fd, "0\r\n\r\n", 5) != 5) return 1;
    char reply[4096];
    ssize_t r = read(fd, reply, sizeof reply - 1);
    clock_gettime(CLOCK_MONOTONIC, &e);
    double seconds = (double)(e.tv_sec - s.tv_sec) + (double)(e.tv_nsec - s.tv_nsec) / 1e9;
    reply[r > 0 ? r : 0] = 0;
    char *eol = strchr(reply, '\r');
    if (eol) *eol = 0;
    /* A figure only for an upload the daemon took whole: a refusal is not a speed. */
    if (strncmp(reply, "HTTP/1.1 200", 12) != 0) { fprintf(stderr, "upload: answered %s\n", reply); return 1; }
    printf("%.1f ok\n", (double)total / seconds / 1e6);
    return 0;
}
