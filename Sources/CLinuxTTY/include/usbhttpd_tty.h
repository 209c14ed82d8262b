#ifndef USBHTTPD_TTY_H
#define USBHTTPD_TTY_H
// A serial console's line settings and modem lines, through the kernel's termios2 (any baud
// rate, with BOTHER) and the TIOCM ioctls. In C of its own, not in CLinux's header: termios2
// comes from <asm/termbits.h>, whose `struct termios` would clash with glibc's <termios.h>
// that Swift's Glibc module imports; this header shows Swift plain values only. ioctl(2) is
// variadic, which Swift cannot call either.

/// A line's settings, as the API names them.
struct usbhttpd_tty_line {
    unsigned int baud;
    int data_bits;       // 5-8
    char parity;         // 'n', 'e', 'o', 'm' (mark), 's' (space)
    int stop_bits;       // 1 or 2
    int rtscts;          // hardware flow control
    int xonxoff;         // software flow control
};

// The modem lines (TIOCM_*), as bits of usbhttpd_tty_modem_get's result.
enum {
    USBHTTPD_TTY_DTR = 0x002,
    USBHTTPD_TTY_RTS = 0x004,
    USBHTTPD_TTY_CTS = 0x020,
    USBHTTPD_TTY_CD = 0x040,
    USBHTTPD_TTY_RI = 0x080,
    USBHTTPD_TTY_DSR = 0x100,
};

/// Raw mode (no echo, no line editing, no translation, 8 bits, receiver on, modem control
/// lines ignored for the open), keeping the baud rate. -1 with errno on failure.
int usbhttpd_tty_make_raw(int fd);
/// The line's settings now (TCGETS2).
int usbhttpd_tty_get_line(int fd, struct usbhttpd_tty_line *line);
/// New settings (TCSETS2), after output already written has gone out (TCSETSW2's drain is
/// not wanted: a stuck line would block the daemon's thread, so TCSETS2).
int usbhttpd_tty_set_line(int fd, const struct usbhttpd_tty_line *line);
/// The modem lines (TIOCMGET).
int usbhttpd_tty_modem_get(int fd, int *bits);
/// Raises the lines in `set` and lowers those in `clear` (TIOCMBIS, TIOCMBIC).
int usbhttpd_tty_modem_change(int fd, int set, int clear);
/// Starts (`on`) or ends a break (TIOCSBRK, TIOCCBRK): the caller times it.
int usbhttpd_tty_break(int fd, int on);

/// A new pseudo-terminal's master (posix_openpt, grantpt, unlockpt), its slave's path in
/// `name` (ptsname_r): for tests, where a pseudo-terminal plays a board's serial port.
/// Swift's Glibc module leaves these out (they need _XOPEN_SOURCE).
int usbhttpd_tty_open_pty(char *name, int size);

#endif
