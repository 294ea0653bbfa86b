#!/bin/bash
# python_threads: python3 with 4 worker threads counting, checkpointed and
# restarted: every thread goes on counting from where it was
# (python_threads.check).
. "${BASH_SOURCE%/*}/cr.sh"
py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3) || ksft_exit_skip "no python3"
exec "$py" - "$CR_DIR" <<'PY'
import os, sys, threading, time
d = sys.argv[1]
counts = [0] * 4
def work(i):
    while True:
        counts[i] += 1
        time.sleep(0.005)
for i in range(4):
    threading.Thread(target=work, args=(i,), daemon=True).start()
out = open(os.path.join(d, "counts"), "a", buffering=1)
lines = 0
while True:
    time.sleep(0.05)
    out.write(" ".join(map(str, counts)) + "\n")
    lines += 1
    if lines == 10:
        open(os.path.join(d, "ready.tmp"), "w").close()
        os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
PY
