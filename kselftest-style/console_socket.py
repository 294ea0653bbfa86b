#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# console_socket.py SOCK DIR: a runtime's console socket (runc
# --console-socket SOCK), for runc_tty.sh. It holds every pty master it is
# sent and relays the newest: what the terminal writes is appended to
# DIR/tty.out, each master's output after a line "== master N ==" (N from
# 1), and what is written to the FIFO DIR/tty.in goes to it. DIR/console.ready
# appears once SOCK listens. Runs until killed.
import os
import select
import socket
import sys

sock_path, d = sys.argv[1], sys.argv[2]
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sock_path)
listener.listen(4)
fifo = os.path.join(d, "tty.in")
os.mkfifo(fifo)
# Read-write: the FIFO never reads end-of-file between writers.
tty_in = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
out = open(os.path.join(d, "tty.out"), "ab", buffering=0)
open(os.path.join(d, "console.ready"), "w").close()

masters = []  # every master received, the newest last
live = []  # those not hung up
while True:
    readable, _, _ = select.select([listener, tty_in] + live, [], [])
    for r in readable:
        if r is listener:
            conn, _ = listener.accept()
            with conn:
                _, fds, _, _ = socket.recv_fds(conn, 4096, 4)
            for fd in fds:
                masters.append(fd)
                live.append(fd)
                out.write(b"== master %d ==\n" % len(masters))
        elif r is tty_in:
            data = os.read(tty_in, 4096)
            if masters:
                os.write(masters[-1], data)
        else:
            try:
                data = os.read(r, 4096)
            except OSError:  # EIO: every slave closed
                data = b""
            if data and r == masters[-1]:
                out.write(data)
            elif not data:
                live.remove(r)
