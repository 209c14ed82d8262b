"""python-libusb1 with many asynchronous transfers in flight on the lab's Loopback board:
16 bulk OUT transfers of 4 KiB and 16 bulk IN transfers submitted at once, events handled
until all are done; what came back must be what went out, in order. Prints a summary that is
the same on the device directly and through usbhttpd's libusb backend.

    python async_loopback.py
"""
import hashlib
import sys

import usb1

VENDOR, LOOPBACK = 0x1209, 0x0002
COUNT, SIZE = 16, 4096


def main():
    with usb1.USBContext() as context:
        handle = context.openByVendorIDAndProductID(VENDOR, LOOPBACK)
        if handle is None:
            sys.exit("no Loopback board")
        with handle.claimInterface(0):
            sent = [bytes((i * 7 + n) % 256 for n in range(SIZE)) for i in range(COUNT)]
            received = [None] * COUNT
            pending = set()

            def done(transfer):
                pending.discard(transfer)
                if transfer.getStatus() != usb1.TRANSFER_COMPLETED:
                    print(f"transfer ended with status {transfer.getStatus()}", flush=True)
                    return
                index = transfer.getUserData()
                if index is not None:
                    received[index] = bytes(transfer.getBuffer()[:transfer.getActualLength()])

            transfers = []
            for index in range(COUNT):
                read = handle.getTransfer()
                read.setBulk(0x81, SIZE, callback=done, user_data=index, timeout=10000)
                write = handle.getTransfer()
                write.setBulk(0x02, sent[index], callback=done, user_data=None, timeout=10000)
                transfers += [read, write]
            for transfer in transfers:
                transfer.submit()
                pending.add(transfer)
            in_flight = len(pending)
            while pending:
                context.handleEvents()
            whole = all(r is not None for r in received)
            same = whole and b"".join(received) == b"".join(sent)
            digest = hashlib.sha256(b"".join(r or b"" for r in received)).hexdigest()[:16]
            print(f"in flight at once: {in_flight}; came back whole and in order: {same}; {digest}")


main()
