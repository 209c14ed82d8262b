#!/usr/bin/env python3
"""Plays a board on the device side of a lab serial adapter (the ACM gadget's /dev/ttyGS0 in
the guest, or QEMU's FTDI chip through its chardev socket on the host: `unix:PATH`):
prints a boot log, then a prompt, and answers commands the way a board's shell does (echoing
what is typed):

    help              the commands
    echo WORDS        WORDS back
    flood BYTES RATE  BYTES of a counting pattern (byte i is i % 251) at RATE bytes a second,
                      then "flood done"
    exit              ends the board

    board.py TTY|unix:PATH [BOOT_LINES]
"""
import os
import socket
import sys
import termios
import time
import tty

BOOT = [
    "U-Boot lab 2024.01 (usbhttpd)",
    "DRAM:  64 MiB",
    "Loading kernel from mmc 0:1 ...",
    "Starting kernel ...",
]


def main():
    path = sys.argv[1]
    lines = int(sys.argv[2]) if len(sys.argv) > 2 else len(BOOT)
    if path.startswith("unix:"):
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(path[len("unix:"):])
        fd = connection.fileno()
    else:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        attributes = termios.tcgetattr(fd)
        attributes[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, attributes)

    def write(data):
        while data:
            data = data[os.write(fd, data):]

    def say(text):
        write(text.encode())

    for line in BOOT[:lines]:
        say(line + "\r\n")
    say("board> ")
    typed = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return
        for byte in chunk:
            if byte in (13, 10):
                say("\r\n")
                if answer(typed.decode(errors="replace").strip(), say, write) is False:
                    return
                say("board> ")
                typed = b""
            elif byte == 3:  # Ctrl-C
                say("^C\r\nboard> ")
                typed = b""
            else:
                typed += bytes([byte])
                say(chr(byte))


def answer(command, say, write):
    words = command.split()
    if not words:
        return True
    if words[0] == "help":
        say("commands: help, echo, flood, exit\r\n")
    elif words[0] == "echo":
        say(" ".join(words[1:]) + "\r\n")
    elif words[0] == "flood" and len(words) == 3:
        flood(int(words[1]), int(words[2]), write)
        say("flood done\r\n")
    elif words[0] == "exit":
        return False
    else:
        say(f"unknown command: {words[0]}\r\n")
    return True


def flood(total, rate, write):
    pattern = bytes(i % 251 for i in range(251 * 64))
    started = time.monotonic()
    sent = 0
    piece = 4096
    while sent < total:
        count = min(piece, total - sent)
        offset = sent % 251
        write(pattern[offset:offset + count])
        sent += count
        ahead = sent / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


if __name__ == "__main__":
    main()
