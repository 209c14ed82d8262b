/* native-out: a file sent COUNT times to a bulk OUT endpoint with libusb_bulk_transfer
 * (one synchronous transfer per copy, as the daemon makes one transfer per POST).
 *   native-out VID PID ENDPOINT FILE COUNT      prints MB/s */
#include <libusb.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: native-out VID PID EP FILE COUNT\n"); return 2; }
    FILE *f = fopen(argv[4], "rb");
    if (!f) { perror(argv[4]); return 1; }
    static unsigned char data[1 << 24];
    size_t size = fread(data, 1, sizeof data, f);
    fclose(f);
    int count = atoi(argv[5]);
    libusb_context *c;
    libusb_init(&c);
    libusb_device_handle *h = libusb_open_device_with_vid_pid(
        c, (uint16_t)strtol(argv[1], 0, 0), (uint16_t)strtol(argv[2], 0, 0));
    if (!h || libusb_claim_interface(h, 0) != 0) { fprintf(stderr, "cannot open/claim\n"); return 1; }
    struct timespec s, e;
    clock_gettime(CLOCK_MONOTONIC, &s);
    for (int i = 0; i < count; i++) {
        int sent = 0;
        if (libusb_bulk_transfer(h, (unsigned char)strtol(argv[3], 0, 0), data, (int)size, &sent, 5000) != 0) {
            fprintf(stderr, "transfer failed\n");
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &e);
    double seconds = (double)(e.tv_sec - s.tv_sec) + (double)(e.tv_nsec - s.tv_nsec) / 1e9;
    printf("%.1f\n", (double)size * count / seconds / 1e6);
    libusb_release_interface(h, 0);
    return 0;
}
