/*
 * ffs-gadget: the lab's own USB device, played through FunctionFS.
 *
 * Usage: ffs-gadget /dev/ffs-lab   (the mounted functionfs instance)
 *
 * One vendor-specific interface (class 0xff) with three endpoints, in this order
 * (the UDC picks the real addresses; read them from the descriptors):
 *   ep1  interrupt IN, 64-byte packets, silent until a packet is queued (0x20)
 *   ep2  bulk IN, an endless counter pattern: byte i of the stream is i % 251
 *   ep3  bulk OUT, a sink that counts what it receives
 *
 * Vendor control requests (bmRequestType type = vendor, recipient interface or device):
 *   0x01 IN   GET_INFO       returns "usbhttpd-lab-gadget 1"
 *   0x02 OUT  ECHO_SET       stores up to 4096 data bytes
 *   0x03 IN   ECHO_GET       returns what ECHO_SET stored (at most wLength)
 *   0x04 IN   GET_OUT_COUNT  returns the bytes received on ep3, little-endian u64
 *   0x10 any  REFUSE         always stalls
 *   0x20 OUT  INT_QUEUE      queues one interrupt IN packet of wValue bytes (1..64)
 *   0x21 OUT  HALT           halts endpoint file ep<wValue> (1, 2 or 3)
 *   0x22 OUT  PAUSE_OUT      ep3 takes nothing for wValue milliseconds (0: resume now): the
 *                            host's OUT transfers wait, as on a device that refuses data
 *                            (at most one read of 16 KiB already pending still completes)
 *   0x30 IN   DELAYED        waits wValue milliseconds, then answers wLength bytes
 * Every other request stalls.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/usb/ch9.h>
#include <linux/usb/functionfs.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* x86_64 and every lab target are little-endian: descriptors are written as they are. */
#undef htole16
#undef htole32
#define htole16(x) (x)
#define htole32(x) (x)

#define INFO "usbhttpd-lab-gadget 1"

struct endpoints {
    struct usb_interface_descriptor intf;
    struct usb_endpoint_descriptor_no_audio int_in, bulk_in, bulk_out;
} __attribute__((packed));

static const struct {
    struct usb_functionfs_descs_head_v2 header;
    __le32 fs_count, hs_count;
    struct endpoints fs, hs;
} __attribute__((packed)) descriptors = {
    .header = {
        .magic = htole32(FUNCTIONFS_DESCRIPTORS_MAGIC_V2),
        .length = htole32(sizeof(descriptors)),
        .flags = htole32(FUNCTIONFS_HAS_FS_DESC | FUNCTIONFS_HAS_HS_DESC | FUNCTIONFS_ALL_CTRL_RECIP),
    },
    .fs_count = htole32(4),
    .hs_count = htole32(4),
#define ENDPOINTS(bulk_size)                                                                       \
    {                                                                                              \
        .intf = { .bLength = sizeof(struct usb_interface_descriptor), .bDescriptorType = USB_DT_INTERFACE, \
                  .bNumEndpoints = 3, .bInterfaceClass = USB_CLASS_VENDOR_SPEC,                   \
                  .bInterfaceSubClass = 0x42, .bInterfaceProtocol = 0x01, .iInterface = 1 },       \
        .int_in = { .bLength = USB_DT_ENDPOINT_SIZE, .bDescriptorType = USB_DT_ENDPOINT,           \
                    .bEndpointAddress = 1 | USB_DIR_IN, .bmAttributes = USB_ENDPOINT_XFER_INT,     \
                    .wMaxPacketSize = htole16(64), .bInterval = 4 },                               \
        .bulk_in = { .bLength = USB_DT_ENDPOINT_SIZE, .bDescriptorType = USB_DT_ENDPOINT,          \
                     .bEndpointAddress = 2 | USB_DIR_IN, .bmAttributes = USB_ENDPOINT_XFER_BULK,   \
                     .wMaxPacketSize = htole16(bulk_size) },                                       \
        .bulk_out = { .bLength = USB_DT_ENDPOINT_SIZE, .bDescriptorType = USB_DT_ENDPOINT,         \
                      .bEndpointAddress = 3 | USB_DIR_OUT, .bmAttributes = USB_ENDPOINT_XFER_BULK, \
                      .wMaxPacketSize = htole16(bulk_size) },                                      \
    }
    .fs = ENDPOINTS(64),
    .hs = ENDPOINTS(512),
};

