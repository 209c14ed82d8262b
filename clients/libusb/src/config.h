/*
 * config.h for libusb's core built with the usbhttpd backend (clients/libusb/build): what
 * libusb's configure finds on Debian 12 (Linux, glibc), written out, so the build needs no
 * autotools and gives the same core on every machine.
 */
#define _GNU_SOURCE 1
#define DEFAULT_VISIBILITY __attribute__ ((visibility ("default")))
#define PRINTF_FORMAT(a, b) __attribute__ ((__format__ (__printf__, a, b)))
#define PLATFORM_POSIX 1
#define ENABLE_LOGGING 1
#define HAVE_CLOCK_GETTIME 1
#define HAVE_EVENTFD 1
#define HAVE_TIMERFD 1
#define HAVE_PIPE2 1
#define HAVE_NFDS_T 1
#define HAVE_PTHREAD_CONDATTR_SETCLOCK 1
#define HAVE_SYS_TIME_H 1
#define HAVE_SYSLOG 1
