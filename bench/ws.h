/* ws.h: the lean WebSocket client of the benchmarks (bench/channel.c, bench/console.c): one
 * connection (the global fd), binary messages read and sent with the least work. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The program's name, for messages. */
static const char *program;

static int fd;
static unsigned char *rbuf;
static size_t rhave, rpos;
static const size_t RBUF = 4 << 20;

static void die(const char *what) { fprintf(stderr, "%s: %s\n", program, what); exit(1); }

static void need(size_t n) {
    if (rhave - rpos >= n) return;
    memmove(rbuf, rbuf + rpos, rhave - rpos);
    rhave -= rpos; rpos = 0;
    while (rhave < n) {
        ssize_t r = read(fd, rbuf + rhave, RBUF - rhave);
        if (r <= 0) die("connection closed");
        rhave += (size_t)r;
    }
}

/* The next message from the daemon: its payload (valid until the next call) and length. */
static unsigned char *receive(size_t *length) {
    for (;;) {
        need(2);
        unsigned char b0 = rbuf[rpos], b1 = rbuf[rpos + 1];
        size_t n = b1 & 0x7f, header = 2;
        if (n == 126) { need(4); n = (size_t)rbuf[rpos + 2] << 8 | rbuf[rpos + 3]; header = 4; }
        else if (n == 127) { need(10); n = 0; for (int i = 0; i < 8; i++) n = n << 8 | rbuf[rpos + 2 + i]; header = 10; }
        need(header + n);
        unsigned char *payload = rbuf + rpos + header;
        rpos += header + n;
        if ((b0 & 0x0f) == 8) die("closed by the daemon");
        if ((b0 & 0x0f) == 2 && (b0 & 0x80)) { *length = n; return payload; }
    }
}

static const unsigned char key[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* Sends one binary message: `head` then `data` (masked with `key`, data through `scratch`). */
static void sendmsg2(const void *head, size_t hlen, const void *data, size_t dlen, unsigned char *scratch) {
    unsigned char frame[14 + 64];
    size_t n = hlen + dlen, f = 0;
    frame[f++] = 0x82;
    if (n < 126) frame[f++] = 0x80 | (unsigned char)n;
    else if (n <= 0xffff) { frame[f++] = 0x80 | 126; frame[f++] = (unsigned char)(n >> 8); frame[f++] = (unsigned char)n; }
    else { frame[f++] = 0x80 | 127; for (int i = 7; i >= 0; i--) frame[f++] = (unsigned char)(n >> (8 * i)); }
    memcpy(frame + f, key, 4); f += 4;
    for (size_t i = 0; i < hlen; i++) frame[f + i] = ((const unsigned char *)head)[i] ^ key[i & 3];
    f += hlen;
    struct iovec v[2] = { { frame, f }, { scratch, dlen } };
    if (dlen) {
        uint64_t k8; unsigned char kk[8];
        for (int i = 0; i < 8; i++) kk[i] = key[(hlen + i) & 3];
        memcpy(&k8, kk, 8);
        size_t i = 0;
        for (; i + 8 <= dlen; i += 8) { uint64_t w; memcpy(&w, (const unsigned char *)data + i, 8); w ^= k8; memcpy(scratch + i, &w, 8); }
        for (; i < dlen; i++) scratch[i] = ((const unsigned char *)data)[i] ^ kk[i & 7];
    }
    size_t total = f + dlen, done = 0;
    while (done < total) {
        ssize_t w = writev(fd, v, dlen ? 2 : 1);
        if (w <= 0) die("write failed");
        done += (size_t)w;
        size_t left = (size_t)w;
        for (int i = 0; i < 2 && left; i++) {
            size_t t = left < v[i].iov_len ? left : v[i].iov_len;
            v[i].iov_base = (char *)v[i].iov_base + t; v[i].iov_len -= t; left -= t;
        }
    }
}

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

/* Connects to PORT and upgrades PATH to a WebSocket of SUBPROTOCOL (the global fd and read buffer). */
static void open_websocket(int port, const char *path, const char *subprotocol) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1; setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    char req[1024];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Protocol: %s\r\n\r\n", path, subprotocol);
    if (write(fd, req, (size_t)rl) != rl) die("write");
    if (!rbuf) rbuf = malloc(RBUF);
    rhave = rpos = 0;
    for (;;) {  /* the 101's head */
        ssize_t r = read(fd, rbuf + rhave, RBUF - rhave);
        if (r <= 0) die("no handshake answer");
        rhave += (size_t)r;
        unsigned char *end = memmem(rbuf, rhave, "\r\n\r\n", 4);
        if (end) { if (memcmp(rbuf, "HTTP/1.1 101", 12) != 0) die("not 101"); rpos = (size_t)(end + 4 - rbuf); break; }
    }
}

