/*
 * libusb's OS backend for usbhttpd: the devices a usbhttpd daemon serves, reached through its
 * REST API (the device list, raw descriptors, device events) and its URB channel (one
 * WebSocket per open handle: docs/urb-channel.md) instead of usbfs. Built into libusb's own
 * core (clients/libusb/build), so programs get libusb's exact semantics and this is the only
 * new code.
 *
 * Files: upgrade.c and websocket.c (RFC 6455 over a connection libcurl makes), rest.c (REST requests, the
 * environment), devices.c (the device list, descriptors, hot-plug from the daemon's events),
 * channel.c (the channel's messages, operations), transfers.c (submit, cancel, completions),
 * backend.c (the usbi_os_backend table).
 */
#ifndef USBHTTPD_BACKEND_H
#define USBHTTPD_BACKEND_H

#include "libusbi.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>

/* --- the environment (read once, at libusb_init) --- */

struct hd_config {
	char *url;           /* USBHTTPD_URL without a trailing '/', e.g. http://bench-7:8080 */
	char *token;         /* USBHTTPD_TOKEN: a bearer token, or NULL */
	char *ca_file;       /* USBHTTPD_CA: the CA bundle verifying the daemon's TLS certificate */
	char *lease;         /* USBHTTPD_LEASE: a lease token every channel acts under, or NULL */
	char *filter;        /* "id=…&serial=…&vendor_id=…&product_id=…" from USBHTTPD_DEVICE, _SERIAL,
	                        _VENDOR, _PRODUCT (each escaped), "" for none */
	long timeout_ms;     /* USBHTTPD_TIMEOUT_MS: connecting, a REST request, an operation */
	int quiet;           /* USBHTTPD_QUIET=1: refusals are not written to stderr */
};

int hd_config_load(struct hd_config *config);
void hd_config_free(struct hd_config *config);

/* Writes "libusb-usbhttpd: <what>" to stderr (unless quiet): the daemon's refusals and
 * failures, which libusb's error codes alone would hide. */
void hd_say(const struct hd_config *config, const char *format, ...) PRINTF_FORMAT(2, 3);
/* A refusal's reason ("403 interface-protected: …"): said when it is the daemon's own rule
 * (403 policy or scope, 423 a lease, 429/503 its limits), which a program on the machine
 * itself would never meet; libusb's debug log otherwise (what usbfs would refuse too). */
void hd_refused(struct libusb_context *ctx, const char *device, const char *reason, size_t length);

/* --- REST (rest.c) --- */

struct hd_body {
	char *data;
	size_t length;
	int configuration;   /* the X-USB-Configuration header: active bConfigurationValue, -1 if absent */
};

/* GET url + path on the context's REST connection (kept alive, one request at a time):
 * the HTTP status (0 with `error` set when no answer came). `body` is the caller's to free. */
long hd_rest_get(struct libusb_context *ctx, const char *path, struct hd_body *body,
	char *error, size_t error_size);
/* The `detail` of an application/problem+json body (or the body itself), into `out`. */
void hd_problem_detail(const char *body, size_t length, char *out, size_t size);
/* Applies the TLS and time settings of `config` to a libcurl handle. */
void hd_curl_common(CURL *curl, const struct hd_config *config);
/* A libusb error for an HTTP status the daemon refused with. */
int hd_error_for_status(long status);

/* --- the context (its private data) --- */

struct hd_context {
	struct hd_config config;
	CURL *rest;                  /* REST requests, one at a time (rest_lock) */
	usbi_mutex_t rest_lock;
	usbi_mutex_t sync_lock;      /* one device-list sync at a time */
	pthread_t events_thread;     /* follows /v1/events, syncs the list on each change */
	int events_started;
	CURLM *events_multi;
	volatile int stopping;
};

/* --- devices (devices.c) --- */

struct hd_device {
	char id[64];                 /* the daemon's device id, e.g. "1-2.3" */
	uint8_t *descriptors;        /* the device descriptor, then each configuration in full */
	size_t length;
	uint8_t configuration;       /* active bConfigurationValue, 0 unconfigured */
};

/* Brings the context's device list up to date with the daemon's: new devices connected,
 * gone ones disconnected (hot-plug callbacks follow). */
int hd_sync_devices(struct libusb_context *ctx);
int hd_events_start(struct libusb_context *ctx);
void hd_events_stop(struct libusb_context *ctx);
int hd_config_descriptor(struct libusb_device *dev, uint8_t index, const uint8_t **config);
int hd_config_descriptor_by_value(struct libusb_device *dev, uint8_t value, const uint8_t **config);

/* --- the WebSocket (websocket.c) --- */

