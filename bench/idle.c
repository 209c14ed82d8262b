/* idle: N keep-alive connections, each after one request (GET PATH), held open S seconds.
 *   idle PORT PATH N S       prints how many connections were served */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: idle PORT PATH N S\n"); return 2; }
    int n = atoi(argv[3]), served = 0;
    int *fds = calloc((size_t)n, sizeof *fds);
    char request[512], reply[4096];
    int length = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", argv[2]);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fds[i], (struct sockaddr *)&a, sizeof a) < 0) continue;
        if (write(fds[i], request, (size_t)length) != length) continue;
        if (read(fds[i], reply, sizeof reply) > 0 && strncmp(reply, "HTTP/1.1 200", 12) == 0) served++;
    }
    printf("%d\n", served);
    fflush(stdout);
    sleep((unsigned)atoi(argv[4]));
    return 0;
}
