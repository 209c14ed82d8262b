/*
 * A WebSocket client (RFC 6455) for the URB channel. libcurl makes the connection
 * (CURLOPT_CONNECT_ONLY: plain TCP, or TLS with its certificate checks) and this file speaks
 * the upgrade and the frames through curl_easy_send / curl_easy_recv. The socket stays
 * non-blocking: it is one of libusb's event sources, and waits are poll()s with a limit.
 */
#include "usbhttpd.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int reserve(uint8_t **buffer, size_t *capacity, size_t needed)
{
	if (needed <= *capacity)
		return 0;
	size_t grown = *capacity ? *capacity : 65536;
	while (grown < needed)
		grown *= 2;
	uint8_t *moved = realloc(*buffer, grown);
	if (!moved)
		return LIBUSB_ERROR_NO_MEM;
	*buffer = moved;
	*capacity = grown;
	return 0;
}

static int poll_for(struct hd_ws *ws, short events, long timeout_ms)
{
	struct pollfd pfd = { .fd = ws->fd, .events = events };
	int r = poll(&pfd, 1, (int)timeout_ms);
	return r > 0 ? 1 : 0;
}

int hd_ws_wait(struct hd_ws *ws, long timeout_ms)
{
	return poll_for(ws, POLLIN, timeout_ms);
}

int hd_ws_send_raw(struct hd_ws *ws, const uint8_t *data, size_t length)
{
	long last_progress = now_ms();
	while (length > 0) {
		size_t sent = 0;
		CURLcode rc = curl_easy_send(ws->curl, data, length, &sent);
		if (rc == CURLE_OK && sent > 0) {
			data += sent;
			length -= sent;
			last_progress = now_ms();
			continue;
		}
		if (rc != CURLE_AGAIN && rc != CURLE_OK)
			return LIBUSB_ERROR_IO;
		long left = ws->timeout_ms - (now_ms() - last_progress);
		if (left <= 0)
			return LIBUSB_ERROR_IO;
		poll_for(ws, POLLOUT, left);
	}
	return 0;
}

static uint32_t next_mask(struct hd_ws *ws)
{
	uint64_t x = ws->mask_state;
	x ^= x << 13; x ^= x >> 7; x ^= x << 17;
	ws->mask_state = x;
	return (uint32_t)(x >> 16);
}

/* One frame (FIN set), masked as a client must; the bytes of head then body. */
static int send_frame(struct hd_ws *ws, uint8_t opcode, const uint8_t *head, size_t head_length,
	const uint8_t *body, size_t body_length)
{
	size_t length = head_length + body_length, header = 2 + 4;
	if (length > 65535)
		header += 8;
	else if (length > 125)
		header += 2;
	if (reserve(&ws->out, &ws->out_capacity, header + length))
		return LIBUSB_ERROR_NO_MEM;
	uint8_t *p = ws->out;
	*p++ = 0x80 | opcode;
	if (length > 65535) {
		*p++ = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			*p++ = (uint8_t)((uint64_t)length >> (8 * i));
	} else if (length > 125) {
		*p++ = 0x80 | 126;
		*p++ = (uint8_t)(length >> 8);
		*p++ = (uint8_t)length;
	} else {
		*p++ = (uint8_t)(0x80 | length);
	}
	uint32_t key = next_mask(ws);
	uint8_t k[4] = { (uint8_t)key, (uint8_t)(key >> 8), (uint8_t)(key >> 16), (uint8_t)(key >> 24) };
	memcpy(p, k, 4);
	p += 4;
	if (head_length)
		memcpy(p, head, head_length);
	if (body_length)
		memcpy(p + head_length, body, body_length);
	for (size_t i = 0; i < length; i++)
		p[i] ^= k[i & 3];
	return hd_ws_send_raw(ws, ws->out, header + length);
}

int hd_ws_send(struct hd_ws *ws, const uint8_t *head, size_t head_length,
	const uint8_t *body, size_t body_length)
{
	usbi_mutex_lock(&ws->lock);
	int r = ws->ended ? LIBUSB_ERROR_IO : send_frame(ws, 0x2, head, head_length, body, body_length);
	if (r && !ws->ended) {
		/* Half a frame may have gone: the connection is over. Shut down, the socket reads
		 * as ended, and the reader (handle_events) fails what is in flight. */
		ws->ended = 1;
		shutdown(ws->fd, SHUT_RDWR);
	}
	usbi_mutex_unlock(&ws->lock);
	return r;
}

