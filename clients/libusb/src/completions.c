/*
 * A COMPLETE message (docs/urb-channel.md): its results and IN data put into the libusb
 * transfer it ends, which libusb then completes. Every length is checked against what the
 * transfer asked for: a daemon's message never writes outside the transfer's buffer.
 */
#include "usbhttpd.h"

#include <string.h>

static struct hd_transfer *take_in_flight(struct hd_handle *h, uint32_t id)
{
	struct hd_transfer *t;
	for_each_helper(t, &h->in_flight, struct hd_transfer) {
		if (t->id != id)
			continue;
		list_del(&t->list);
		h->count_in_flight--;
		h->bytes_in_flight -= t->piece;
		return t;
	}
	return NULL;
}

/* An isochronous transfer's packets: each one's data at its own place in the buffer. */
static int iso_results(struct libusb_transfer *transfer, uint16_t packets, const uint8_t *results,
	const uint8_t *data, size_t data_length, int with_data)
{
	if (packets != transfer->num_iso_packets)
		return LIBUSB_ERROR_IO;
	size_t place = 0, taken = 0;
	for (int i = 0; i < transfer->num_iso_packets; i++) {
		struct libusb_iso_packet_descriptor *p = &transfer->iso_packet_desc[i];
		uint32_t actual = hd_le32(results + 8 * i), status = hd_le32(results + 8 * i + 4);
		if (actual > p->length)
			return LIBUSB_ERROR_IO;
		p->actual_length = actual;
		p->status = status <= LIBUSB_TRANSFER_OVERFLOW ? (enum libusb_transfer_status)status : LIBUSB_TRANSFER_ERROR;
		if (with_data) {
			if (taken + actual > data_length)
				return LIBUSB_ERROR_IO;
			memcpy(transfer->buffer + place, data + taken, actual);
			taken += actual;
		}
		place += p->length;
	}
	return with_data && taken != data_length ? LIBUSB_ERROR_IO : 0;
}

void hd_complete(struct libusb_device_handle *handle, const uint8_t *m, size_t n)
{
	struct hd_handle *h = usbi_get_device_handle_priv(handle);
	if (n < 16)
		return;
	uint8_t status = m[1];
	uint16_t packets = hd_le16(m + 2);
	uint32_t id = hd_le32(m + 4), actual = hd_le32(m + 8);
	int32_t error = (int32_t)hd_le32(m + 12);
	size_t results = 16 + 8 * (size_t)packets;
	if (results > n)
		return;

	usbi_mutex_lock(&h->lock);
	struct hd_transfer *t = take_in_flight(h, id);
	if (!t) {                          /* not ours: a daemon out of step; nothing to end */
		usbi_mutex_unlock(&h->lock);
		return;
	}
	struct usbi_transfer *itransfer = t->itransfer;
	struct libusb_transfer *transfer = USBI_TRANSFER_TO_LIBUSB_TRANSFER(itransfer);
	int in = transfer->type == LIBUSB_TRANSFER_TYPE_CONTROL ? (transfer->buffer[0] & 0x80) != 0
		: (transfer->endpoint & 0x80) != 0;
	const uint8_t *data = m + results;
	size_t data_length = n - results;
	int bad = actual > t->piece;

	if (!bad && transfer->type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS) {
		bad = iso_results(transfer, packets, m + 16, data, data_length, in && error == 0) != 0;
		if (!bad)
			itransfer->transferred = (int)actual;
	} else if (!bad) {
		size_t at = transfer->type == LIBUSB_TRANSFER_TYPE_CONTROL ? LIBUSB_CONTROL_SETUP_SIZE : t->offset;
		if (in && error == 0) {
			bad = data_length != actual;
			if (!bad)
				memcpy(transfer->buffer + at, data, actual);
		}
		if (!bad)
			itransfer->transferred = (int)(t->offset + actual);
	}

	/* A whole piece of a longer bulk transfer: the next piece, unless it is being cancelled. */
	if (!bad && status == LIBUSB_TRANSFER_COMPLETED && actual == t->piece && !t->cancelling &&
	    transfer->type != LIBUSB_TRANSFER_TYPE_CONTROL && transfer->type != LIBUSB_TRANSFER_TYPE_ISOCHRONOUS &&
	    t->offset + t->piece < (uint32_t)transfer->length && !h->gone) {
		t->offset += t->piece;
		uint32_t left = (uint32_t)transfer->length - t->offset;
		t->piece = left < h->hello.max_transfer ? left : h->hello.max_transfer;
		list_add(&t->list, &h->waiting);   /* first: it goes before anything submitted after it */
		hd_send_waiting(handle);
		usbi_mutex_unlock(&h->lock);
		return;
	}
	hd_send_waiting(handle);
	int cancelling = t->cancelling;
	usbi_mutex_unlock(&h->lock);

	if (bad) {
		usbi_handle_transfer_completion(itransfer, LIBUSB_TRANSFER_ERROR);
		return;
	}
	if (error != 0)
		hd_refused(HANDLE_CTX(handle), ((struct hd_device *)usbi_get_device_priv(handle->dev))->id,
			(const char *)data, data_length);
	if (status == LIBUSB_TRANSFER_CANCELLED && cancelling)
		usbi_handle_transfer_cancellation(itransfer);   /* TIMED_OUT when libusb's timeout did it */
	else
		usbi_handle_transfer_completion(itransfer, status <= LIBUSB_TRANSFER_OVERFLOW
			? (enum libusb_transfer_status)status : LIBUSB_TRANSFER_ERROR);
}
