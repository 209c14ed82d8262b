/* console: a console's echo round trip and flood throughput, through the daemon (its WebSocket,
 * bench/ws.h) or on the tty directly, against lab/guest/board.py (it echoes what is typed;
 * "flood N R" prints N bytes, byte i being i % 251). Every echo and every flood byte is checked.
 *   console ws PORT DEVICE ECHOES FLOOD_BYTES
 *   console tty /dev/ttyACMn ECHOES FLOOD_BYTES
 * Prints "echo_us=MEDIAN (MIN-MAX) flood_mb_s=RATE". */
#include "ws.h"

#include <fcntl.h>
#include <termios.h>

static int tty = -1;
static unsigned char pending[1 << 20];
static size_t have;

static void put(const char *bytes, size_t n) {
    if (tty >= 0) {
        if (write(tty, bytes, n) != (ssize_t)n) die("tty write");
    } else {
        sendmsg2(bytes, n, NULL, 0, NULL);
    }
}

/* More of the console's output into `pending`. */
static void more(void) {
    if (have == sizeof pending) die("output overflow");
    if (tty >= 0) {
        ssize_t r = read(tty, pending + have, sizeof pending - have);
        if (r <= 0) die("tty read");
        have += (size_t)r;
        return;
    }
    size_t n;
    unsigned char *m = receive(&n);
    if (n > sizeof pending - have) die("output overflow");
    memcpy(pending + have, m, n);
    have += n;
}

/* Reads up to and including `marker`, dropping it all. */
static void skip_until(const char *marker) {
    size_t m = strlen(marker);
    for (;;) {
        unsigned char *at = memmem(pending, have, marker, m);
        if (at) { size_t end = (size_t)(at - pending) + m; memmove(pending, pending + end, have - end); have -= end; return; }
        if (have > m) { memmove(pending, pending + have - m, m); have = m; }
        more();
    }
}

static int compare(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

int main(int argc, char **argv) {
    program = "console";
    if (argc < 5) { fprintf(stderr, "usage: see the comment at the top\n"); return 2; }
    int ws = strcmp(argv[1], "ws") == 0;
    int echoes = atoi(argv[ws ? 4 : 3]);
    long long total = atoll(argv[ws ? 5 : 4]);
    if (ws) {
        char path[256];
        snprintf(path, sizeof path, "/v1/devices/%s/consoles/0/ws?from=end", argv[3]);
        open_websocket(atoi(argv[2]), path, "usbhttpd.console.1");
    } else {
        tty = open(argv[2], O_RDWR | O_NOCTTY);
        if (tty < 0) die("open the tty");
        struct termios t;
        tcgetattr(tty, &t); cfmakeraw(&t); tcsetattr(tty, TCSANOW, &t);
    }
    put("\r", 1);
    skip_until("board> ");
    double *times = malloc(sizeof(double) * (size_t)echoes);
    for (int i = 0; i < echoes; i++) {
        double start = now();
        put("x", 1);
        while (have == 0) more();
        times[i] = (now() - start) * 1e6;
        if (pending[0] != 'x') die("the echo was not the byte typed");
        memmove(pending, pending + 1, --have);
    }
    put("\x03", 1);
    skip_until("board> ");
    char command[64];
    int cl = snprintf(command, sizeof command, "flood %lld 1000000000\r", total);
    put(command, (size_t)cl);
    skip_until("1000000000\r\n");
    double start = now();
    long long seen = 0;
    while (seen < total) {
        if (have == 0) more();
        size_t take = have < (size_t)(total - seen) ? have : (size_t)(total - seen);
        for (size_t i = 0; i < take; i++)
            if (pending[i] != (unsigned char)((seen + (long long)i) % 251)) { fprintf(stderr, "console: flood byte %lld wrong\n", seen + (long long)i); return 1; }
        seen += (long long)take;
        memmove(pending, pending + take, have - take);
        have -= take;
    }
    double seconds = now() - start;
    skip_until("flood done\r\n");
    qsort(times, (size_t)echoes, sizeof(double), compare);
    printf("echo_us=%.0f (%.0f-%.0f) flood_mb_s=%.2f\n", times[echoes / 2], times[0], times[echoes - 1], total / seconds / 1e6);
    return 0;
}
