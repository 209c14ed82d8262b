/*
 * Hot-plug: a thread per context follows GET /v1/events (libcurl's multi interface, so that
 * libusb_exit wakes it at once with curl_multi_wakeup) and syncs the device list
 * (devices.c) at each event and each time the stream connects (what changed while it was
 * away). libusb turns the list's changes into the program's hot-plug callbacks.
 */
#include "usbhttpd.h"

#include <stdio.h>
#include <string.h>

struct sse {
	struct libusb_context *ctx;
	char line[8192];
	size_t length;
	int changed;
};

/* Any event but a keep-alive comment means the list may have changed. */
static size_t on_events(char *data, size_t size, size_t count, void *user)
{
	struct sse *sse = user;
	size_t n = size * count;
	for (size_t i = 0; i < n; i++) {
		if (data[i] != '\n') {
			if (sse->length < sizeof(sse->line) - 1)
				sse->line[sse->length++] = data[i];
			continue;
		}
		sse->line[sse->length] = 0;
		if (!strncmp(sse->line, "event:", 6))
			sse->changed = 1;
		sse->length = 0;
	}
	return HD_CONTEXT(sse->ctx)->stopping ? 0 : n;
}

/* A stream that answers 200 is connected: what changed while it was not is synced at once. */
static size_t on_event_header(char *data, size_t size, size_t count, void *user)
{
	struct sse *sse = user;
	size_t n = size * count;
	if (n > 12 && !strncmp(data, "HTTP/", 5) && strstr(data, " 200"))
		sse->changed = 1;
	return n;
}

static void *follow_events(void *arg)
{
	struct libusb_context *ctx = arg;
	struct hd_context *hc = HD_CONTEXT(ctx);
	char url[1400], authorization[1100];
	struct sse sse = { .ctx = ctx };
	snprintf(url, sizeof(url), "%s/v1/events?keepalive_ms=10000%s%s", hc->config.url,
		*hc->config.filter ? "&" : "", hc->config.filter);
	struct curl_slist *headers = NULL;
	if (hc->config.token) {
		snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", hc->config.token);
		headers = curl_slist_append(headers, authorization);
	}
	while (!hc->stopping) {
		CURL *stream = curl_easy_init();
		if (!stream)
			break;
		hd_curl_common(stream, &hc->config);
		curl_easy_setopt(stream, CURLOPT_URL, url);
		curl_easy_setopt(stream, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(stream, CURLOPT_WRITEFUNCTION, on_events);
		curl_easy_setopt(stream, CURLOPT_WRITEDATA, &sse);
		curl_easy_setopt(stream, CURLOPT_HEADERFUNCTION, on_event_header);
		curl_easy_setopt(stream, CURLOPT_HEADERDATA, &sse);
		curl_easy_setopt(stream, CURLOPT_FAILONERROR, 1L);
		/* No event or keep-alive for 30 s: the daemon is gone without a word. */
		curl_easy_setopt(stream, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(stream, CURLOPT_LOW_SPEED_TIME, 30L);
		curl_multi_add_handle(hc->events_multi, stream);
		int running = 1;
		while (running && !hc->stopping) {
			curl_multi_perform(hc->events_multi, &running);
			if (sse.changed) {
				sse.changed = 0;
				hd_sync_devices(ctx);
			}
			if (running)
				curl_multi_poll(hc->events_multi, NULL, 0, 1000, NULL);
		}
		curl_multi_remove_handle(hc->events_multi, stream);
		curl_easy_cleanup(stream);
		sse.length = 0;
		if (!hc->stopping)
			curl_multi_poll(hc->events_multi, NULL, 0, 1000, NULL);   /* curl_multi_wakeup ends it */
	}
	curl_slist_free_all(headers);
	return NULL;
}

int hd_events_start(struct libusb_context *ctx)
{
	struct hd_context *hc = HD_CONTEXT(ctx);
	hc->events_multi = curl_multi_init();
	if (!hc->events_multi)
		return LIBUSB_ERROR_NO_MEM;
	if (pthread_create(&hc->events_thread, NULL, follow_events, ctx) != 0) {
		curl_multi_cleanup(hc->events_multi);
		hc->events_multi = NULL;
		return LIBUSB_ERROR_OTHER;
	}
	hc->events_started = 1;
	return 0;
}

void hd_events_stop(struct libusb_context *ctx)
{
	struct hd_context *hc = HD_CONTEXT(ctx);
	if (!hc->events_started)
		return;
	hc->stopping = 1;
	curl_multi_wakeup(hc->events_multi);
	pthread_join(hc->events_thread, NULL);
	curl_multi_cleanup(hc->events_multi);
	hc->events_started = 0;
}
