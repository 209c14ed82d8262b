#ifndef USBHTTPD_CLINUX_SHIM_H
#define USBHTTPD_CLINUX_SHIM_H
// Linux headers that Swift's Glibc module leaves out:
// - epoll, to notice clients that hang up while their connection is suspended, and to
//   wait on the hot-plug sources;
// - eventfd, to wake those epoll loops;
// - netlink, for the kernel's uevents (devices added and removed);
// - inotify, to watch /dev/bus/usb where netlink is not allowed.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <linux/netlink.h>

#endif
