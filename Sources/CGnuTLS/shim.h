#ifndef USBHTTPD_CGNUTLS_SHIM_H
#define USBHTTPD_CGNUTLS_SHIM_H
// Only includes: GnuTLS's digests (SHA-256 of bearer tokens, SHA-1 of the WebSocket
// handshake) and records (a TLS connection taken over for a WebSocket). GnuTLS is already
// there as libmicrohttpd's TLS library.
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#endif
