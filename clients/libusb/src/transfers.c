/*
 * Transfers on the URB channel: a SUBMIT each (a bulk or interrupt transfer over the
 * daemon's max_transfer in pieces, one after another), held here while the channel's
 * max_in_flight or max_bytes_in_flight is reached, a CANCEL for libusb_cancel_transfer, and
 * the COMPLETE that ends each. Timeouts are libusb's own (it cancels): SUBMITs carry none.
 */
#include "usbhttpd.h"

#include <stdio.h>
#include <string.h>

enum { KIND_SUBMIT = 0x01, KIND_CANCEL = 0x02 };

static struct hd_transfer *priv_of(struct usbi_transfer *itransfer)
{
	return usbi_get_transfer_priv(itransfer);
}

static int is_out(struct libusb_transfer *transfer)
{
	if (transfer->type == LIBUSB_TRANSFER_TYPE_CONTROL)
		return !(transfer->buffer[0] & 0x80);
	return !(transfer->endpoint & 0x80);
}

/* The bytes this SUBMIT moves (a control transfer's: its data stage). */
static uint32_t piece_length(struct hd_handle *h, struct libusb_transfer *transfer, uint32_t offset)
{
	if (transfer->type == LIBUSB_TRANSFER_TYPE_CONTROL)
		return hd_le16(transfer->buffer + 6);
	if (transfer->type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS) {
		uint32_t total = 0;
		for (int i = 0; i < transfer->num_iso_packets; i++)
			total += transfer->iso_packet_desc[i].length;
		return total;
	}
	uint32_t left = (uint32_t)transfer->length - offset;
	return left < h->hello.max_transfer ? left : h->hello.max_transfer;
}

/* Sends the SUBMIT for t's next piece. With h->lock held. */
static int send_submit(struct hd_handle *h, struct hd_transfer *t)
{
	struct libusb_transfer *transfer = USBI_TRANSFER_TO_LIBUSB_TRANSFER(t->itransfer);
	uint8_t head[24 + 8 + 4 * 128] = { KIND_SUBMIT };
	size_t head_length = 24;
	int last = t->offset + t->piece >= (uint32_t)transfer->length;

	t->id = h->next_id++;
	head[1] = transfer->type;
	head[2] = transfer->type == LIBUSB_TRANSFER_TYPE_CONTROL ? 0 : transfer->endpoint;
	head[3] = (transfer->flags & LIBUSB_TRANSFER_SHORT_NOT_OK ? 1 : 0) |
		(last && transfer->flags & LIBUSB_TRANSFER_ADD_ZERO_PACKET ? 2 : 0);
	hd_put32(head + 4, t->id);
	hd_put32(head + 8, t->piece);
	if (transfer->type == LIBUSB_TRANSFER_TYPE_CONTROL) {
		memcpy(head + 24, transfer->buffer, LIBUSB_CONTROL_SETUP_SIZE);
		head_length += LIBUSB_CONTROL_SETUP_SIZE;
	} else if (transfer->type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS) {
		hd_put16(head + 16, (uint16_t)transfer->num_iso_packets);
		for (int i = 0; i < transfer->num_iso_packets; i++)
			hd_put32(head + 24 + 4 * i, transfer->iso_packet_desc[i].length);
		head_length += 4 * (size_t)transfer->num_iso_packets;
	}
	const uint8_t *data = NULL;
	size_t data_length = 0;
	if (is_out(transfer)) {
		data = transfer->buffer + (transfer->type == LIBUSB_TRANSFER_TYPE_CONTROL ? LIBUSB_CONTROL_SETUP_SIZE : t->offset);
		data_length = t->piece;
	}
	int r = hd_ws_send(&h->ws, head, head_length, data, data_length);
	if (r)
		return r;
	list_add_tail(&t->list, &h->in_flight);
	h->count_in_flight++;
	h->bytes_in_flight += t->piece;
	return 0;
}

static int has_room(struct hd_handle *h, uint32_t length)
{
	return h->count_in_flight < h->hello.max_in_flight &&
		(h->count_in_flight == 0 || h->bytes_in_flight + length <= h->hello.max_bytes_in_flight);
}

void hd_send_waiting(struct libusb_device_handle *handle)
{
	struct hd_handle *h = usbi_get_device_handle_priv(handle);
	while (!list_empty(&h->waiting) && !h->broken) {
		struct hd_transfer *t = list_first_entry(&h->waiting, struct hd_transfer, list);
		if (!has_room(h, t->piece))
			return;
		list_del(&t->list);
		if (send_submit(h, t)) {
			t->local_status = LIBUSB_TRANSFER_ERROR;   /* the connection broke: it is ending */
			usbi_signal_transfer_completion(t->itransfer);
		}
	}
}

