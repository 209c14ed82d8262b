/* pattern: writes MIB mebibytes of SourceSink's pattern (byte i of each 512-byte packet is
 * i % 63) to standard output, fast enough not to be what a benchmark measures.
 *   pattern MIB */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: pattern MIB\n"); return 2; }
    static unsigned char p[1 << 20];
    for (int i = 0; i < (int)sizeof p; i++) p[i] = (unsigned char)((i % 512) % 63);
    for (long n = atol(argv[1]); n > 0; n--) {
        size_t done = 0;
        while (done < sizeof p) {
            ssize_t w = write(1, p + done, sizeof p - done);
            if (w <= 0) return 1;
            done += (size_t)w;
        }
    }
    return 0;
}
