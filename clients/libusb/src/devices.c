/*
 * The context's device list, kept as the daemon's: GET /v1/devices (with the environment's
 * filters) and each new device's raw descriptors. The backend has libusb's hot-plug
 * capability: a thread follows GET /v1/events and syncs the list on each change (events.c;
 * libusb then calls the program's hot-plug callbacks), and libusb_get_device_list syncs first
 * (hotplug_poll), so a list is never older than the call.
 */
#include "usbhttpd.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum libusb_speed speed_named(const char *name)
{
	static const char *const names[] = { "unknown", "low", "full", "high", "super", "super_plus" };
	for (int i = 0; name && i < 6; i++)
		if (!strcmp(name, names[i]))
			return (enum libusb_speed)i;
	return LIBUSB_SPEED_UNKNOWN;
}

/* Keeps only whole configurations: a descriptor set that says more than it has is cut. */
static size_t whole_length(const uint8_t *d, size_t length)
{
	if (length < LIBUSB_DT_DEVICE_SIZE)
		return 0;
	size_t offset = LIBUSB_DT_DEVICE_SIZE;
	while (offset + LIBUSB_DT_CONFIG_SIZE <= length) {
		size_t total = hd_le16(d + offset + 2);
		if (total < LIBUSB_DT_CONFIG_SIZE || offset + total > length || d[offset + 1] != LIBUSB_DT_CONFIG)
			break;
		offset += total;
	}
	return offset;
}

static int config_at(struct libusb_device *dev, int index, int value, const uint8_t **config)
{
	struct hd_device *hd = usbi_get_device_priv(dev);
	size_t offset = LIBUSB_DT_DEVICE_SIZE;
	for (int i = 0; offset + LIBUSB_DT_CONFIG_SIZE <= hd->length; i++) {
		const uint8_t *c = hd->descriptors + offset;
		if (i == index || (index < 0 && c[5] == value)) {
			*config = c;
			return hd_le16(c + 2);
		}
		offset += hd_le16(c + 2);
	}
	return LIBUSB_ERROR_NOT_FOUND;
}

int hd_config_descriptor(struct libusb_device *dev, uint8_t index, const uint8_t **config)
{
	return config_at(dev, index, 0, config);
}

int hd_config_descriptor_by_value(struct libusb_device *dev, uint8_t value, const uint8_t **config)
{
	return config_at(dev, -1, value, config);
}

/* Fills a new device from its listing entry and its raw descriptors. */
static int describe(struct libusb_context *ctx, struct libusb_device *dev, json_object *entry,
	const char *id)
{
	struct hd_device *hd = usbi_get_device_priv(dev);
	json_object *value = NULL;
	char path[200], error[600];
	snprintf(hd->id, sizeof(hd->id), "%s", id);
	dev->bus_number = json_object_object_get_ex(entry, "bus", &value) ? (uint8_t)json_object_get_int(value) : 0;
	dev->device_address = json_object_object_get_ex(entry, "address", &value) ? (uint8_t)json_object_get_int(value) : 0;
	dev->speed = json_object_object_get_ex(entry, "speed", &value) ? speed_named(json_object_get_string(value)) : 0;
	if (json_object_object_get_ex(entry, "port_path", &value) && json_object_array_length(value) > 0)
		dev->port_number = (uint8_t)json_object_get_int(
			json_object_array_get_idx(value, json_object_array_length(value) - 1));

	struct hd_body body;
	char *escaped = curl_easy_escape(NULL, id, 0);
	snprintf(path, sizeof(path), "/v1/devices/%s/descriptors/raw", escaped ? escaped : "");
	curl_free(escaped);
	long status = hd_rest_get(ctx, path, &body, error, sizeof(error));
	if (status != 200) {
		usbi_warn(ctx, "%s", error);
		free(body.data);
		return status ? hd_error_for_status(status) : LIBUSB_ERROR_IO;
	}
	hd->descriptors = (uint8_t *)body.data;
	hd->length = whole_length(hd->descriptors, body.length);
	hd->configuration = body.configuration > 0 ? (uint8_t)body.configuration : 0;
	if (hd->length < LIBUSB_DT_DEVICE_SIZE)
		return LIBUSB_ERROR_IO;
	memcpy(&dev->device_descriptor, hd->descriptors, LIBUSB_DT_DEVICE_SIZE);
	usbi_localize_device_descriptor(&dev->device_descriptor);
	return usbi_sanitize_device(dev);
}

