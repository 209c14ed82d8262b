/*
 * A WebSocket client (RFC 6455) for the URB channel. libcurl makes the connection
 * (CURLOPT_CONNECT_ONLY: plain TCP, or TLS with its certificate checks) and this file speaks
 * the upgrade and the frames through curl_easy_send / curl_easy_recv. The socket stays
 * non-blocking: it is one of libusb's event sources, and waits are poll()s with a limit.
 */
#include "usbhttpd.h"

#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#define HD_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

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

/* Sends every byte or fails; called with ws->lock held. */
static int send_all(struct hd_ws *ws, const uint8_t *data, size_t length)
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
	return send_all(ws, ws->out, header + length);
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

/* --- the upgrade (hd_ws_connect initializes the lock; hd_ws_close, always called after it, ends it) --- */

static void base64(const uint8_t *in, int length, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, length);
}

static const char *header_value(const char *head, const char *name, size_t *length)
{
	size_t n = strlen(name);
	for (const char *line = strstr(head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
		const char *start = line + 2;
		if (strncasecmp(start, name, n) == 0 && start[n] == ':') {
			const char *value = start + n + 1;
			while (*value == ' ' || *value == '\t')
				value++;
			const char *end = strstr(value, "\r\n");
			*length = end ? (size_t)(end - value) : strlen(value);
			while (*length && (value[*length - 1] == ' ' || value[*length - 1] == '\t'))
				(*length)--;
			return value;
		}
	}
	return NULL;
}

/* Reads the answer's head (and a refusal's body) with a time limit. */
static int read_answer(struct hd_ws *ws, long deadline, size_t *head_end)
{
	for (;;) {
		if (ws->in_length) {
			uint8_t *end = memmem(ws->in, ws->in_length, "\r\n\r\n", 4);
			if (end) {
				*head_end = (size_t)(end - ws->in) + 4;
				return 0;
			}
		}
		if (ws->in_length > 16384)
			return LIBUSB_ERROR_IO;
		long left = deadline - now_ms();
		if (left <= 0 || !hd_ws_wait(ws, left))
			return LIBUSB_ERROR_TIMEOUT;
		if (hd_ws_receive(ws) && !ws->in_length)
			return LIBUSB_ERROR_IO;
	}
}

static int refusal(struct hd_ws *ws, size_t head_end, long deadline, char *problem, size_t size)
{
	int status = 0;
	sscanf((const char *)ws->in, "HTTP/1.%*d %d", &status);
	size_t n = 0;
	ws->in[head_end - 1] = 0;
	const char *value = header_value((const char *)ws->in, "Content-Length", &n);
	size_t body = value ? strtoul(value, NULL, 10) : 0;
	while (body <= 16384 && ws->in_length < head_end + body && now_ms() < deadline && !ws->ended)
		if (hd_ws_wait(ws, deadline - now_ms()))
			hd_ws_receive(ws);
	if (ws->in_length >= head_end + body && body <= 16384)
		hd_problem_detail((const char *)ws->in + head_end, body, problem, size);
	else
		snprintf(problem, size, "HTTP %d", status);
	return status ? hd_error_for_status(status) : LIBUSB_ERROR_IO;
}

static int connect_and_upgrade(struct hd_ws *ws, const struct hd_config *config, const char *path,
	const char *headers, char *problem, size_t problem_size)
{
	char url[1024], key[32], expected[64], accepted_input[128];
	uint8_t raw_key[16], digest[EVP_MAX_MD_SIZE];
	unsigned int digest_length = 0;

	ws->timeout_ms = config->timeout_ms;
	ws->fd = -1;
	if (getrandom(raw_key, sizeof(raw_key), 0) != sizeof(raw_key) ||
	    getrandom(&ws->mask_state, sizeof(ws->mask_state), 0) != sizeof(ws->mask_state))
		return LIBUSB_ERROR_OTHER;
	ws->mask_state |= 1;
	base64(raw_key, sizeof(raw_key), key);

	snprintf(url, sizeof(url), "%s%s", config->url, path);
	ws->curl = curl_easy_init();
	if (!ws->curl)
		return LIBUSB_ERROR_NO_MEM;
	hd_curl_common(ws->curl, config);
	curl_easy_setopt(ws->curl, CURLOPT_URL, url);
	curl_easy_setopt(ws->curl, CURLOPT_CONNECT_ONLY, 1L);
	CURLcode rc = curl_easy_perform(ws->curl);
	curl_socket_t fd = CURL_SOCKET_BAD;
	if (rc != CURLE_OK || curl_easy_getinfo(ws->curl, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK ||
	    fd == CURL_SOCKET_BAD) {
		snprintf(problem, problem_size, "%s: %s", config->url, curl_easy_strerror(rc));
		return LIBUSB_ERROR_IO;
	}
	ws->fd = fd;

	/* The Host header as libcurl would send it: the URL's host, and its port if given. */
	char host[300] = "";
	CURLU *u = curl_url();
	char *h = NULL, *port = NULL;
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
		curl_url_get(u, CURLUPART_PORT, &port, 0);
		snprintf(host, sizeof(host), "%s%s%s", h, port ? ":" : "", port ? port : "");
	}
	curl_free(h);
	curl_free(port);
	curl_url_cleanup(u);

	char request[4096];
	int n = snprintf(request, sizeof(request),
		"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
		"Sec-WebSocket-Protocol: usbhttpd.urb.1\r\n%s\r\n", path, host, key, headers);
	if (n <= 0 || (size_t)n >= sizeof(request))
		return LIBUSB_ERROR_INVALID_PARAM;
	usbi_mutex_lock(&ws->lock);
	int r = send_all(ws, (const uint8_t *)request, (size_t)n);
	usbi_mutex_unlock(&ws->lock);
	if (r) {
		snprintf(problem, problem_size, "%s: the upgrade could not be sent", config->url);
		return r;
	}

	long deadline = now_ms() + config->timeout_ms;
	size_t head_end = 0;
	r = read_answer(ws, deadline, &head_end);
	if (r) {
		snprintf(problem, problem_size, "%s: no answer to the upgrade", config->url);
		return r;
	}
	if (strncmp((const char *)ws->in, "HTTP/1.1 101", 12) != 0)
		return refusal(ws, head_end, deadline, problem, problem_size);

	/* Sec-WebSocket-Accept must be the key's (RFC 6455 §4.1), the protocol ours. */
	char saved = (char)ws->in[head_end - 1];
	ws->in[head_end - 1] = 0;
	snprintf(accepted_input, sizeof(accepted_input), "%s%s", key, HD_WS_GUID);
	EVP_Digest(accepted_input, strlen(accepted_input), digest, &digest_length, EVP_sha1(), NULL);
	base64(digest, (int)digest_length, expected);
	size_t accept_length = 0, protocol_length = 0;
	const char *accept = header_value((const char *)ws->in, "Sec-WebSocket-Accept", &accept_length);
	const char *protocol = header_value((const char *)ws->in, "Sec-WebSocket-Protocol", &protocol_length);
	int ok = accept && accept_length == strlen(expected) && !memcmp(accept, expected, accept_length) &&
		protocol && protocol_length == 14 && !memcmp(protocol, "usbhttpd.urb.1", 14);
	ws->in[head_end - 1] = (uint8_t)saved;
	if (!ok) {
		snprintf(problem, problem_size, "%s: the upgrade's answer is not the URB channel's", config->url);
		return LIBUSB_ERROR_IO;
	}
	ws->in_start = head_end;
	return 0;
}

int hd_ws_connect(struct hd_ws *ws, const struct hd_config *config, const char *path,
	const char *headers, char *problem, size_t problem_size)
{
	usbi_mutex_init(&ws->lock);
	int r = connect_and_upgrade(ws, config, path, headers, problem, problem_size);
	if (r)
		ws->ended = 1;   /* nothing to say goodbye to */
	return r;
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
