#define _GNU_SOURCE
#include "usbhttpd_tty.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <asm/termbits.h>
#include <errno.h>
#include <sys/ioctl.h>

int usbhttpd_tty_make_raw(int fd) {
    struct termios2 t;
    if (ioctl(fd, TCGETS2, &t) < 0) return -1;
    t.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXOFF | IXANY);
    t.c_oflag &= ~OPOST;
    t.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(CSIZE | PARENB | CMSPAR);
    t.c_cflag |= CS8 | CREAD | CLOCAL;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    return ioctl(fd, TCSETS2, &t);
}

int usbhttpd_tty_get_line(int fd, struct usbhttpd_tty_line *line) {
    struct termios2 t;
    if (ioctl(fd, TCGETS2, &t) < 0) return -1;
    line->baud = t.c_ospeed;
    switch (t.c_cflag & CSIZE) {
    case CS5: line->data_bits = 5; break;
    case CS6: line->data_bits = 6; break;
    case CS7: line->data_bits = 7; break;
    default: line->data_bits = 8; break;
    }
    if (!(t.c_cflag & PARENB)) line->parity = 'n';
    else if (t.c_cflag & CMSPAR) line->parity = (t.c_cflag & PARODD) ? 'm' : 's';
    else line->parity = (t.c_cflag & PARODD) ? 'o' : 'e';
    line->stop_bits = (t.c_cflag & CSTOPB) ? 2 : 1;
    line->rtscts = (t.c_cflag & CRTSCTS) ? 1 : 0;
    line->xonxoff = (t.c_iflag & (IXON | IXOFF)) ? 1 : 0;
    return 0;
}

int usbhttpd_tty_set_line(int fd, const struct usbhttpd_tty_line *line) {
    struct termios2 t;
    if (ioctl(fd, TCGETS2, &t) < 0) return -1;
    tcflag_t size;
    switch (line->data_bits) {
    case 5: size = CS5; break;
    case 6: size = CS6; break;
    case 7: size = CS7; break;
    case 8: size = CS8; break;
    default: errno = EINVAL; return -1;
    }
    t.c_cflag &= ~(CBAUD | CIBAUD | CSIZE | PARENB | PARODD | CMSPAR | CSTOPB | CRTSCTS);
    t.c_cflag |= BOTHER | (BOTHER << IBSHIFT) | size;
    t.c_ispeed = t.c_ospeed = line->baud;
    switch (line->parity) {
    case 'n': break;
    case 'e': t.c_cflag |= PARENB; break;
    case 'o': t.c_cflag |= PARENB | PARODD; break;
    case 'm': t.c_cflag |= PARENB | CMSPAR | PARODD; break;
    case 's': t.c_cflag |= PARENB | CMSPAR; break;
    default: errno = EINVAL; return -1;
    }
    if (line->stop_bits == 2) t.c_cflag |= CSTOPB;
    else if (line->stop_bits != 1) { errno = EINVAL; return -1; }
    if (line->rtscts) t.c_cflag |= CRTSCTS;
    t.c_iflag &= ~(IXON | IXOFF | IXANY);
    if (line->xonxoff) t.c_iflag |= IXON | IXOFF;
    return ioctl(fd, TCSETS2, &t);
}

int usbhttpd_tty_modem_get(int fd, int *bits) { return ioctl(fd, TIOCMGET, bits); }

int usbhttpd_tty_modem_change(int fd, int set, int clear) {
    if (set && ioctl(fd, TIOCMBIS, &set) < 0) return -1;
    if (clear && ioctl(fd, TIOCMBIC, &clear) < 0) return -1;
    return 0;
}

int usbhttpd_tty_break(int fd, int on) { return ioctl(fd, on ? TIOCSBRK : TIOCCBRK); }

int usbhttpd_tty_open_pty(char *name, int size) {
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return -1;
    if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, (size_t)size) != 0) {
        int saved = errno;
        close(master);
        errno = saved;
        return -1;
    }
    return master;
}
