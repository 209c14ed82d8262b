/* open_device: the first device with VID:PID, on bus $BUS when that is set (with USB/IP
 * attached the same device shows twice: on its own bus, held by usbip-host, and on vhci's). */
#include <libusb.h>
#include <stdlib.h>

static libusb_device_handle *open_device(libusb_context *c, uint16_t vid, uint16_t pid) {
    const char *bus = getenv("BUS");
    if (!bus || !*bus) return libusb_open_device_with_vid_pid(c, vid, pid);
    libusb_device **list;
    ssize_t n = libusb_get_device_list(c, &list);
    libusb_device_handle *h = NULL;
    for (ssize_t i = 0; i < n && !h; i++) {
        struct libusb_device_descriptor d;
        if (libusb_get_device_descriptor(list[i], &d) != 0) continue;
        if (d.idVendor == vid && d.idProduct == pid && libusb_get_bus_number(list[i]) == atoi(bus))
            if (libusb_open(list[i], &h) != 0) h = NULL;
    }
    if (n >= 0) libusb_free_device_list(list, 1);
    return h;
}
