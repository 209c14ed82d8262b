/* native-stream: what libusb alone does on the same work as the daemon's streams: K
 * asynchronous bulk transfers of L bytes kept in flight (buffers from libusb_dev_mem_alloc
 * when it works), resubmitted as they complete, until N bytes. An OUT endpoint is sent
 * SourceSink's pattern (byte i of each 512-byte packet is i % 63).
 *   native-stream VID PID ENDPOINT K L N       prints MB/s */
#include <libusb.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "open-device.h"

static long long received, wanted;
static int flying;

static long long submitted;

static void done(struct libusb_transfer *t) {
    flying--;
    if (t->status != LIBUSB_TRANSFER_COMPLETED) { fprintf(stderr, "status %d\n", t->status); exit(1); }
    received += t->actual_length;
    if (submitted < wanted && libusb_submit_transfer(t) == 0) { flying++; submitted += t->length; }
}

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: native-stream VID PID EP K L N\n"); return 2; }
    int vid = (int)strtol(argv[1], 0, 0), pid = (int)strtol(argv[2], 0, 0), ep = (int)strtol(argv[3], 0, 0);
    int k = atoi(argv[4]), l = atoi(argv[5]);
    wanted = atoll(argv[6]);
    libusb_context *c;
    libusb_init(&c);
    libusb_device_handle *h = open_device(c, (uint16_t)vid, (uint16_t)pid);
    if (!h || libusb_claim_interface(h, 0) != 0) { fprintf(stderr, "cannot open/claim\n"); return 1; }
    struct timespec s, e;
    clock_gettime(CLOCK_MONOTONIC, &s);
    for (int i = 0; i < k; i++) {
        struct libusb_transfer *t = libusb_alloc_transfer(0);
        unsigned char *b = libusb_dev_mem_alloc(h, (size_t)l);
        if (!b) b = malloc((size_t)l);
        if (!(ep & 0x80)) for (int j = 0; j < l; j++) b[j] = (unsigned char)((j % 512) % 63);
        libusb_fill_bulk_transfer(t, h, (unsigned char)ep, b, l, done, 0, 0);
        if (libusb_submit_transfer(t) == 0) { flying++; submitted += l; }
    }
    while (flying > 0) libusb_handle_events(c);
    clock_gettime(CLOCK_MONOTONIC, &e);
    double seconds = (double)(e.tv_sec - s.tv_sec) + (double)(e.tv_nsec - s.tv_nsec) / 1e9;
    printf("%.1f\n", (double)received / seconds / 1e6);
    libusb_release_interface(h, 0);
    return 0;
}
