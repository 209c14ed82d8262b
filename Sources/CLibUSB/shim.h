#ifndef USBHTTPD_CLIBUSB_SHIM_H
#define USBHTTPD_CLIBUSB_SHIM_H
// Only includes and small `static inline` wrappers, each for something Swift
// cannot import from libusb.h as it is.
#include <libusb.h>

/// libusb_set_option is variadic; this is its one-integer form (LIBUSB_OPTION_LOG_LEVEL).
static inline int usbhttpd_libusb_set_option_int(libusb_context *ctx, enum libusb_option option, int value) {
    return libusb_set_option(ctx, option, value);
}

/// libusb_set_option is variadic; this is its no-argument form
/// (LIBUSB_OPTION_USE_USBDK, LIBUSB_OPTION_NO_DEVICE_DISCOVERY).
static inline int usbhttpd_libusb_set_option(libusb_context *ctx, enum libusb_option option) {
    return libusb_set_option(ctx, option);
}

/// struct libusb_transfer ends in a flexible array member (iso_packet_desc[]), which Swift
/// does not import: packet `index` of an isochronous transfer.
static inline struct libusb_iso_packet_descriptor *usbhttpd_libusb_iso_packet(struct libusb_transfer *transfer, int index) {
    return &transfer->iso_packet_desc[index];
}

#endif
