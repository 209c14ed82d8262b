/*
 * dfu-gadget: a lab device that re-enumerates, as a board being flashed does, played through
 * gadgetfs (the whole device in user space: the kernel's FunctionFS of this Debian kernel
 * refuses a DFU functional descriptor, gadgetfs passes descriptors as they are written).
 *
 * Usage: dfu-gadget GADGETFS-EP0   e.g. dfu-gadget /dev/gadget/dummy_udc
 * gadgetfs binds to the first UDC left free (the lab leaves dummy_udc.3 and .4 free, and .3
 * comes first); leaving the bus is closing ep0, coming back is opening it again and writing
 * the other mode's descriptors.
 *
 * Runtime mode (1209:0010, "usbhttpd lab DFU device"): the "application". One interface, the
 * DFU runtime interface (class 0xfe, subclass 1, protocol 1) with its DFU functional
 * descriptor (will detach, can download, can upload, not manifestation tolerant, transfer
 * size 256, DFU 1.1). bcdDevice is the firmware's version and the configuration string says
 * "firmware X.YY crc32 XXXXXXXX". DFU_DETACH (or the vendor request MODE) makes it leave the
 * bus and come back in DFU mode by itself (bitWillDetach).
 *
 * DFU mode (1209:0011, "usbhttpd lab DFU bootloader"): the DFU 1.1 class, interface 0
 * (class 0xfe, subclass 1, protocol 2): DNLOAD, UPLOAD, GETSTATUS, CLRSTATUS, GETSTATE,
 * ABORT. Blocks of at most 256 bytes are appended in order, each numbered one more than the
 * last (a gap is a block lost: see lose_block); a zero-length DNLOAD starts the manifestation. An image is valid when it starts with "LABFW", its major and minor version
 * bytes (bcdDevice = major << 8 | minor), and is at most 1 MiB: then the GETSTATUS after the
 * zero-length DNLOAD answers dfuMANIFEST, the next dfuMANIFEST-WAIT-RESET, and the device
 * comes back in runtime mode with the new firmware on a USB reset, or on its own 1.5 s
 * after the manifestation began (a watchdog, so that a client that never resets sees it
 * back too). An invalid image answers errFILE in dfuERROR and the old firmware stays.
 * UPLOAD reads the current firmware image from its start.
 *
 * Vendor requests, either mode (type vendor, recipient device or interface):
 *   0x40 OUT  MODE     leave and come back in the other mode (the firmware unchanged)
 *   0x41 OUT  VANISH   leave the bus for wValue milliseconds (0: for good), then come back in
 *                      runtime mode: a device that does not come back in time
 * Every other request stalls, as do DFU requests in a state that does not take them (which
 * also puts DFU mode in dfuERROR with errSTALLEDPKT, as the specification says).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/usb/ch9.h>
#include <linux/usb/gadgetfs.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* x86_64 and every lab target are little-endian: descriptors are written as they are. */
#undef htole16
#undef htole32
#undef le16toh
#define htole16(x) (x)
#define htole32(x) (x)
#define le16toh(x) (x)

/* gadgetfs stalls control OUT requests longer than its 256-byte ep0 buffer (and cuts IN ones to
 * it): blocks of 256 bytes, as many small bootloaders use. */
#define TRANSFER_SIZE 256
#define MAX_IMAGE (1 << 20)

enum { RUNTIME, DFU };
enum state {
    APP_IDLE = 0, APP_DETACH = 1, DFU_IDLE = 2, DNLOAD_SYNC = 3, DNBUSY = 4, DNLOAD_IDLE = 5,
    MANIFEST_SYNC = 6, MANIFEST = 7, MANIFEST_WAIT_RESET = 8, UPLOAD_IDLE = 9, DFU_ERROR = 10
};
enum status { OK = 0, ERR_FILE = 2, ERR_ADDRESS = 8, ERR_NOTDONE = 9, ERR_UNKNOWN = 14, ERR_STALLEDPKT = 15 };
enum request { DETACH = 0, DNLOAD = 1, UPLOAD = 2, GETSTATUS = 3, CLRSTATUS = 4, GETSTATE = 5, ABORT = 6 };

/* The DFU functional descriptor (DFU 1.1, 4.1.3). */
struct dfu_functional {
    uint8_t bLength, bDescriptorType, bmAttributes;
    uint16_t wDetachTimeOut, wTransferSize, bcdDFUVersion;
} __attribute__((packed));