struct hd_ws {
	CURL *curl;
	int fd;
	usbi_mutex_t lock;           /* the connection (libcurl's handle, TLS): one sender or reader */
	uint8_t *in;                 /* received, not yet parsed */
	size_t in_start, in_length, in_capacity;
	uint8_t *message;            /* a fragmented message being put together */
	size_t message_length, message_capacity;
	int fragmented;
	uint8_t *out;                /* the frame being sent */
	size_t out_capacity;
	uint64_t mask_state;         /* masking keys: xorshift seeded from getrandom */
	long timeout_ms;
	int ended;                   /* closed or failed: nothing more comes */
};

/* Connects to url + path and upgrades to the URB channel. On a refusal: the libusb error
 * for the daemon's status, its problem's detail in `problem`. */
int hd_ws_connect(struct hd_ws *ws, const struct hd_config *config, const char *path,
	const char *headers, char *problem, size_t problem_size);
/* Sends head + body as one binary message; waits for room (timeout_ms without progress:
 * LIBUSB_ERROR_IO). */
int hd_ws_send(struct hd_ws *ws, const uint8_t *head, size_t head_length,
	const uint8_t *body, size_t body_length);
/* Sends raw bytes (the upgrade's request, a frame); ws->lock held. timeout_ms without
 * progress: LIBUSB_ERROR_IO. */
int hd_ws_send_raw(struct hd_ws *ws, const uint8_t *data, size_t length);
/* Reads whatever the connection has now: 0, or LIBUSB_ERROR_IO when it ended. */
int hd_ws_receive(struct hd_ws *ws);
/* The next whole binary message received: 1 (valid until the next call), 0 none yet,
 * LIBUSB_ERROR_IO the connection ended or broke the protocol. */
int hd_ws_next(struct hd_ws *ws, const uint8_t **message, size_t *length);
/* Waits up to timeout_ms for something to read: 1, 0 on timeout. */
int hd_ws_wait(struct hd_ws *ws, long timeout_ms);
void hd_ws_close(struct hd_ws *ws);

/* --- a device handle: its channel (channel.c, transfers.c) --- */

struct hd_hello {
	uint32_t max_in_flight, max_transfer, max_message, max_timeout, max_bytes_in_flight;
	uint8_t bus, address, speed, configuration, scope;
};

struct hd_handle {
	struct hd_ws ws;
	struct hd_hello hello;
	usbi_mutex_t lock;           /* the lists and counts below; taken before ws.lock */
	struct list_head in_flight;  /* hd_transfer, sent, by id */
	struct list_head waiting;    /* hd_transfer, held back by max_in_flight / max_bytes_in_flight */
	struct list_head operations; /* hd_operation, sent, awaiting their RESULT */
	uint32_t next_id;
	uint32_t count_in_flight;
	uint64_t bytes_in_flight;
	int source_added;            /* the socket is one of libusb's event sources */
	int gone;                    /* DEVICE_GONE came: submits fail with NO_DEVICE */
	int broken;                  /* the connection ended */
};

struct hd_transfer {
	struct list_head list;
	struct usbi_transfer *itransfer;
	uint32_t id;                 /* of the SUBMIT in flight */
	uint32_t offset;             /* a bulk transfer over max_transfer goes in pieces, one at a time */
	uint32_t piece;
	int cancelling;              /* libusb asked for the cancel */
	int local_status;            /* completed here, never sent: its status, else -1 */
};

struct hd_operation {
	struct list_head list;
	uint32_t id;
	uint8_t op;
	int done, error, value;
	char reason[256];
};

int hd_channel_open(struct libusb_device_handle *handle);
void hd_channel_close(struct libusb_device_handle *handle);
/* Runs operation `op` (docs/urb-channel.md) and waits for its RESULT: its value (>= 0) or a
 * libusb error. */
int hd_operation(struct libusb_device_handle *handle, uint8_t op, int32_t a, int32_t b,
	const char *tail);
/* Reads and handles the channel's messages (the reading side of handle_events). */
int hd_channel_service(struct libusb_device_handle *handle);
/* The connection ended: everything in flight fails. Called with ctx->open_devs_lock held. */
void hd_channel_broken(struct libusb_device_handle *handle);
/* Sends what waits while the channel has room. Called with handle->lock held. */
void hd_send_waiting(struct libusb_device_handle *handle);

int hd_submit_transfer(struct usbi_transfer *itransfer);
int hd_cancel_transfer(struct usbi_transfer *itransfer);
void hd_clear_transfer_priv(struct usbi_transfer *itransfer);
int hd_handle_events(struct libusb_context *ctx, void *event_data, unsigned int count,
	unsigned int num_ready);
int hd_handle_transfer_completion(struct usbi_transfer *itransfer);
/* A COMPLETE message, parsed and handed to its transfer. */
void hd_complete(struct libusb_device_handle *handle, const uint8_t *message, size_t length);

/* Little-endian fields of the channel's messages. */
static inline uint16_t hd_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t hd_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void hd_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void hd_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

#define HD_CONTEXT(ctx) ((struct hd_context *)usbi_get_context_priv(ctx))

#endif