int hd_ws_receive(struct hd_ws *ws)
{
	if (ws->ended)
		return LIBUSB_ERROR_IO;
	if (ws->in_start > 0 && ws->in_start == ws->in_length) {
		ws->in_start = ws->in_length = 0;
	} else if (ws->in_start > ws->in_capacity / 2) {
		memmove(ws->in, ws->in + ws->in_start, ws->in_length - ws->in_start);
		ws->in_length -= ws->in_start;
		ws->in_start = 0;
	}
	usbi_mutex_lock(&ws->lock);
	int r = 0;
	for (;;) {
		if (reserve(&ws->in, &ws->in_capacity, ws->in_length + 65536)) {
			r = LIBUSB_ERROR_NO_MEM;
			break;
		}
		size_t got = 0;
		CURLcode rc = curl_easy_recv(ws->curl, ws->in + ws->in_length,
			ws->in_capacity - ws->in_length, &got);
		if (rc == CURLE_AGAIN)
			break;
		if (rc != CURLE_OK || got == 0) {   /* an error, or the daemon hung up */
			ws->ended = 1;
			r = LIBUSB_ERROR_IO;
			break;
		}
		ws->in_length += got;
	}
	usbi_mutex_unlock(&ws->lock);
	return r;
}

int hd_ws_next(struct hd_ws *ws, const uint8_t **message, size_t *length)
{
	for (;;) {
		const uint8_t *p = ws->in + ws->in_start;
		size_t have = ws->in_length - ws->in_start;
		if (have < 2)
			return ws->ended ? LIBUSB_ERROR_IO : 0;
		uint8_t fin = p[0] & 0x80, opcode = p[0] & 0x0f;
		if ((p[0] & 0x70) || (p[1] & 0x80))     /* reserved bits, or a masked frame */
			goto broken;
		uint64_t size = p[1] & 0x7f;
		size_t header = 2;
		if (size == 126) {
			if (have < 4)
				return 0;
			size = (uint64_t)p[2] << 8 | p[3];
			header = 4;
		} else if (size == 127) {
			if (have < 10)
				return 0;
			size = 0;
			for (int i = 0; i < 8; i++)
				size = size << 8 | p[2 + i];
			header = 10;
		}
		if (size > (64u << 20))                /* more than any message the channel has */
			goto broken;
		if (have < header + size)
			return 0;
		const uint8_t *payload = p + header;
		ws->in_start += header + (size_t)size;
		switch (opcode) {
		case 0x8:                                /* close: answer it, and it is over */
			usbi_mutex_lock(&ws->lock);
			send_frame(ws, 0x8, payload, size >= 2 ? 2 : 0, NULL, 0);
			ws->ended = 1;
			usbi_mutex_unlock(&ws->lock);
			return LIBUSB_ERROR_IO;
		case 0x9:                                /* ping: pong */
			usbi_mutex_lock(&ws->lock);
			if (send_frame(ws, 0xA, payload, (size_t)size, NULL, 0))
				ws->ended = 1;
			usbi_mutex_unlock(&ws->lock);
			continue;
		case 0xA:
			continue;
		case 0x2:
		case 0x0:
			if ((opcode == 0x2) == (ws->fragmented != 0))
				goto broken;
			if (fin && !ws->fragmented) {
				*message = payload;
				*length = (size_t)size;
				return 1;
			}
			if (reserve(&ws->message, &ws->message_capacity, ws->message_length + (size_t)size))
				goto broken;
			memcpy(ws->message + ws->message_length, payload, (size_t)size);
			ws->message_length += (size_t)size;
			ws->fragmented = !fin;
			if (fin) {
				*message = ws->message;
				*length = ws->message_length;
				ws->message_length = 0;
				return 1;
			}
			continue;
		default:                                 /* text, or unknown */
			goto broken;
		}
	}
broken:
	ws->ended = 1;
	return LIBUSB_ERROR_IO;
}

void hd_ws_close(struct hd_ws *ws)
{
	if (ws->curl) {
		usbi_mutex_lock(&ws->lock);
		if (!ws->ended) {
			const uint8_t normal[2] = { 0x03, 0xe8 };   /* 1000 */
			long saved = ws->timeout_ms;
			ws->timeout_ms = 1000;
			send_frame(ws, 0x8, normal, 2, NULL, 0);
			ws->timeout_ms = saved;
		}
		usbi_mutex_unlock(&ws->lock);
		curl_easy_cleanup(ws->curl);
	}
	usbi_mutex_destroy(&ws->lock);
	free(ws->in);
	free(ws->message);
	free(ws->out);
	memset(ws, 0, sizeof(*ws));
	ws->fd = -1;
}