static const struct {
    struct usb_functionfs_strings_head header;
    struct { __le16 code; const char str1[sizeof("usbhttpd lab interface")]; } __attribute__((packed)) lang0;
} __attribute__((packed)) strings = {
    .header = { .magic = htole32(FUNCTIONFS_STRINGS_MAGIC), .length = htole32(sizeof(strings)),
                .str_count = htole32(1), .lang_count = htole32(1) },
    .lang0 = { htole16(0x0409), "usbhttpd lab interface" },
};

static int ep0, ep[4];
static pthread_t threads[4];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queued = PTHREAD_COND_INITIALIZER;
static pthread_cond_t halted = PTHREAD_COND_INITIALIZER;
/* A HALT request for ep<n> is carried out by that endpoint's own thread: only it may touch
 * its endpoint file, which it holds in a pending read or write; SIGUSR1 interrupts that. */
static int halt_requested[4], halt_done[4];
static int int_queue[64], int_head, int_count;
static uint64_t out_count;
static uint8_t echo[4096];
static size_t echo_len;

static int open_ep(const char *dir, int n) {
    char path[256];
    snprintf(path, sizeof path, "%s/ep%d", dir, n);
    int fd = open(path, O_RDWR);
    if (fd < 0) { perror(path); exit(1); }
    return fd;
}

static void on_signal(int signal) { (void)signal; }

/* Halts ep<n> if asked to: wrong-direction I/O on an endpoint file halts the endpoint. */
static void halt_if_requested(int n) {
    pthread_mutex_lock(&lock);
    int wanted = halt_requested[n];
    pthread_mutex_unlock(&lock);
    if (!wanted) return;
    uint8_t dummy;
    if (n == 3) (void)!write(ep[n], &dummy, 0);
    else (void)!read(ep[n], &dummy, 0);
    pthread_mutex_lock(&lock);
    halt_requested[n] = 0;
    halt_done[n] = 1;
    pthread_cond_broadcast(&halted);
    pthread_mutex_unlock(&lock);
}

static void *interrupt_in(void *unused) {
    (void)unused;
    uint8_t packet[64];
    for (;;) {
        pthread_mutex_lock(&lock);
        while (int_count == 0 && !halt_requested[1]) pthread_cond_wait(&queued, &lock);
        if (halt_requested[1]) {
            pthread_mutex_unlock(&lock);
            halt_if_requested(1);
            continue;
        }
        int len = int_queue[int_head];
        int_head = (int_head + 1) % 64;
        int_count--;
        pthread_mutex_unlock(&lock);
        for (int i = 0; i < len; i++) packet[i] = (uint8_t)(0xa0 + i);
        while (write(ep[1], packet, len) < 0 && (errno == ESHUTDOWN || errno == EINTR)) {
            halt_if_requested(1);
            usleep(10000);
        }
    }
    return NULL;
}

static void *bulk_in(void *unused) {
    (void)unused;
    static uint8_t buf[251 * 64];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i % 251);
    size_t offset = 0;
    for (;;) {
        ssize_t n = write(ep[2], buf + offset, sizeof buf - offset);
        halt_if_requested(2);
        if (n < 0) { if (errno != EINTR) usleep(10000); continue; }
        offset = (offset + (size_t)n) % 251;
    }
    return NULL;
}

/* Until when ep3 takes nothing (CLOCK_MONOTONIC), and the signal that it may again. */
static struct timespec out_paused_until;
static pthread_cond_t out_resumed;

static void wait_while_out_paused(void) {
    pthread_mutex_lock(&lock);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > out_paused_until.tv_sec ||
            (now.tv_sec == out_paused_until.tv_sec && now.tv_nsec >= out_paused_until.tv_nsec)) break;
        pthread_cond_timedwait(&out_resumed, &lock, &out_paused_until);
    }
    pthread_mutex_unlock(&lock);
}

