/*
 * The environment that points the backend at a daemon, and the REST requests it makes
 * (libcurl, one keep-alive connection per context; json-c for problem details).
 */
#include "usbhttpd.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *env_copy(const char *name)
{
	const char *value = getenv(name);
	return value && *value ? strdup(value) : NULL;
}

/* Appends "&name=escaped value" for a filter set in the environment. */
static int add_filter(char *filter, size_t size, const char *variable, const char *parameter)
{
	const char *value = getenv(variable);
	if (!value || !*value)
		return 0;
	char *escaped = curl_easy_escape(NULL, value, 0);
	if (!escaped)
		return LIBUSB_ERROR_NO_MEM;
	size_t used = strlen(filter);
	int n = snprintf(filter + used, size - used, "%s%s=%s", used ? "&" : "", parameter, escaped);
	curl_free(escaped);
	return n < 0 || (size_t)n >= size - used ? LIBUSB_ERROR_INVALID_PARAM : 0;
}

/* Whether `url` is plain HTTP to another machine than this one (not loopback). */
static int plain_to_another_host(const char *url)
{
	if (strncmp(url, "http://", 7) != 0)
		return 0;
	int other = 1;
	char *host = NULL;
	CURLU *u = curl_url();
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host) {
		struct in6_addr v6;
		other = !(strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
			  ((strcmp(host, "[::1]") == 0 || (inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6)))));
	}
	curl_free(host);
	curl_url_cleanup(u);
	return other;
}

int hd_config_load(struct hd_config *config)
{
	char filter[1024] = "";
	memset(config, 0, sizeof(*config));
	const char *url = getenv("USBHTTPD_URL");
	config->url = strdup(url && *url ? url : "http://127.0.0.1:8080");
	if (!config->url)
		return LIBUSB_ERROR_NO_MEM;
	for (size_t n = strlen(config->url); n > 0 && config->url[n - 1] == '/'; n--)
		config->url[n - 1] = 0;
	if (strncmp(config->url, "http://", 7) && strncmp(config->url, "https://", 8)) {
		fprintf(stderr, "libusb-usbhttpd: USBHTTPD_URL must start with http:// or https:// (it is '%s')\n",
			config->url);
		return LIBUSB_ERROR_INVALID_PARAM;
	}
	config->token = env_copy("USBHTTPD_TOKEN");
	const char *plain = getenv("USBHTTPD_ALLOW_PLAIN_TOKEN");
	if (config->token && plain_to_another_host(config->url) && !(plain && !strcmp(plain, "1"))) {
		fprintf(stderr, "libusb-usbhttpd: a token over plain HTTP to %s could be read on the way: use https://, "
			"or set USBHTTPD_ALLOW_PLAIN_TOKEN=1 on a network you trust\n", config->url);
		return LIBUSB_ERROR_ACCESS;
	}
	config->ca_file = env_copy("USBHTTPD_CA");
	config->lease = env_copy("USBHTTPD_LEASE");
	const char *timeout = getenv("USBHTTPD_TIMEOUT_MS");
	config->timeout_ms = timeout && atol(timeout) > 0 ? atol(timeout) : 30000;
	const char *quiet = getenv("USBHTTPD_QUIET");
	config->quiet = quiet && *quiet && strcmp(quiet, "0") != 0;
	int r = add_filter(filter, sizeof(filter), "USBHTTPD_DEVICE", "id");
	if (!r)
		r = add_filter(filter, sizeof(filter), "USBHTTPD_SERIAL", "serial");
	if (!r)
		r = add_filter(filter, sizeof(filter), "USBHTTPD_VENDOR", "vendor_id");
	if (!r)
		r = add_filter(filter, sizeof(filter), "USBHTTPD_PRODUCT", "product_id");
	if (r)
		return r;
	config->filter = strdup(filter);
	return config->filter ? 0 : LIBUSB_ERROR_NO_MEM;
}

void hd_config_free(struct hd_config *config)
{
	free(config->url);
	free(config->token);
	free(config->ca_file);
	free(config->lease);
	free(config->filter);
	memset(config, 0, sizeof(*config));
}

void hd_say(const struct hd_config *config, const char *format, ...)
{
	if (config && config->quiet)
		return;
	char line[1024];
	va_list args;
	va_start(args, format);
	vsnprintf(line, sizeof(line), format, args);
	va_end(args);
	fprintf(stderr, "libusb-usbhttpd: %s\n", line);
}

