/*
 * The URB channel's upgrade (RFC 6455 §4.1): the connection libcurl makes, the GET with its
 * Sec-WebSocket-Key, the answer checked (101, the key's Sec-WebSocket-Accept, the protocol
 * usbhttpd.urb.1) or a refusal's problem detail read. The frames are websocket.c's.
 */
#include "usbhttpd.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define HD_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

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
	int r = hd_ws_send_raw(ws, (const uint8_t *)request, (size_t)n);
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

/* hd_ws_connect initializes the lock; hd_ws_close, always called after it, ends it. */
int hd_ws_connect(struct hd_ws *ws, const struct hd_config *config, const char *path,
	const char *headers, char *problem, size_t problem_size)
{
	usbi_mutex_init(&ws->lock);
	int r = connect_and_upgrade(ws, config, path, headers, problem, problem_size);
	if (r)
		ws->ended = 1;   /* nothing to say goodbye to */
	return r;
}

