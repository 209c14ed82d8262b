/*
 * A device handle's URB channel: opening it (the upgrade, then HELLO), the messages that
 * come on it, and the device operations (claims, settings, resets, kernel drivers) as
 * OPERATION/RESULT round trips. docs/urb-channel.md is the protocol.
 */
#include "usbhttpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { KIND_OPERATION = 0x03, KIND_HELLO = 0x81, KIND_COMPLETE = 0x82, KIND_RESULT = 0x83, KIND_EVENT = 0x84 };

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static const struct hd_config *config_of(struct libusb_device_handle *handle)
{
	return &HD_CONTEXT(HANDLE_CTX(handle))->config;
}

static int read_hello(struct libusb_device_handle *handle)
{
	struct hd_handle *h = usbi_get_device_handle_priv(handle);
	long deadline = now_ms() + config_of(handle)->timeout_ms;
	const uint8_t *m;
	size_t n;
	int r;
	while ((r = hd_ws_next(&h->ws, &m, &n)) == 0) {
		long left = deadline - now_ms();
		if (left <= 0 || !hd_ws_wait(&h->ws, left))
			return LIBUSB_ERROR_TIMEOUT;
		if (hd_ws_receive(&h->ws) < 0 && h->ws.in_length == h->ws.in_start)
			return LIBUSB_ERROR_IO;
	}
	if (r < 0 || n < 32 || m[0] != KIND_HELLO || m[1] != 1)
		return LIBUSB_ERROR_IO;
	h->hello.max_in_flight = hd_le32(m + 4);
	h->hello.max_transfer = hd_le32(m + 8);
	h->hello.max_message = hd_le32(m + 12);
	h->hello.bus = m[16];
	h->hello.address = m[17];
	h->hello.speed = m[18];
	h->hello.configuration = m[19];
	h->hello.max_timeout = hd_le32(m + 20);
	h->hello.max_bytes_in_flight = hd_le32(m + 24);
	h->hello.scope = m[28];
	if (!h->hello.max_in_flight || h->hello.max_transfer < 4096 || !h->hello.max_bytes_in_flight)
		return LIBUSB_ERROR_IO;
	return 0;
}

int hd_channel_open(struct libusb_device_handle *handle)
{
	struct hd_handle *h = usbi_get_device_handle_priv(handle);
	struct hd_device *hd = usbi_get_device_priv(handle->dev);
	const struct hd_config *config = config_of(handle);
	char path[200], headers[2400] = "", problem[600] = "";
	size_t used = 0;

	memset(h, 0, sizeof(*h));
	usbi_mutex_init(&h->lock);
	list_init(&h->in_flight);
	list_init(&h->waiting);
	list_init(&h->operations);
	h->next_id = 1;

	char *escaped = curl_easy_escape(NULL, hd->id, 0);
	snprintf(path, sizeof(path), "/v1/devices/%s/urb", escaped ? escaped : "");
	curl_free(escaped);
	if (config->token)
		used += (size_t)snprintf(headers + used, sizeof(headers) - used, "Authorization: Bearer %.1000s\r\n", config->token);
	if (config->lease)
		used += (size_t)snprintf(headers + used, sizeof(headers) - used, "X-USB-Lease: %.300s\r\n", config->lease);
	snprintf(headers + used, sizeof(headers) - used, "X-USB-Device-Address: %u\r\n", handle->dev->device_address);

	int r = hd_ws_connect(&h->ws, config, path, headers, problem, sizeof(problem));
	if (!r && (r = read_hello(handle)) != 0)
		snprintf(problem, sizeof(problem), "%s: no HELLO on the URB channel", hd->id);
	if (!r)
		r = usbi_add_event_source(HANDLE_CTX(handle), h->ws.fd, POLLIN);
	if (r) {
		if (r == LIBUSB_ERROR_NO_DEVICE)   /* gone since the list: libusb's usual answer says it */
			usbi_dbg(HANDLE_CTX(handle), "opening %s: %s", hd->id, problem);
		else
			hd_say(config, "opening %s: %s", hd->id, problem);
		hd_ws_close(&h->ws);
		usbi_mutex_destroy(&h->lock);
		return r;
	}
	h->source_added = 1;
	hd->configuration = h->hello.configuration;
	return 0;
}

void hd_channel_close(struct libusb_device_handle *handle)
{
	struct hd_handle *h = usbi_get_device_handle_priv(handle);
	if (h->source_added)
		usbi_remove_event_source(HANDLE_CTX(handle), h->ws.fd);
	h->source_added = 0;
	hd_ws_close(&h->ws);   /* the daemon cancels what is in flight and gives back the claims */
	usbi_mutex_destroy(&h->lock);
}

/* --- operations --- */

static void handle_result(struct libusb_device_handle *handle, const uint8_t *m, size_t n)
{
	struct hd_handle *h = usbi_get_device_handle_priv(handle);
	if (n < 16)
		return;
	uint32_t id = hd_le32(m + 4);
	usbi_mutex_lock(&h->lock);
	struct hd_operation *op;
	for_each_helper(op, &h->operations, struct hd_operation) {
		if (op->id != id)
			continue;
		list_del(&op->list);
		op->error = (int32_t)hd_le32(m + 8);
		op->value = (int32_t)hd_le32(m + 12);
		snprintf(op->reason, sizeof(op->reason), "%.*s", (int)(n - 16 < 255 ? n - 16 : 255), (const char *)m + 16);
		op->done = 1;
		break;
	}
	usbi_mutex_unlock(&h->lock);
}