/* The device one port up (its parent hub), if listed: libusb_get_parent and port numbers. */
static void link_parent(struct libusb_context *ctx, struct libusb_device *dev, json_object *entry,
	json_object *devices)
{
	json_object *ports = NULL;
	if (!json_object_object_get_ex(entry, "port_path", &ports))
		return;
	size_t depth = json_object_array_length(ports);
	for (size_t i = 0; i < json_object_array_length(devices); i++) {
		json_object *other = json_object_array_get_idx(devices, i), *bus = NULL, *path = NULL, *address = NULL;
		if (!json_object_object_get_ex(other, "bus", &bus) || json_object_get_int(bus) != dev->bus_number ||
		    !json_object_object_get_ex(other, "port_path", &path) || json_object_array_length(path) + 1 != depth ||
		    !json_object_object_get_ex(other, "address", &address))
			continue;
		int same = 1;
		for (size_t p = 0; p + 1 < depth && same; p++)
			same = json_object_get_int(json_object_array_get_idx(path, p)) ==
				json_object_get_int(json_object_array_get_idx(ports, p));
		if (!same)
			continue;
		unsigned long session = (unsigned long)dev->bus_number << 8 | (unsigned)json_object_get_int(address);
		dev->parent_dev = usbi_get_device_by_session_id(ctx, session);   /* the reference is dev's */
		return;
	}
}

int hd_sync_devices(struct libusb_context *ctx)
{
	struct hd_context *hc = HD_CONTEXT(ctx);
	char path[1200], error[600];
	struct hd_body body;
	snprintf(path, sizeof(path), "/v1/devices%s%s", *hc->config.filter ? "?" : "", hc->config.filter);

	usbi_mutex_lock(&hc->sync_lock);
	long status = hd_rest_get(ctx, path, &body, error, sizeof(error));
	json_object *list = status == 200 ? json_tokener_parse(body.data ? body.data : "") : NULL;
	json_object *devices = NULL;
	if (!list || !json_object_object_get_ex(list, "devices", &devices) ||
	    !json_object_is_type(devices, json_type_array)) {
		if (status == 200)
			snprintf(error, sizeof(error), "GET %s: not a device list", path);
		usbi_mutex_unlock(&hc->sync_lock);
		hd_say(&hc->config, "%s", error);
		json_object_put(list);
		free(body.data);
		return status ? hd_error_for_status(status) : LIBUSB_ERROR_IO;
	}
	free(body.data);

	/* Sorted by bus and port path, so a hub comes before what hangs on it. */
	size_t count = json_object_array_length(devices);
	unsigned long *present = calloc(count + 1, sizeof(*present));
	for (size_t i = 0; present && i < count; i++) {
		json_object *entry = json_object_array_get_idx(devices, i), *id = NULL, *bus = NULL, *address = NULL;
		if (!json_object_object_get_ex(entry, "id", &id) || !json_object_object_get_ex(entry, "bus", &bus) ||
		    !json_object_object_get_ex(entry, "address", &address))
			continue;
		unsigned long session = (unsigned long)(json_object_get_int(bus) & 0xff) << 8 |
			(json_object_get_int(address) & 0xff);
		present[i] = session;
		struct libusb_device *dev = usbi_get_device_by_session_id(ctx, session);
		if (dev) {
			libusb_unref_device(dev);
			continue;
		}
		dev = usbi_alloc_device(ctx, session);
		if (!dev)
			continue;
		int r = describe(ctx, dev, entry, json_object_get_string(id));
		if (r < 0) {   /* gone meanwhile, or not ours to see: not listed */
			present[i] = 0;
			libusb_unref_device(dev);
			continue;
		}
		link_parent(ctx, dev, entry, devices);
		usbi_connect_device(dev);
	}

	/* Whatever the daemon no longer lists has left. */
	struct libusb_device *dev, *next;
	struct libusb_device *left[256];
	size_t leaving = 0;
	usbi_mutex_lock(&ctx->usb_devs_lock);
	for_each_device_safe(ctx, dev, next) {
		int found = 0;
		for (size_t i = 0; present && i < count && !found; i++)
			found = present[i] == dev->session_data;
		if (!found && present && leaving < 256)
			left[leaving++] = libusb_ref_device(dev);
	}
	usbi_mutex_unlock(&ctx->usb_devs_lock);
	for (size_t i = 0; i < leaving; i++) {
		usbi_disconnect_device(left[i]);
		libusb_unref_device(left[i]);
	}
	free(present);
	json_object_put(list);
	usbi_mutex_unlock(&hc->sync_lock);
	return 0;
}
