"""pyserial URL handlers for usbhttpd's consoles: `usbhttpd://` (plain HTTP) and
`usbhttpds://` (TLS). `import usbhttpd` registers them with pyserial, so that

    serial.serial_for_url("usbhttpd://bench-7:8080/1-3/0", baudrate=115200, timeout=1)

opens console 0 of device 1-3 on the daemon at bench-7:8080, and scripts written for pyserial
(and pexpect's SerialSpawn) run unchanged. The URL: `usbhttpd://HOST:PORT/DEVICE[/INTERFACE]`
(DEVICE a port path or serial:NUMBER; INTERFACE 0 by default) with, as query parameters,
`start=start|end` (start: the output the daemon kept, the boot log included; end, the default:
only what comes next), `write=false` (read along while another client types), `verify=false`
or `verify=PATH` (TLS), `plain_token=1` (allow the token over plain HTTP to another host). The
token comes from the environment (USBHTTPD_TOKEN), never from the URL (URLs end up in logs).
"""
