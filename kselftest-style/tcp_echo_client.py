# tcp_echo_client.py PORT DIR SECONDS: three connections to the echo
# server, streaming numbered lines the whole time; every line must come
# back exactly once, in order. Writes its verdict to DIR/client.verdict.
# Started detached by tcp_echo.c, so it is not part of the checkpoint.
import socket, sys, time

port, d, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
verdict = "bad: nothing ran"
try:
    conns = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(3)]
    sent = [0, 0, 0]
    want = [0, 0, 0]
    bufs = [b"", b"", b""]
    open(d + "/client.connected", "w").close()

    def drain(i, block):
        s = conns[i]
        s.settimeout(20 if block else 0.001)
        try:
            data = s.recv(65536)
        except (socket.timeout, BlockingIOError):
            return
        if not data:
            raise RuntimeError("connection %d closed by the server" % i)
        bufs[i] += data
        *lines, bufs[i] = bufs[i].split(b"\n")
        for line in lines:
            if int(line) != want[i]:
                raise RuntimeError("connection %d: got %s, want %d" % (i, line, want[i]))
            want[i] += 1

    end = time.time() + seconds
    while time.time() < end:
        for i, s in enumerate(conns):
            s.settimeout(20)
            s.sendall(b"%d\n" % sent[i])
            sent[i] += 1
            drain(i, False)
        time.sleep(0.002)
    for i in range(3):
        while want[i] < sent[i]:
            drain(i, True)
    verdict = "ok %s lines" % sent
except Exception as e:
    verdict = "bad: %s" % e
with open(d + "/client.verdict.tmp", "w") as f:
    f.write(verdict + "\n")
import os
os.rename(d + "/client.verdict.tmp", d + "/client.verdict")