/* One configuration: the DFU interface and its functional descriptor. */
struct configuration {
    struct usb_config_descriptor config;
    struct usb_interface_descriptor intf;
    struct dfu_functional functional;
} __attribute__((packed));

/* What gadgetfs takes on ep0: a tag, the full-speed and high-speed configurations, the device. */
struct device_setup {
    uint32_t tag;
    struct configuration fs, hs;
    struct usb_device_descriptor device;
} __attribute__((packed));

enum { S_MANUFACTURER = 1, S_PRODUCT, S_SERIAL, S_CONFIGURATION, S_INTERFACE };

static struct device_setup setup_for(int which, uint16_t bcd_device) {
    struct configuration c = {
        .config = { .bLength = USB_DT_CONFIG_SIZE, .bDescriptorType = USB_DT_CONFIG,
                    .wTotalLength = htole16(sizeof(struct configuration)), .bNumInterfaces = 1,
                    .bConfigurationValue = 1, .iConfiguration = S_CONFIGURATION,
                    .bmAttributes = USB_CONFIG_ATT_ONE | USB_CONFIG_ATT_SELFPOWER, .bMaxPower = 50 },
        .intf = { .bLength = USB_DT_INTERFACE_SIZE, .bDescriptorType = USB_DT_INTERFACE,
                  .bNumEndpoints = 0, .bInterfaceClass = 0xfe, .bInterfaceSubClass = 0x01,
                  .bInterfaceProtocol = which == RUNTIME ? 1 : 2, .iInterface = S_INTERFACE },
        .functional = { .bLength = sizeof(struct dfu_functional), .bDescriptorType = 0x21,
                        .bmAttributes = 0x0b, /* will detach, can upload, can download */
                        .wDetachTimeOut = htole16(1000), .wTransferSize = htole16(TRANSFER_SIZE),
                        .bcdDFUVersion = htole16(0x0110) },
    };
    struct device_setup d = {
        .tag = 0, .fs = c, .hs = c,
        .device = { .bLength = USB_DT_DEVICE_SIZE, .bDescriptorType = USB_DT_DEVICE, .bcdUSB = htole16(0x0200),
                    .bMaxPacketSize0 = 64, .idVendor = htole16(0x1209),
                    .idProduct = htole16(which == RUNTIME ? 0x0010 : 0x0011), .bcdDevice = htole16(bcd_device),
                    .iManufacturer = S_MANUFACTURER, .iProduct = S_PRODUCT, .iSerialNumber = S_SERIAL,
                    .bNumConfigurations = 1 },
    };
    return d;
}

static const char *ep0_path;
static int ep0 = -1;
static int mode = RUNTIME;
static char configuration_string[64];
static enum state state = APP_IDLE;
static enum status status = OK;
static uint8_t firmware[MAX_IMAGE], incoming[MAX_IMAGE];
static size_t firmware_len, incoming_len, upload_at;
/* The wBlockNum the next DNLOAD of a download must carry: the last one's plus one. */
static uint16_t next_block;
/* What the main loop does next, and when (CLOCK_MONOTONIC ms): a mode switch is made after
 * the request that asked for it has finished its status stage. */
