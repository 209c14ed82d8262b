#ifndef USBHTTPD_CLINUX_SHIM_H
#define USBHTTPD_CLINUX_SHIM_H
// Linux headers that Swift's Glibc module leaves out:
// - epoll, to notice clients that hang up while their connection is suspended, and to
//   wait on the hot-plug sources;
// - eventfd, to wake those epoll loops;
// - netlink, for the kernel's uevents (devices added and removed);
// - inotify, to watch /dev/bus/usb where netlink is not allowed;
// - TCP_NODELAY, for connections taken over from libmicrohttpd (WebSockets);
// - posix_spawn's closefrom action, for the lab tests' child processes;
// - mkostemp, for temporary files created exclusively and closed on exec in one call.
#include <spawn.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <netinet/tcp.h>
#include <linux/netlink.h>

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34), which Swift's Glibc module does
/// not declare: the spawned child closes every descriptor from `from` on, so that it keeps
/// none of the parent's pipes open.
static inline int usbhttpd_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

/// mkostemp(3) (a GNU extension the Glibc module leaves out): creates a file under an
/// unguessable name from `template_` (…XXXXXX) with O_CREAT|O_EXCL and `flags` (O_CLOEXEC),
/// never opening a file or link already there.
static inline int usbhttpd_mkostemp(char *template_, int flags) {
    return mkostemp(template_, flags);
}

#endif