static void *bulk_out(void *unused) {
    (void)unused;
    static uint8_t buf[16384];
    for (;;) {
        wait_while_out_paused();
        ssize_t n = read(ep[3], buf, sizeof buf);
        halt_if_requested(3);
        if (n < 0) { if (errno != EINTR) usleep(10000); continue; }
        pthread_mutex_lock(&lock);
        out_count += (uint64_t)n;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

/* FunctionFS stalls the control request when ep0 is used in the wrong direction. */
static void stall(const struct usb_ctrlrequest *r) {
    uint8_t dummy;
    if (r->bRequestType & USB_DIR_IN) (void)!read(ep0, &dummy, 0);
    else (void)!write(ep0, &dummy, 0);
}

static void answer(const void *data, size_t len, uint16_t wLength) {
    if (len > wLength) len = wLength;
    if (write(ep0, data, len) < 0) perror("ep0 write");
}

static void ack(void) {
    uint8_t dummy;
    if (read(ep0, &dummy, 0) < 0) perror("ep0 ack");
}

static void setup(const struct usb_ctrlrequest *r) {
    uint16_t value = le16toh(r->wValue), length = le16toh(r->wLength);
    int in = r->bRequestType & USB_DIR_IN;
    if ((r->bRequestType & USB_TYPE_MASK) != USB_TYPE_VENDOR) { stall(r); return; }
    switch (r->bRequest) {
    case 0x01:
        if (!in) break;
        answer(INFO, strlen(INFO), length);
        return;
    case 0x02: {
        if (in || length > sizeof echo) break;
        ssize_t n = read(ep0, echo, length);
        echo_len = n < 0 ? 0 : (size_t)n;
        return;
    }
    case 0x03:
        if (!in) break;
        answer(echo, echo_len, length);
        return;
    case 0x04: {
        if (!in) break;
        pthread_mutex_lock(&lock);
        uint64_t count = htole64(out_count);
        pthread_mutex_unlock(&lock);
        answer(&count, sizeof count, length);
        return;
    }
    case 0x20:
        if (in || length != 0 || value < 1 || value > 64) break;
        pthread_mutex_lock(&lock);
        if (int_count < 64) {
            int_queue[(int_head + int_count) % 64] = value;
            int_count++;
            pthread_cond_signal(&queued);
        }
        pthread_mutex_unlock(&lock);
        ack();
        return;
    case 0x21: {
        if (in || length != 0 || value < 1 || value > 3) break;
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 1;
        pthread_mutex_lock(&lock);
        halt_requested[value] = 1;
        halt_done[value] = 0;
        pthread_cond_broadcast(&queued);
        pthread_mutex_unlock(&lock);
        pthread_kill(threads[value], SIGUSR1);
        pthread_mutex_lock(&lock);
        int rc = 0;
        while (!halt_done[value] && rc == 0) rc = pthread_cond_timedwait(&halted, &lock, &deadline);
        int done = halt_done[value];
        pthread_mutex_unlock(&lock);
        if (!done) break;
        ack();
        return;
    }
    case 0x22: {
        if (in || length != 0) break;
        pthread_mutex_lock(&lock);
        clock_gettime(CLOCK_MONOTONIC, &out_paused_until);
        out_paused_until.tv_sec += value / 1000;
        out_paused_until.tv_nsec += (long)(value % 1000) * 1000000L;
        if (out_paused_until.tv_nsec >= 1000000000L) {
            out_paused_until.tv_sec += 1;
            out_paused_until.tv_nsec -= 1000000000L;
        }
        pthread_cond_broadcast(&out_resumed);
        pthread_mutex_unlock(&lock);
        ack();
        return;
    }
    case 0x30: {
        if (!in) break;
        static uint8_t zeros[4096];
        usleep((useconds_t)value * 1000);
        answer(zeros, sizeof zeros, length);
        return;
    }
    }
    stall(r);
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s FUNCTIONFS-DIR\n", argv[0]); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* PAUSE_OUT's deadline is on the monotonic clock. */
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&out_resumed, &monotonic);
    char path[256];
    snprintf(path, sizeof path, "%s/ep0", argv[1]);
    ep0 = open(path, O_RDWR);
    if (ep0 < 0) { perror(path); return 1; }
    if (write(ep0, &descriptors, sizeof descriptors) < 0) { perror("descriptors"); return 1; }
    if (write(ep0, &strings, sizeof strings) < 0) { perror("strings"); return 1; }
    for (int i = 1; i <= 3; i++) ep[i] = open_ep(argv[1], i);
    /* No SA_RESTART: SIGUSR1 must end a blocked endpoint read or write with EINTR. */
    struct sigaction action = { .sa_handler = on_signal };
    sigemptyset(&action.sa_mask);
    sigaction(SIGUSR1, &action, NULL);
    pthread_create(&threads[1], NULL, interrupt_in, NULL);
    pthread_create(&threads[2], NULL, bulk_in, NULL);
    pthread_create(&threads[3], NULL, bulk_out, NULL);
    printf("ffs-gadget: descriptors written\n");

    struct usb_functionfs_event events[8];
    for (;;) {
        ssize_t n = read(ep0, events, sizeof events);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            perror("ep0 read");
            usleep(10000);
            continue;
        }
        for (size_t i = 0; i < (size_t)n / sizeof events[0]; i++) {
            switch (events[i].type) {
            case FUNCTIONFS_SETUP: setup(&events[i].u.setup); break;
            case FUNCTIONFS_ENABLE: printf("ffs-gadget: enabled\n"); break;
            case FUNCTIONFS_DISABLE: printf("ffs-gadget: disabled\n"); break;
            default: break;
            }
        }
    }
}
