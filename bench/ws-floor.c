/* ws-floor: libmicrohttpd's own HTTP Upgrade to a WebSocket, echoing every binary message:
 * the floor of a round trip over a WebSocket on this machine, for bench/stream.sh to hold the
 * URB channel against. No USB, no Swift.
 *   ws-floor PORT
 * libmicrohttpd (internal epoll thread) answers the handshake and hands the socket over; a
 * thread per connection then reads each frame, unmasks it and sends it back unmasked. */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

struct peer { MHD_socket fd; struct MHD_UpgradeResponseHandle *urh; unsigned char *extra; size_t extra_size; };

static int readn(int fd, unsigned char *b, size_t n, struct peer *p) {
    size_t have = 0;
    while (have < n && p->extra_size) { b[have++] = *p->extra++; p->extra_size--; }
    while (have < n) { ssize_t r = read(fd, b + have, n - have); if (r <= 0) return -1; have += (size_t)r; }
    return 0;
}

static void *serve(void *arg) {
    struct peer *p = arg;
    int one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* libmicrohttpd's sockets are non-blocking: this thread blocks on its own. */
    fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) & ~O_NONBLOCK);
    unsigned char *buf = malloc(2 << 20), head[14];
    for (;;) {
        if (readn(p->fd, head, 2, p)) break;
        size_t n = head[1] & 0x7f;
        if (n == 126) { if (readn(p->fd, head + 2, 2, p)) break; n = (size_t)head[2] << 8 | head[3]; }
        else if (n == 127) { if (readn(p->fd, head + 2, 8, p)) break; n = 0; for (int i = 0; i < 8; i++) n = n << 8 | head[2 + i]; }
        unsigned char key[4];
        if (readn(p->fd, key, 4, p) || n > (2 << 20) || readn(p->fd, buf, n, p)) break;
        if ((head[0] & 0x0f) == 8) break;
        for (size_t i = 0; i < n; i++) buf[i] ^= key[i & 3];
        unsigned char out[10];
        size_t f = 0;
        out[f++] = 0x82;
        if (n < 126) out[f++] = (unsigned char)n;
        else if (n <= 0xffff) { out[f++] = 126; out[f++] = (unsigned char)(n >> 8); out[f++] = (unsigned char)n; }
        else { out[f++] = 127; for (int i = 7; i >= 0; i--) out[f++] = (unsigned char)(n >> (8 * i)); }
        if (write(p->fd, out, f) != (ssize_t)f || write(p->fd, buf, n) != (ssize_t)n) break;
    }
    free(buf);
    MHD_upgrade_action(p->urh, MHD_UPGRADE_ACTION_CLOSE);
    free(p);
    return NULL;
}

static void upgraded(void *cls, struct MHD_Connection *c, void *req_cls, const char *extra_in, size_t extra_in_size,
                     MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
    (void)cls; (void)c; (void)req_cls;
    struct peer *p = calloc(1, sizeof *p + extra_in_size);
    p->fd = sock; p->urh = urh; p->extra = (unsigned char *)(p + 1); p->extra_size = extra_in_size;
    memcpy(p->extra, extra_in, extra_in_size);
    pthread_t t;
    pthread_create(&t, NULL, serve, p);
    pthread_detach(t);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *size, void **state) {
    (void)cls; (void)url; (void)method; (void)version; (void)data; (void)size; (void)state;
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    if (!key) return MHD_NO;
    char input[128];
    snprintf(input, sizeof input, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    unsigned char digest[20];
    gnutls_hash_fast(GNUTLS_DIG_SHA1, input, strlen(input), digest);
    gnutls_datum_t in = { digest, 20 }, out;
    gnutls_base64_encode2(&in, &out);
    char accept[64];
    snprintf(accept, sizeof accept, "%.*s", (int)out.size, (char *)out.data);
    gnutls_free(out.data);
    struct MHD_Response *r = MHD_create_response_for_upgrade(upgraded, NULL);
    MHD_add_response_header(r, "Upgrade", "websocket");
    MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
    MHD_add_response_header(r, "Sec-WebSocket-Protocol", "usbhttpd.urb.1");
    enum MHD_Result q = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, r);
    MHD_destroy_response(r);
    return q;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: ws-floor PORT\n"); return 2; }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_UPGRADE, (uint16_t)atoi(argv[1]), NULL, NULL,
        answer, NULL, MHD_OPTION_END);
    if (!d) { perror("MHD_start_daemon"); return 1; }
    pause();
    return 0;
}
