/* http-floor: the cheapest answers libmicrohttpd can give, set up as usbhttpd sets it up
 * (one internal epoll thread, suspend/resume allowed), to show what an HTTP round trip costs
 * before usbhttpd does anything.
 *   http-floor PORT MODE
 * MODE inline: answer "{}" inside the access handler. MODE hop: suspend the connection, have
 * another thread resume it, answer then (one thread switch there and one back, the least a
 * request that waits for anything pays). */
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int hop;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct MHD_Connection *pending;

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (!pending) pthread_cond_wait(&cond, &lock);
        struct MHD_Connection *c = pending;
        pending = NULL;
        pthread_mutex_unlock(&lock);
        MHD_resume_connection(c);
    }
    return NULL;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *size, void **state) {
    (void)cls; (void)url; (void)method; (void)version; (void)data;
    if (*state == NULL) { *state = (void *)1; return MHD_YES; }
    if (*size) { *size = 0; return MHD_YES; }
    if (hop && *state == (void *)1) {
        *state = (void *)2;
        MHD_suspend_connection(c);
        pthread_mutex_lock(&lock);
        pending = c;
        pthread_cond_signal(&cond);
        pthread_mutex_unlock(&lock);
        return MHD_YES;
    }
    static char body[] = "{}";
    struct MHD_Response *r = MHD_create_response_from_buffer(2, body, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result q = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return q;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    hop = strcmp(argv[2], "hop") == 0;
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME,
                                            (uint16_t)atoi(argv[1]), NULL, NULL, answer, NULL, MHD_OPTION_END);
    if (!d) return 1;
    pause();
    return 0;
}