static void handle_event(struct libusb_device_handle *handle, const uint8_t *m, size_t n)
{
	struct hd_handle *h = usbi_get_device_handle_priv(handle);
	if (n < 8 || m[1] != 1)       /* DEVICE_BACK: a new instance, for a new handle */
		return;
	/* DEVICE_GONE: what was in flight completed NO_DEVICE first; what waits here does too. */
	struct list_head held;
	list_init(&held);
	usbi_mutex_lock(&h->lock);
	h->gone = 1;
	while (!list_empty(&h->waiting)) {
		struct hd_transfer *t = list_first_entry(&h->waiting, struct hd_transfer, list);
		list_del(&t->list);
		t->local_status = LIBUSB_TRANSFER_NO_DEVICE;
		list_add_tail(&t->list, &held);
	}
	usbi_mutex_unlock(&h->lock);
	while (!list_empty(&held)) {
		struct hd_transfer *t = list_first_entry(&held, struct hd_transfer, list);
		list_del(&t->list);
		usbi_signal_transfer_completion(t->itransfer);
	}
}

int hd_channel_service(struct libusb_device_handle *handle)
{
	struct hd_handle *h = usbi_get_device_handle_priv(handle);
	int received = hd_ws_receive(&h->ws);
	const uint8_t *m;
	size_t n;
	int r;
	while ((r = hd_ws_next(&h->ws, &m, &n)) == 1) {
		if (n == 0)
			continue;
		switch (m[0]) {
		case KIND_COMPLETE: hd_complete(handle, m, n); break;
		case KIND_RESULT: handle_result(handle, m, n); break;
		case KIND_EVENT: handle_event(handle, m, n); break;
		default: break;
		}
	}
	return r < 0 || received == LIBUSB_ERROR_IO ? LIBUSB_ERROR_IO : 0;
}

void hd_channel_broken(struct libusb_device_handle *handle)
{
	struct hd_handle *h = usbi_get_device_handle_priv(handle);
	if (h->broken)
		return;
	h->broken = 1;
	if (h->source_added)
		usbi_remove_event_source(HANDLE_CTX(handle), h->ws.fd);
	h->source_added = 0;
	hd_say(config_of(handle), "%s: the URB channel ended",
		((struct hd_device *)usbi_get_device_priv(handle->dev))->id);
	usbi_mutex_lock(&h->lock);
	struct hd_operation *op;
	while (!list_empty(&h->operations)) {
		op = list_first_entry(&h->operations, struct hd_operation, list);
		list_del(&op->list);
		op->error = LIBUSB_ERROR_NO_DEVICE;
		op->done = 1;
	}
	usbi_mutex_unlock(&h->lock);
	usbi_handle_disconnect(handle);   /* every transfer in flight: NO_DEVICE */
}

/* Waits for the RESULT: through libusb's event handling when another thread may be doing
 * it, by reading the channel itself when this thread is the one handling events (an
 * operation from a transfer's callback). */
static int wait_for(struct libusb_device_handle *handle, struct hd_operation *op, long timeout_ms)
{
	struct libusb_context *ctx = HANDLE_CTX(handle);
	struct hd_handle *h = usbi_get_device_handle_priv(handle);
	long deadline = now_ms() + timeout_ms;
	while (!op->done) {
		long left = deadline - now_ms();
		if (left <= 0)
			break;
		if (usbi_handling_events(ctx)) {
			if (h->broken)
				break;
			if (hd_ws_wait(&h->ws, left) && hd_channel_service(handle) < 0)
				hd_channel_broken(handle);
		} else {
			struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
			int r = libusb_handle_events_timeout_completed(ctx, &tv, &op->done);
			if (r < 0 && r != LIBUSB_ERROR_INTERRUPTED && r != LIBUSB_ERROR_BUSY)
				break;
		}
	}
	if (op->done)
		return 0;
	usbi_mutex_lock(&h->lock);
	if (!op->done)
		list_del(&op->list);
	usbi_mutex_unlock(&h->lock);
	return op->done ? 0 : (h->broken ? LIBUSB_ERROR_NO_DEVICE : LIBUSB_ERROR_TIMEOUT);
}

int hd_operation(struct libusb_device_handle *handle, uint8_t kind, int32_t a, int32_t b,
	const char *tail)
{
	struct hd_handle *h = usbi_get_device_handle_priv(handle);
	struct hd_operation op = { .op = kind };
	uint8_t message[16] = { KIND_OPERATION, kind };
	size_t tail_length = tail ? strlen(tail) : 0;

	usbi_mutex_lock(&h->lock);
	if (h->broken || h->gone) {
		usbi_mutex_unlock(&h->lock);
		return LIBUSB_ERROR_NO_DEVICE;
	}
	op.id = h->next_id++;
	hd_put32(message + 4, op.id);
	hd_put32(message + 8, (uint32_t)a);
	hd_put32(message + 12, (uint32_t)b);
	list_add_tail(&op.list, &h->operations);
	int r = hd_ws_send(&h->ws, message, sizeof(message), (const uint8_t *)tail, tail_length);
	if (r)
		list_del(&op.list);
	usbi_mutex_unlock(&h->lock);
	if (r)
		return LIBUSB_ERROR_IO;

	/* A reset or a configuration may take the device seconds; the daemon's own limits end them. */
	r = wait_for(handle, &op, config_of(handle)->timeout_ms * 2);
	if (r)
		return r;
	if (op.error < 0 && op.reason[0])
		hd_refused(HANDLE_CTX(handle), ((struct hd_device *)usbi_get_device_priv(handle->dev))->id,
			op.reason, strlen(op.reason));
	return op.error < 0 ? op.error : op.value;
}