void hd_refused(struct libusb_context *ctx, const char *device, const char *reason, size_t length)
{
	int n = (int)(length < 400 ? length : 400);
	if (length >= 3 && (!strncmp(reason, "403", 3) || !strncmp(reason, "423", 3) ||
	                    !strncmp(reason, "429", 3) || !strncmp(reason, "503", 3)))
		hd_say(&HD_CONTEXT(ctx)->config, "%s: %.*s", device, n, reason);
	else
		usbi_dbg(ctx, "%s: %.*s", device, n, reason);
}

void hd_curl_common(CURL *curl, const struct hd_config *config)
{
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, config->timeout_ms);
	curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (config->ca_file)
		curl_easy_setopt(curl, CURLOPT_CAINFO, config->ca_file);
}

int hd_error_for_status(long status)
{
	switch (status) {
	case 401: case 403: return LIBUSB_ERROR_ACCESS;
	case 404: case 410: return LIBUSB_ERROR_NO_DEVICE;
	case 409: case 423: case 429: case 503: return LIBUSB_ERROR_BUSY;
	case 400: case 421: return LIBUSB_ERROR_INVALID_PARAM;
	default: return LIBUSB_ERROR_IO;
	}
}

void hd_problem_detail(const char *body, size_t length, char *out, size_t size)
{
	struct json_tokener *tokener = json_tokener_new();
	json_object *problem = tokener ? json_tokener_parse_ex(tokener, body, (int)length) : NULL;
	json_object *code = NULL, *detail = NULL, *status = NULL;
	if (problem && json_object_object_get_ex(problem, "detail", &detail)) {
		json_object_object_get_ex(problem, "code", &code);
		json_object_object_get_ex(problem, "status", &status);
		snprintf(out, size, "%d %s: %s", status ? json_object_get_int(status) : 0,
			code ? json_object_get_string(code) : "problem", json_object_get_string(detail));
	} else {
		snprintf(out, size, "%.*s", (int)(length < 200 ? length : 200), body);
	}
	json_object_put(problem);
	if (tokener)
		json_tokener_free(tokener);
}

static size_t collect(char *data, size_t size, size_t count, void *user)
{
	struct hd_body *body = user;
	size_t n = size * count;
	if (body->length + n > (16u << 20))    /* no listing is this big: stop the transfer */
		return 0;
	char *grown = realloc(body->data, body->length + n + 1);
	if (!grown)
		return 0;
	memcpy(grown + body->length, data, n);
	body->data = grown;
	body->length += n;
	body->data[body->length] = 0;
	return n;
}

static size_t header_line(char *data, size_t size, size_t count, void *user)
{
	struct hd_body *body = user;
	size_t n = size * count;
	static const char name[] = "X-USB-Configuration:";
	if (n > sizeof(name) && strncasecmp(data, name, sizeof(name) - 1) == 0)
		body->configuration = atoi(data + sizeof(name) - 1);
	return n;
}

long hd_rest_get(struct libusb_context *ctx, const char *path, struct hd_body *body,
	char *error, size_t error_size)
{
	struct hd_context *hc = HD_CONTEXT(ctx);
	char url[2048];
	long status = 0;
	memset(body, 0, sizeof(*body));
	body->configuration = -1;
	snprintf(url, sizeof(url), "%s%s", hc->config.url, path);

	usbi_mutex_lock(&hc->rest_lock);
	if (!hc->rest) {
		hc->rest = curl_easy_init();
		if (!hc->rest) {
			usbi_mutex_unlock(&hc->rest_lock);
			snprintf(error, error_size, "out of memory");
			return 0;
		}
		hd_curl_common(hc->rest, &hc->config);
		curl_easy_setopt(hc->rest, CURLOPT_TIMEOUT_MS, hc->config.timeout_ms);
		curl_easy_setopt(hc->rest, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(hc->rest, CURLOPT_HEADERFUNCTION, header_line);
	}
	struct curl_slist *headers = NULL;
	char authorization[1100];
	if (hc->config.token) {
		snprintf(authorization, sizeof(authorization), "Authorization: Bearer %s", hc->config.token);
		headers = curl_slist_append(headers, authorization);
	}
	curl_easy_setopt(hc->rest, CURLOPT_URL, url);
	curl_easy_setopt(hc->rest, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(hc->rest, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(hc->rest, CURLOPT_HEADERDATA, body);
	CURLcode rc = curl_easy_perform(hc->rest);
	if (rc == CURLE_OK)
		curl_easy_getinfo(hc->rest, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(error, error_size, "%s: %s", hc->config.url, curl_easy_strerror(rc));
	curl_easy_setopt(hc->rest, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);
	usbi_mutex_unlock(&hc->rest_lock);
	if (status && status != 200 && error_size) {
		char detail[512];
		hd_problem_detail(body->data ? body->data : "", body->length, detail, sizeof(detail));
		snprintf(error, error_size, "GET %s: %s", path, detail);
	}
	return status;
}
