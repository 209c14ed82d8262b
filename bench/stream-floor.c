/* stream-floor: the fastest streamed response libmicrohttpd can give, set up as usbhttpd
 * sets it up, to show what HTTP itself costs a stream before any USB is involved.
 *   stream-floor PORT MODE L
 * Every request gets an endless chunked body of L-byte chunks from a static buffer (the
 * client stops reading, or asks ?bytes=N for N bytes). MODE reader: libmicrohttpd's content
 * reader copies each chunk into its buffer (the way over TLS). MODE socket: the connection is
 * suspended and another thread writes the chunk framing and the data itself with writev on
 * the socket, then resumes it (what usbhttpd does with usbfs buffers on plain HTTP/1.1). */
#define _GNU_SOURCE
#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static int socket_mode;
static size_t chunk;
static char *data;

struct stream {
    struct MHD_Connection *connection;
    struct MHD_Response *response;
    long long left; /* bytes still to send, -1 for ever */
    int started, done;
};

static void *writer(void *arg) {
    struct stream *s = arg;
    int fd = MHD_get_connection_info(s->connection, MHD_CONNECTION_INFO_CONNECTION_FD)->connect_fd;
    char header[32];
    while (s->left != 0) {
        size_t n = s->left < 0 || (long long)chunk < s->left ? chunk : (size_t)s->left;
        int h = snprintf(header, sizeof header, "%zx\r\n", n);
        struct iovec iov[3] = {{header, (size_t)h}, {data, n}, {"\r\n", 2}};
        size_t total = (size_t)h + n + 2, sent = 0;
        while (sent < total) {
            struct iovec *v = iov;
            int count = 3;
            size_t skip = sent;
            while (skip >= v->iov_len) { skip -= v->iov_len; v++; count--; }
            struct iovec first = {(char *)v->iov_base + skip, v->iov_len - skip};
            struct iovec rest[3] = {first, count > 1 ? v[1] : first, count > 2 ? v[2] : first};
            ssize_t r = writev(fd, rest, count);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                struct pollfd p = {fd, POLLOUT, 0};
                poll(&p, 1, -1);
                continue;
            }
            if (r <= 0) { s->left = 0; goto out; } /* the client went away */
            sent += (size_t)r;
        }
        if (s->left > 0) s->left -= (long long)n;
    }
out:
    s->done = 1;
    MHD_resume_connection(s->connection);
    return NULL;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    struct stream *s = cls;
    if (socket_mode) {
        if (s->done) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!s->started) {
            s->started = 1;
            MHD_suspend_connection(s->connection);
            pthread_t t;
            pthread_create(&t, NULL, writer, s);
            pthread_detach(t);
        }
        return 0;
    }
    if (s->left == 0) return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = chunk < max ? chunk : max;
    if (s->left > 0 && (long long)n > s->left) n = (size_t)s->left;
    memcpy(buf, data, n);
    if (s->left > 0) s->left -= (long long)n;
    return (ssize_t)n;
}

static void freed(void *cls) { free(cls); }

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *size, void **state) {
    (void)cls; (void)url; (void)method; (void)version; (void)upload; (void)size;
    if (*state == NULL) { *state = (void *)1; return MHD_YES; }
    struct stream *s = calloc(1, sizeof *s);
    const char *bytes = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "bytes");
    s->left = bytes ? atoll(bytes) : -1;
    s->connection = c;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 256 * 1024, reader, s, freed);
    s->response = r;
    enum MHD_Result q = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return q;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: stream-floor PORT reader|socket L\n"); return 2; }
    socket_mode = strcmp(argv[2], "socket") == 0;
    chunk = (size_t)atol(argv[3]);
    data = malloc(chunk);
    memset(data, 0x5a, chunk);
    /* The reader needs room for a whole chunk in the connection's memory. */
    size_t memory = socket_mode ? 32 * 1024 : chunk + 8 * 1024;
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME,
                                            (uint16_t)atoi(argv[1]), NULL, NULL, answer, NULL,
                                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, memory, MHD_OPTION_END);
    if (!d) return 1;
    pause();
    return 0;
}
