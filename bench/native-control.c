/* native-control: GET_DESCRIPTOR(device, 18 bytes) COUNT times with libusb_control_transfer.
 *   native-control VID PID COUNT       prints microseconds per request */
#include <libusb.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "open-device.h"

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: native-control VID PID COUNT\n"); return 2; }
    int count = atoi(argv[3]);
    libusb_context *c;
    libusb_init(&c);
    libusb_device_handle *h = open_device(c, (uint16_t)strtol(argv[1], 0, 0), (uint16_t)strtol(argv[2], 0, 0));
    if (!h) return 1;
    unsigned char b[64];
    struct timespec s, e;
    clock_gettime(CLOCK_MONOTONIC, &s);
    for (int i = 0; i < count; i++) libusb_control_transfer(h, 0x80, 6, 0x100, 0, b, 18, 1000);
    clock_gettime(CLOCK_MONOTONIC, &e);
    printf("%ld\n", ((e.tv_sec - s.tv_sec) * 1000000000L + (e.tv_nsec - s.tv_nsec)) / (count * 1000L));
    return 0;
}
