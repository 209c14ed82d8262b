#ifndef USBHTTPD_CLINUX_SHIM_H
#define USBHTTPD_CLINUX_SHIM_H
// Linux headers that Swift's Glibc module leaves out: epoll (to notice clients that hang
// up while their connection is suspended) and eventfd (to wake that epoll loop).
#include <sys/epoll.h>
#include <sys/eventfd.h>

#endif
