/* channel: a lean client of the URB channel (docs/urb-channel.md), for the benchmarks. Every
 * COMPLETE is checked (status, length): a figure of refusals is worse than none.
 *   channel PORT DEVICE control N          N GET_DESCRIPTOR(device) one at a time: us each
 *   channel PORT DEVICE in EP K L BYTES    bulk IN, K transfers of L bytes in flight: MB/s
 *   channel PORT DEVICE out EP K L BYTES   bulk OUT of SourceSink's pattern, K × L in flight: MB/s
 *   channel PORT PATH echo N               N 24-byte messages echoed one at a time (the floor): us each
 *   channel PORT DEVICE hold N SECONDS     opens N channels (HELLO read on each), prints N, holds them
 * DEVICE is a device id ("1-1"); interface 0 is claimed for in and out. */
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

static int fd;
static unsigned char *rbuf;
static size_t rhave, rpos;
static const size_t RBUF = 4 << 20;

static void die(const char *what) { fprintf(stderr, "channel: %s\n", what); exit(1); }

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

static void put32(unsigned char *p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }
static uint32_t get32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static void submit(unsigned char type, unsigned char ep, uint32_t id, uint32_t length, const unsigned char *setup,
                   const void *data, unsigned char *scratch) {
    unsigned char m[32] = { 0x01, type, ep, 0 };
    put32(m + 4, id); put32(m + 8, length); put32(m + 12, 5000);
    size_t n = 24;
    if (setup) { memcpy(m + 24, setup, 8); n = 32; }
    sendmsg2(m, n, data, data ? length : 0, scratch);
}

/* The next COMPLETE (HELLO and EVENTs skipped): its id and actual length, checked. */
static uint32_t complete(uint32_t *actual) {
    for (;;) {
        size_t n;
        unsigned char *m = receive(&n);
        if (m[0] != 0x82) { if (m[0] == 0x83) continue; continue; }
        if (m[1] != 0 || get32(m + 12) != 0) {
            fprintf(stderr, "channel: transfer %u ended with status %u, error %d\n", get32(m + 4), m[1], (int32_t)get32(m + 12));
            exit(1);
        }
        *actual = get32(m + 8);
        return get32(m + 4);
    }
}

static void claim0(void) {
    unsigned char m[16] = { 0x03, 1, 0, 0 };
    put32(m + 4, 999); put32(m + 8, 0); put32(m + 12, 1);
    sendmsg2(m, 16, NULL, 0, NULL);
    for (;;) {
        size_t n;
        unsigned char *r = receive(&n);
        if (r[0] == 0x83) { if ((int32_t)get32(r + 8) != 0) die("claim refused"); return; }
    }
}

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

/* Connects to PORT and upgrades PATH to a WebSocket (the global fd and read buffer). */
static void open_channel(int port, const char *path) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1; setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    char req[1024];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Protocol: usbhttpd.urb.1\r\n\r\n", path);
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

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: see the comment at the top\n"); return 2; }
    int echo = strcmp(argv[3], "echo") == 0;
    char path[256];
    if (echo) snprintf(path, sizeof path, "%s", argv[2]); else snprintf(path, sizeof path, "/v1/devices/%s/urb", argv[2]);
    if (strcmp(argv[3], "hold") == 0) {
        int count = atoi(argv[4]);
        size_t n;
        for (int i = 0; i < count; i++) {
            open_channel(atoi(argv[1]), path);
            unsigned char *hello = receive(&n);
            if (hello[0] != 0x81) die("no HELLO");
        }
        printf("%d\n", count);
        fflush(stdout);
        sleep((unsigned)atoi(argv[5]));
        return 0;
    }
    open_channel(atoi(argv[1]), path);
    size_t n;
    if (!echo) { unsigned char *hello = receive(&n); if (hello[0] != 0x81) die("no HELLO"); }
    const char *mode = argv[3];
    if (echo || strcmp(mode, "control") == 0) {
        int count = atoi(argv[4]);
        unsigned char setup[8] = { 0x80, 6, 0x00, 0x01, 0, 0, 18, 0 }, m[24] = { 0 };
        double start = now();
        for (int i = 0; i < count; i++) {
            if (echo) {
                sendmsg2(m, 24, NULL, 0, NULL);
                unsigned char *e = receive(&n);
                if (n != 24) die("echo of another length");
                (void)e;
            } else {
                uint32_t actual;
                submit(0, 0, (uint32_t)i + 1, 18, setup, NULL, NULL);
                if (complete(&actual) != (uint32_t)i + 1 || actual != 18) die("unexpected COMPLETE");
            }
        }
        printf("%.1f\n", (now() - start) * 1e6 / count);
        return 0;
    }
    unsigned ep = (unsigned)strtoul(argv[4], NULL, 0);
    int k = atoi(argv[5]);
    uint32_t l = (uint32_t)atoi(argv[6]);
    long long bytes = atoll(argv[7]);
    int out = strcmp(mode, "out") == 0;
    unsigned char *pattern = malloc(l), *scratch = malloc(l);
    for (uint32_t i = 0; i < l; i++) pattern[i] = (unsigned char)((i % 512) % 63);  /* SourceSink's */
    claim0();
    long long moved = 0, submitted = 0;
    uint32_t id = 1;
    double start = now();
    int inflight = 0;
    while (moved < bytes) {
        while (inflight < k && submitted < bytes) {
            submit(2, (unsigned char)ep, id++, l, NULL, out ? pattern : NULL, scratch);
            submitted += l; inflight++;
        }
        uint32_t actual;
        complete(&actual);
        if (actual != l) { fprintf(stderr, "channel: a transfer moved %u of %u bytes\n", actual, l); return 1; }
        moved += actual; inflight--;
    }
    printf("%.1f\n", moved / (now() - start) / 1e6);
    return 0;
}