static int pending_mode = -1;
static long long pending_at, vanish_until = -1;

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static uint32_t crc32(const uint8_t *data, size_t len) {
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

/* Off the bus: ep0 closed, gadgetfs unbinds from the UDC and the host sees a disconnect. */
static void unbind(void) {
    if (ep0 < 0) return;
    printf("dfu-gadget: %lld leaving\n", now_ms());
    close(ep0);
    ep0 = -1;
}

/* On the bus in mode `which`: runtime mode says the firmware's version in bcdDevice and in
 * its configuration string. */
static void bind_mode(int which) {
    unbind();
    mode = which;
    state = which == RUNTIME ? APP_IDLE : DFU_IDLE;
    status = OK;
    incoming_len = upload_at = 0;
    uint16_t bcd = which == RUNTIME ? (uint16_t)(firmware[5] << 8 | firmware[6]) : 0x0100;
    snprintf(configuration_string, sizeof configuration_string, "firmware %x.%02x crc32 %08x", firmware[5], firmware[6],
             crc32(firmware, firmware_len));
    for (int attempt = 0; ep0 < 0; attempt++) {
        ep0 = open(ep0_path, O_RDWR);
        if (ep0 < 0 && (errno != EBUSY || attempt > 200)) { perror(ep0_path); exit(1); }
        if (ep0 < 0) usleep(10000);
    }
    struct device_setup d = setup_for(which, bcd);
    if (write(ep0, &d, sizeof d) < 0) { perror("descriptors"); exit(1); }
    printf("dfu-gadget: %lld %s mode\n", now_ms(), which == RUNTIME ? "runtime" : "dfu");
}

static void later(int which, int after_ms) {
    pending_mode = which;
    pending_at = now_ms() + after_ms;
}

static void stall(int fd, const struct usb_ctrlrequest *r) {
    uint8_t dummy;
    if (r->bRequestType & USB_DIR_IN) (void)!read(fd, &dummy, 0);
    else (void)!write(fd, &dummy, 0);
}

static void answer(int fd, const void *data, size_t len, uint16_t wLength) {
    if (len > wLength) len = wLength;
    if (write(fd, data, len) < 0) perror("ep0 write");
}

static void ack(int fd) {
    uint8_t dummy;
    if (read(fd, &dummy, 0) < 0) perror("ep0 ack");
}

/* A DFU request the state does not take: stalled, and DFU mode goes to dfuERROR. */
static void refuse(int fd, const struct usb_ctrlrequest *r) {
    printf("dfu-gadget: refused request %u (type 0x%02x, length %u) in state %d\n", r->bRequest, r->bRequestType,
           le16toh(r->wLength), state);
    if (mode == DFU) {
        state = DFU_ERROR;
        if (status == OK) status = ERR_STALLEDPKT;
    }
    stall(fd, r);
}

/* A block of the download lost to gadgetfs, said as a DFU error (errUNKNOWN) so that the host
 * sees it instead of an image with a hole; the lab's tests read "block lost" in the log and
 * download again. gadgetfs ends a control OUT request's status stage itself once its data
 * came (inode.c gadgetfs_setup: "read DATA stage for OUT right away"), before the board has
 * read the request, so the host may send the next one (GETSTATUS) at once. If the board had
 * not read the DNLOAD's setup event yet, gadgetfs discards it for the new one (next_event:
 * "these events can't be repeated") and the block vanishes without a trace but its number;
 * if it had, the new request aborts the read of its data (EIDRM). A board in silicon answers
 * in its interrupt handler and has neither race. (A real-time priority for this process did not
 * make them rarer: 4 of 12 dfu-util downloads lost a block with it and without.) */
static void lose_block(void) {
    state = DFU_ERROR;
    status = ERR_UNKNOWN;
}

static int image_valid(void) {
    return incoming_len >= 7 && memcmp(incoming, "LABFW", 5) == 0;
}

static void dfu_request(int fd, const struct usb_ctrlrequest *r) {
    uint16_t value = le16toh(r->wValue), length = le16toh(r->wLength);
    int in = r->bRequestType & USB_DIR_IN;
    switch (r->bRequest) {
    case DETACH:
        if (in || mode != RUNTIME) break;
        ack(fd);
        state = APP_DETACH;
        later(DFU, 50);
        return;
    case DNLOAD: {
        if (in || mode != DFU || (state != DFU_IDLE && state != DNLOAD_IDLE) || length > TRANSFER_SIZE) break;
        /* A block numbered other than the one after the last: gadgetfs dropped the request
         * between them (see lose_block). Its data, if any, is read and dropped. The empty
         * block that ends a download carries the next number (dfu-util, usbhttpd.dfu) or 0
         * (some hosts). */
        if (state == DNLOAD_IDLE && value != next_block && (length || value != 0)) {
            uint8_t sink[TRANSFER_SIZE];
            if (length) (void)!read(fd, sink, length);
            else ack(fd);
            printf("dfu-gadget: block lost: block %u came where %u was due (its request never reached the board)\n",
                   value, next_block);
            lose_block();
            return;
        }
        if (length == 0) {
            if (state != DNLOAD_IDLE) { status = ERR_NOTDONE; break; }
            ack(fd);
            state = MANIFEST_SYNC;
            return;
        }
        /* A download starts in dfuIDLE (DFU 1.1, 6.1.1): after an error cleared with CLRSTATUS
         * the host begins again at block 0, so what came before the error is dropped, not kept
         * as the image's start. */
        if (state == DFU_IDLE) incoming_len = 0;
        if (incoming_len + length > MAX_IMAGE) {
            uint8_t sink[TRANSFER_SIZE];
            (void)!read(fd, sink, length);
            state = DFU_ERROR;
            status = ERR_ADDRESS;
            return;
        }
        ssize_t n = read(fd, incoming + incoming_len, length);
        if (n < 0) {
            /* The request after this one came before its data was read, and aborted the read. */
            printf("dfu-gadget: block lost: %s (the next request came before its data was read)\n", strerror(errno));
            lose_block();
            return;
        }
        if (n != length) {
            /* Part of a block: the same race, caught in the middle. */
            printf("dfu-gadget: block lost: dnload of %u read %zd\n", length, n);
            lose_block();
            return;
        }
        incoming_len += (size_t)n;
        next_block = (uint16_t)(value + 1);
        state = DNLOAD_SYNC;
        return;
    }
    case UPLOAD: {
        if (!in || mode != DFU || (state != DFU_IDLE && state != UPLOAD_IDLE)) break;
        if (state == DFU_IDLE) upload_at = 0;
        size_t left = firmware_len - upload_at, n = length < left ? length : left;
        answer(fd, firmware + upload_at, n, length);
        upload_at += n;
        state = n < length ? DFU_IDLE : UPLOAD_IDLE;
        return;
    }
    case GETSTATUS: {
        if (!in) break;
        uint32_t poll_ms = 0;
        if (mode == DFU) {
            switch (state) {
            case DNLOAD_SYNC: state = DNLOAD_IDLE; break; /* written at once: no poll wait */
            case MANIFEST_SYNC:
                if (!image_valid()) {
                    state = DFU_ERROR;
                    status = ERR_FILE;
                    incoming_len = 0;
                    break;
                }
                memcpy(firmware, incoming, incoming_len);
                firmware_len = incoming_len;
                incoming_len = 0;
                state = MANIFEST;
                poll_ms = 100;
                later(RUNTIME, 1500);
                break;
            case MANIFEST: state = MANIFEST_WAIT_RESET; break;
            default: break;
            }
        }
        uint8_t reply[6] = { status, poll_ms & 0xff, (poll_ms >> 8) & 0xff, (poll_ms >> 16) & 0xff, state, 0 };
        answer(fd, reply, sizeof reply, length);
        return;
    }
    case CLRSTATUS:
        if (in || mode != DFU || state != DFU_ERROR) break;
        ack(fd);
        state = DFU_IDLE;
        status = OK;
        return;
    case GETSTATE: {
        if (!in) break;
        uint8_t s = state;
        answer(fd, &s, 1, length);
        return;
    }
    case ABORT:
        if (in || mode != DFU || (state != DFU_IDLE && state != DNLOAD_IDLE && state != UPLOAD_IDLE)) break;
        ack(fd);
        state = DFU_IDLE;
        incoming_len = upload_at = 0;
        return;
    }
    refuse(fd, r);
}

/* A string descriptor: UTF-16LE of ASCII text (index 0: the language list, US English). */
static void string_descriptor(int fd, uint8_t index, uint16_t length, const struct usb_ctrlrequest *r) {
    const char *text = NULL;
    switch (index) {
    case S_MANUFACTURER: text = "usbhttpd lab"; break;
    case S_PRODUCT: text = mode == RUNTIME ? "usbhttpd lab DFU device" : "usbhttpd lab DFU bootloader"; break;
    case S_SERIAL: text = "lab-dfu"; break;
    case S_CONFIGURATION: text = mode == RUNTIME ? configuration_string : "DFU mode"; break;
    case S_INTERFACE: text = mode == RUNTIME ? "usbhttpd lab DFU runtime" : "usbhttpd lab DFU flash"; break;
    }
    uint8_t buf[2 + 2 * 64] = { 4, USB_DT_STRING, 0x09, 0x04 };
    if (index != 0) {
        if (!text) { stall(fd, r); return; }
        size_t n = strlen(text);
        if (n > 64) n = 64;
        buf[0] = (uint8_t)(2 + 2 * n);
        for (size_t i = 0; i < n; i++) { buf[2 + 2 * i] = (uint8_t)text[i]; buf[3 + 2 * i] = 0; }
    }
    answer(fd, buf, buf[0], length);
}

static void setup(int fd, const struct usb_ctrlrequest *r) {
    uint16_t value = le16toh(r->wValue), length = le16toh(r->wLength);
    int in = r->bRequestType & USB_DIR_IN;
    int type = r->bRequestType & USB_TYPE_MASK;
    if (type == USB_TYPE_STANDARD) {
        switch (r->bRequest) {
        case USB_REQ_GET_DESCRIPTOR:
            if (in && value >> 8 == USB_DT_STRING) { string_descriptor(fd, value & 0xff, length, r); return; }
            break;
        case USB_REQ_SET_CONFIGURATION: /* the kernel checked it; gadgetfs wants it acknowledged */
        case USB_REQ_SET_INTERFACE:
            if (in || (r->bRequest == USB_REQ_SET_INTERFACE && value != 0)) break;
            ack(fd);
            return;
        case USB_REQ_GET_INTERFACE: {
            if (!in) break;
            uint8_t alt = 0;
            answer(fd, &alt, 1, length);
            return;
        }
        }
        stall(fd, r);
        return;
    }
    if (type == USB_TYPE_CLASS && (r->bRequestType & USB_RECIP_MASK) == USB_RECIP_INTERFACE) {
        dfu_request(fd, r);
        return;
    }
    if (type == USB_TYPE_VENDOR && !in && length == 0) {
        if (r->bRequest == 0x40) {
            ack(fd);
            later(mode == RUNTIME ? DFU : RUNTIME, 50);
            return;
        }
        if (r->bRequest == 0x41) {
            ack(fd);
            later(-2, 50);
            vanish_until = value;
            return;
        }
    }
    stall(fd, r);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s GADGETFS-EP0\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    ep0_path = argv[1];
    /* The factory firmware: version 1.00. */
    static const char factory[] = "LABFW\x01\x00 factory image";
    memcpy(firmware, factory, sizeof factory - 1);
    firmware_len = sizeof factory - 1;
    bind_mode(RUNTIME);

    for (;;) {
        int timeout = -1;
        if (pending_mode != -1) {
            long long wait = pending_at - now_ms();
            timeout = wait < 0 ? 0 : (int)wait;
        }
        struct pollfd fds[1] = { { .fd = ep0, .events = POLLIN | POLLOUT } };
        int ready = poll(fds, ep0 < 0 ? 0 : 1, timeout);
        if (ready < 0 && errno != EINTR) { perror("poll"); return 1; }
        if (pending_mode != -1 && now_ms() >= pending_at) {
            int which = pending_mode;
            pending_mode = -1;
            if (which == -2) {
                /* VANISH: gone now, back in runtime mode after the pause (or never). */
                unbind();
                printf("dfu-gadget: vanished\n");
                if (vanish_until > 0) later(RUNTIME, (int)vanish_until);
            } else {
                bind_mode(which);
            }
            continue;
        }
        if (ready > 0 && (fds[0].revents & (POLLIN | POLLOUT)) == POLLOUT) {
            /* gadgetfs waits for the data or status stage of a request whose setup event this
             * process has not read and cannot read before that stage: the one that came while a
             * DNLOAD's data was being read (that read ended EIDRM, see lose_block). Answered
             * empty if it is IN, stalled if it is OUT, without being seen: the host sees it
             * fail at once instead of waiting for ever (dfu-util would), and what it asks next
             * is answered as usual. */
            uint8_t dummy;
            (void)!write(ep0, &dummy, 0);
            printf("dfu-gadget: a request after a lost block failed unseen\n");
            continue;
        }
        if (ready <= 0 || !(fds[0].revents & POLLIN)) continue;
        struct usb_gadgetfs_event events[8];
        ssize_t n = read(ep0, events, sizeof events);
        if (n < 0) {
            if (errno != EINTR && errno != EAGAIN) { perror("ep0 read"); usleep(10000); }
            continue;
        }
        for (size_t i = 0; i < (size_t)n / sizeof events[0]; i++) {
            switch (events[i].type) {
            case GADGETFS_SETUP: setup(ep0, &events[i].u.setup); break;
            case GADGETFS_DISCONNECT:
                /* A USB reset while waiting for one after the manifestation: back to runtime. */
                if (mode == DFU && (state == MANIFEST || state == MANIFEST_WAIT_RESET)) later(RUNTIME, 0);
                break;
            default: break;
            }
        }
    }
}