int hd_submit_transfer(struct usbi_transfer *itransfer)
{
	struct libusb_transfer *transfer = USBI_TRANSFER_TO_LIBUSB_TRANSFER(itransfer);
	struct hd_handle *h = usbi_get_device_handle_priv(transfer->dev_handle);
	struct hd_transfer *t = priv_of(itransfer);

	if (itransfer->stream_id)
		return LIBUSB_ERROR_NOT_SUPPORTED;   /* USB 3 bulk streams: not on the channel */
	if (transfer->type == LIBUSB_TRANSFER_TYPE_CONTROL && transfer->length < (int)LIBUSB_CONTROL_SETUP_SIZE)
		return LIBUSB_ERROR_INVALID_PARAM;
	if (transfer->type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS &&
	    (transfer->num_iso_packets < 1 || transfer->num_iso_packets > 128))
		return LIBUSB_ERROR_INVALID_PARAM;
	if (transfer->type == LIBUSB_TRANSFER_TYPE_BULK_STREAM)
		return LIBUSB_ERROR_NOT_SUPPORTED;

	memset(t, 0, sizeof(*t));
	t->itransfer = itransfer;
	t->local_status = -1;
	t->piece = piece_length(h, transfer, 0);
	uint32_t room = (uint32_t)transfer->length -
		(transfer->type == LIBUSB_TRANSFER_TYPE_CONTROL ? LIBUSB_CONTROL_SETUP_SIZE : 0);
	if (t->piece > room || t->piece > h->hello.max_transfer)
		return LIBUSB_ERROR_INVALID_PARAM;

	usbi_mutex_lock(&h->lock);
	int r = 0;
	if (h->broken || h->gone)
		r = LIBUSB_ERROR_NO_DEVICE;
	else if (!list_empty(&h->waiting) || !has_room(h, t->piece))
		list_add_tail(&t->list, &h->waiting);   /* in order, after those held already */
	else if (send_submit(h, t))
		r = LIBUSB_ERROR_IO;
	usbi_mutex_unlock(&h->lock);
	return r;
}

static int in_list(struct list_head *list, struct hd_transfer *wanted)
{
	struct hd_transfer *t;
	for_each_helper(t, list, struct hd_transfer)
		if (t == wanted)
			return 1;
	return 0;
}

int hd_cancel_transfer(struct usbi_transfer *itransfer)
{
	struct libusb_transfer *transfer = USBI_TRANSFER_TO_LIBUSB_TRANSFER(itransfer);
	struct hd_handle *h = usbi_get_device_handle_priv(transfer->dev_handle);
	struct hd_transfer *t = priv_of(itransfer);
	int r = 0;

	usbi_mutex_lock(&h->lock);
	if (in_list(&h->waiting, t)) {
		list_del(&t->list);
		t->local_status = LIBUSB_TRANSFER_CANCELLED;
		usbi_signal_transfer_completion(itransfer);   /* completes from handle_events, as it must */
	} else if (in_list(&h->in_flight, t)) {
		uint8_t cancel[8] = { KIND_CANCEL };
		hd_put32(cancel + 4, t->id);
		t->cancelling = 1;
		if (hd_ws_send(&h->ws, cancel, sizeof(cancel), NULL, 0))
			r = LIBUSB_ERROR_NO_DEVICE;
	} else {
		r = LIBUSB_ERROR_NOT_FOUND;
	}
	usbi_mutex_unlock(&h->lock);
	return r;
}

void hd_clear_transfer_priv(struct usbi_transfer *itransfer)
{
	struct libusb_transfer *transfer = USBI_TRANSFER_TO_LIBUSB_TRANSFER(itransfer);
	struct hd_handle *h = usbi_get_device_handle_priv(transfer->dev_handle);
	struct hd_transfer *t = priv_of(itransfer);
	usbi_mutex_lock(&h->lock);
	if (in_list(&h->in_flight, t)) {
		list_del(&t->list);
		h->count_in_flight--;
		h->bytes_in_flight -= t->piece;
	} else if (in_list(&h->waiting, t)) {
		list_del(&t->list);
	}
	usbi_mutex_unlock(&h->lock);
}

int hd_handle_transfer_completion(struct usbi_transfer *itransfer)
{
	struct hd_transfer *t = priv_of(itransfer);
	if (t->local_status == LIBUSB_TRANSFER_CANCELLED)
		return usbi_handle_transfer_cancellation(itransfer);
	return usbi_handle_transfer_completion(itransfer, (enum libusb_transfer_status)t->local_status);
}

int hd_handle_events(struct libusb_context *ctx, void *event_data, unsigned int count,
	unsigned int num_ready)
{
	struct pollfd *fds = event_data;
	usbi_mutex_lock(&ctx->open_devs_lock);
	for (unsigned int n = 0; n < count && num_ready > 0; n++) {
		if (!fds[n].revents)
			continue;
		num_ready--;
		struct libusb_device_handle *handle;
		struct hd_handle *h = NULL;
		for_each_open_device(ctx, handle) {
			struct hd_handle *candidate = usbi_get_device_handle_priv(handle);
			if (candidate->source_added && candidate->ws.fd == fds[n].fd) {
				h = candidate;
				break;
			}
		}
		if (!h)
			continue;
		if (hd_channel_service(handle) < 0)
			hd_channel_broken(handle);
	}
	usbi_mutex_unlock(&ctx->open_devs_lock);
	return 0;
}
