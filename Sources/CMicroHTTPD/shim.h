#ifndef USBHTTPD_CMICROHTTPD_SHIM_H
#define USBHTTPD_CMICROHTTPD_SHIM_H
// Only includes and small `static inline` wrappers, each for something Swift
// cannot import from microhttpd.h as it is.
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <microhttpd.h>

/// MHD_start_daemon is variadic: take the options as an MHD_OPTION_ARRAY instead.
static inline struct MHD_Daemon *usbhttpd_mhd_start_daemon(
    unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback accept, void *accept_cls,
    MHD_AccessHandlerCallback handler, void *handler_cls, const struct MHD_OptionItem *options) {
    return MHD_start_daemon(flags, port, accept, accept_cls, handler, handler_cls,
                            MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}

/// The address (4 or 16 bytes, network order) and port of an IPv4 or IPv6 socket address
/// (a union Swift cannot take apart); its address's length, or -1 for another family.
static inline int usbhttpd_sockaddr_parts(const struct sockaddr *address, uint8_t bytes[16], uint16_t *port) {
    if (!address) return -1;
    if (address->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
        memcpy(bytes, &v4->sin_addr, 4);
        *port = ntohs(v4->sin_port);
        return 4;
    }
    if (address->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)address;
        memcpy(bytes, &v6->sin6_addr, 16);
        *port = ntohs(v6->sin6_port);
        return 16;
    }
    return -1;
}

/// A connection's client address (MHD_CONNECTION_INFO_CLIENT_ADDRESS, a union member).
static inline const struct sockaddr *usbhttpd_mhd_client_sockaddr(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return info ? info->client_addr : NULL;
}

/// MHD_OptionItem carries function pointers as intptr_t, which Swift cannot cast to.
static inline struct MHD_OptionItem usbhttpd_mhd_option_notify_completed(
    MHD_RequestCompletedCallback callback, void *cls) {
    struct MHD_OptionItem item = { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)callback, cls };
    return item;
}

/// See usbhttpd_mhd_option_notify_completed.
static inline struct MHD_OptionItem usbhttpd_mhd_option_notify_connection(
    MHD_NotifyConnectionCallback callback, void *cls) {
    struct MHD_OptionItem item = { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)callback, cls };
    return item;
}

/// See usbhttpd_mhd_option_notify_completed.
static inline struct MHD_OptionItem usbhttpd_mhd_option_logger(MHD_LogCallback callback, void *cls) {
    struct MHD_OptionItem item = { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)callback, cls };
    return item;
}

/// The unescaping of the URL's path and query arguments (MHD_OPTION_UNESCAPE_CALLBACK): as
/// libmicrohttpd's own MHD_http_unescape (each %XX decoded in place), except %00, which stays
/// as its three characters. Decoded, a NUL ends the C string libmicrohttpd hands on, and the
/// rest of the path with it: "/v1/devices/1-1/reset%00x" would reach the router as
/// "/v1/devices/1-1/reset". Kept escaped, such a path matches no route.
static inline int usbhttpd_mhd_hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static inline size_t usbhttpd_mhd_unescape(void *cls, struct MHD_Connection *connection, char *text) {
    (void)cls;
    (void)connection;
    char *read = text, *write = text;
    while (*read) {
        int high, low;
        if (read[0] == '%' && (high = usbhttpd_mhd_hex(read[1])) >= 0 && (low = usbhttpd_mhd_hex(read[2])) >= 0
            && (high | low) != 0) {
            *write++ = (char)(high << 4 | low);
            read += 3;
        } else {
            *write++ = *read++;
        }
    }
    *write = 0;
    return (size_t)(write - text);
}

/// See usbhttpd_mhd_option_notify_completed.
static inline struct MHD_OptionItem usbhttpd_mhd_option_unescape(void) {
    struct MHD_OptionItem item = { MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)usbhttpd_mhd_unescape, NULL };
    return item;
}

/// MHD_SIZE_UNKNOWN is a macro with a cast, which Swift does not import.
static const uint64_t usbhttpd_mhd_size_unknown = MHD_SIZE_UNKNOWN;

/// MHD_CONTENT_READER_END_OF_STREAM / _WITH_ERROR are macros with casts.
static const ssize_t usbhttpd_mhd_reader_end_of_stream = MHD_CONTENT_READER_END_OF_STREAM;
static const ssize_t usbhttpd_mhd_reader_end_with_error = MHD_CONTENT_READER_END_WITH_ERROR;

/// The bound port lives in a union member that MHD_get_daemon_info returns a pointer to.
static inline uint16_t usbhttpd_mhd_bound_port(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

/// The epoll descriptor of a daemon started with MHD_USE_EPOLL (external), from a union
/// member as above; -1 if there is none.
static inline int usbhttpd_mhd_epoll_fd(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_EPOLL_FD);
    return info ? info->epoll_fd : -1;
}

/// MHD_get_timeout as milliseconds capped to an int, or -1 when libmicrohttpd has no timeout:
/// MHD_UNSIGNED_LONG_LONG and its out-parameter are awkward from Swift.
static inline int usbhttpd_mhd_timeout_ms(struct MHD_Daemon *daemon) {
    MHD_UNSIGNED_LONG_LONG timeout = 0;
    if (MHD_get_timeout(daemon, &timeout) != MHD_YES) return -1;
    return timeout > 0x7fffffff ? 0x7fffffff : (int)timeout;
}

/// The socket context set in the notify-connection callback, from a union member as above.
static inline void *usbhttpd_mhd_socket_context(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/// The client's address (IPv4 or IPv6, no port) written into `buffer` as text, from a union
/// member as above; 0 on success.
static inline int usbhttpd_mhd_client_address(struct MHD_Connection *connection, char *buffer, socklen_t size) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!info || !info->client_addr) return -1;
    const struct sockaddr *address = info->client_addr;
    const void *raw = address->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)address)->sin6_addr
                                                      : (const void *)&((const struct sockaddr_in *)address)->sin_addr;
    return inet_ntop(address->sa_family, raw, buffer, size) ? 0 : -1;
}

/// The socket of a connection, from a union member as above.
static inline int usbhttpd_mhd_connection_fd(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info ? info->connect_fd : -1;
}

/// MHD_upgrade_action is variadic: its CLOSE action (the application is done with an
/// upgraded connection; libmicrohttpd resumes it and closes it at its next run).
static inline enum MHD_Result usbhttpd_mhd_upgrade_close(struct MHD_UpgradeResponseHandle *urh) {
    return MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

/// The GnuTLS session of a TLS connection (gnutls_session_t), from a union member as above;
/// NULL for a plain connection.
static inline void *usbhttpd_mhd_gnutls_session(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    return info ? info->tls_session : NULL;
}

#endif
