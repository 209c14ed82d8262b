#ifndef USBHTTPD_CGNUTLS_SHIM_H
#define USBHTTPD_CGNUTLS_SHIM_H
// Only includes: GnuTLS's digests (SHA-256 of bearer tokens). GnuTLS is already there as
// libmicrohttpd's TLS library.
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#endif
