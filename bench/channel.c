/* channel: a lean client of the URB channel (docs/urb-channel.md), for the benchmarks. Every
 * COMPLETE is checked (status, length): a figure of refusals is worse than none.
 *   channel PORT DEVICE control N          N GET_DESCRIPTOR(device) one at a time: us each
 *   channel PORT DEVICE in EP K L BYTES    bulk IN, K transfers of L bytes in flight: MB/s
 *   channel PORT DEVICE out EP K L BYTES   bulk OUT of SourceSink's pattern, K × L in flight: MB/s
 *   channel PORT PATH echo N               N 24-byte messages echoed one at a time (the floor): us each
 *   channel PORT DEVICE hold N SECONDS     opens N channels (HELLO read on each), prints N, holds them
 * DEVICE is a device id ("1-1"); interface 0 is claimed for in and out. */
#include "ws.h"

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

static void open_channel(int port, const char *path) { open_websocket(port, path, "usbhttpd.urb.1"); }

int main(int argc, char **argv) {
    program = "channel";
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
