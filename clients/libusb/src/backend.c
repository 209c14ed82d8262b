/*
 * The usbi_os_backend libusb's core is built with (clients/libusb/build): "usbhttpd", in
 * place of Linux usbfs. Devices, descriptors and hot-plug come from devices.c; each open
 * handle is a URB channel (channel.c), its transfers in transfers.c.
 */
#include "usbhttpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* URB channel operations (docs/urb-channel.md). */
enum {
	OP_CLAIM_INTERFACE = 1, OP_RELEASE_INTERFACE, OP_SET_ALT_SETTING, OP_CLEAR_HALT, OP_RESET_DEVICE,
	OP_KERNEL_DRIVER_ACTIVE, OP_DETACH_KERNEL_DRIVER, OP_ATTACH_KERNEL_DRIVER, OP_SET_CONFIGURATION,
	OP_GET_CONFIGURATION, OP_USE_LEASE
};

static int op_init(struct libusb_context *ctx)
{
	struct hd_context *hc = HD_CONTEXT(ctx);
	static int curl_ready;
	if (!__atomic_exchange_n(&curl_ready, 1, __ATOMIC_SEQ_CST) && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return LIBUSB_ERROR_OTHER;
	int r = hd_config_load(&hc->config);
	if (r) {
		hd_config_free(&hc->config);
		return r;
	}
	usbi_mutex_init(&hc->rest_lock);
	usbi_mutex_init(&hc->sync_lock);
	/* The daemon must answer now: a program learns at libusb_init that it is unreachable. */
	r = hd_sync_devices(ctx);
	if (!r)
		r = hd_events_start(ctx);
	if (r) {
		if (hc->rest)
			curl_easy_cleanup(hc->rest);
		usbi_mutex_destroy(&hc->rest_lock);
		usbi_mutex_destroy(&hc->sync_lock);
		hd_config_free(&hc->config);
	}
	return r;
}

static void op_exit(struct libusb_context *ctx)
{
	struct hd_context *hc = HD_CONTEXT(ctx);
	hd_events_stop(ctx);
	if (hc->rest)
		curl_easy_cleanup(hc->rest);
	usbi_mutex_destroy(&hc->rest_lock);
	usbi_mutex_destroy(&hc->sync_lock);
	hd_config_free(&hc->config);
}

/* libusb_get_device_list: the list as the daemon has it now. */
static void op_hotplug_poll(void)
{
	struct libusb_context *ctx;
	usbi_mutex_static_lock(&active_contexts_lock);
	for_each_context(ctx)
		hd_sync_devices(ctx);
	usbi_mutex_static_unlock(&active_contexts_lock);
}

static int op_get_active_config_descriptor(struct libusb_device *dev, void *buffer, size_t len)
{
	struct hd_device *hd = usbi_get_device_priv(dev);
	const uint8_t *config;
	if (!hd->configuration)
		return LIBUSB_ERROR_NOT_FOUND;
	int total = hd_config_descriptor_by_value(dev, hd->configuration, &config);
	if (total < 0)
		return total;
	len = len < (size_t)total ? len : (size_t)total;
	memcpy(buffer, config, len);
	return (int)len;
}

static int op_get_config_descriptor(struct libusb_device *dev, uint8_t index, void *buffer, size_t len)
{
	const uint8_t *config;
	int total = hd_config_descriptor(dev, index, &config);
	if (total < 0)
		return total;
	len = len < (size_t)total ? len : (size_t)total;
	memcpy(buffer, config, len);
	return (int)len;
}

static int op_get_config_descriptor_by_value(struct libusb_device *dev, uint8_t value, void **buffer)
{
	const uint8_t *config;
	int total = hd_config_descriptor_by_value(dev, value, &config);
	if (total >= 0)
		*buffer = (void *)config;
	return total;
}

static void op_destroy_device(struct libusb_device *dev)
{
	struct hd_device *hd = usbi_get_device_priv(dev);
	free(hd->descriptors);
	hd->descriptors = NULL;
}

static int op_wrap_sys_device(struct libusb_context *ctx, struct libusb_device_handle *handle, intptr_t sys_dev)
{
	UNUSED(ctx); UNUSED(handle); UNUSED(sys_dev);
	return LIBUSB_ERROR_NOT_SUPPORTED;   /* a usbfs file descriptor means nothing remotely */
}

static int op_open(struct libusb_device_handle *handle)
{
	return hd_channel_open(handle);
}

static void op_close(struct libusb_device_handle *handle)
{
	hd_channel_close(handle);
}

static int op_get_configuration(struct libusb_device_handle *handle, uint8_t *config)
{
	int r = hd_operation(handle, OP_GET_CONFIGURATION, 0, 0, NULL);
	if (r < 0)
		return r;
	*config = (uint8_t)r;
	((struct hd_device *)usbi_get_device_priv(handle->dev))->configuration = (uint8_t)r;
	return 0;
}

static int op_set_configuration(struct libusb_device_handle *handle, int config)
{
	int r = hd_operation(handle, OP_SET_CONFIGURATION, config, 0, NULL);
	if (r < 0)
		return r;
	((struct hd_device *)usbi_get_device_priv(handle->dev))->configuration = config > 0 ? (uint8_t)config : 0;
	return 0;
}

static int op_claim_interface(struct libusb_device_handle *handle, uint8_t interface)
{
	/* With libusb's auto-detach the daemon detaches a bound driver, and its release attaches
	 * it again, as usbfs does; a driver detached by libusb_detach_kernel_driver stays so. */
	int r = hd_operation(handle, OP_CLAIM_INTERFACE, interface, handle->auto_detach_kernel_driver ? 1 : 0, NULL);
	return r < 0 ? r : 0;
}

static int op_release_interface(struct libusb_device_handle *handle, uint8_t interface)
{
	int r = hd_operation(handle, OP_RELEASE_INTERFACE, interface, 0, NULL);
	return r < 0 ? r : 0;
}

static int op_set_interface_altsetting(struct libusb_device_handle *handle, uint8_t interface, uint8_t alt)
{
	int r = hd_operation(handle, OP_SET_ALT_SETTING, interface, alt, NULL);
	return r < 0 ? r : 0;
}

static int op_clear_halt(struct libusb_device_handle *handle, unsigned char endpoint)
{
	int r = hd_operation(handle, OP_CLEAR_HALT, endpoint, 0, NULL);
	return r < 0 ? r : 0;
}

static int op_reset_device(struct libusb_device_handle *handle)
{
	int r = hd_operation(handle, OP_RESET_DEVICE, 0, 0, NULL);
	return r < 0 ? r : 0;
}

static int op_kernel_driver_active(struct libusb_device_handle *handle, uint8_t interface)
{
	return hd_operation(handle, OP_KERNEL_DRIVER_ACTIVE, interface, 0, NULL);
}

static int op_detach_kernel_driver(struct libusb_device_handle *handle, uint8_t interface)
{
	int r = hd_operation(handle, OP_DETACH_KERNEL_DRIVER, interface, 0, NULL);
	return r < 0 ? r : 0;
}

static int op_attach_kernel_driver(struct libusb_device_handle *handle, uint8_t interface)
{
	int r = hd_operation(handle, OP_ATTACH_KERNEL_DRIVER, interface, 0, NULL);
	return r < 0 ? r : 0;
}

const struct usbi_os_backend usbi_backend = {
	.name = "usbhttpd URB channel",
	.caps = USBI_CAP_HAS_HID_ACCESS | USBI_CAP_SUPPORTS_DETACH_KERNEL_DRIVER,
	.init = op_init,
	.exit = op_exit,
	.hotplug_poll = op_hotplug_poll,
	.get_active_config_descriptor = op_get_active_config_descriptor,
	.get_config_descriptor = op_get_config_descriptor,
	.get_config_descriptor_by_value = op_get_config_descriptor_by_value,
	.wrap_sys_device = op_wrap_sys_device,
	.open = op_open,
	.close = op_close,
	.get_configuration = op_get_configuration,
	.set_configuration = op_set_configuration,
	.claim_interface = op_claim_interface,
	.release_interface = op_release_interface,
	.set_interface_altsetting = op_set_interface_altsetting,
	.clear_halt = op_clear_halt,
	.reset_device = op_reset_device,
	.kernel_driver_active = op_kernel_driver_active,
	.detach_kernel_driver = op_detach_kernel_driver,
	.attach_kernel_driver = op_attach_kernel_driver,
	.destroy_device = op_destroy_device,
	.submit_transfer = hd_submit_transfer,
	.cancel_transfer = hd_cancel_transfer,
	.clear_transfer_priv = hd_clear_transfer_priv,
	.handle_events = hd_handle_events,
	.handle_transfer_completion = hd_handle_transfer_completion,
	.context_priv_size = sizeof(struct hd_context),
	.device_priv_size = sizeof(struct hd_device),
	.device_handle_priv_size = sizeof(struct hd_handle),
	.transfer_priv_size = sizeof(struct hd_transfer),
};
