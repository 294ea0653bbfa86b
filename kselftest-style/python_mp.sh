#!/bin/bash
# python_mp: python3 multiprocessing (fork): two worker processes fed
# through multiprocessing.Queue (pipes, a feeder thread, and POSIX
# semaphores mapped from unlinked /dev/shm files). The main process logs each
# batch of results; after restart the batches go on and stay right
# (python_mp.check).
. "${BASH_SOURCE%/*}/cr.sh"
py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3) || ksft_exit_skip "no python3"
exec "$py" - "$CR_DIR" <<'PY'
import multiprocessing as mp, os, sys, time
d = sys.argv[1]
def worker(q, r):
    for x in iter(q.get, None):
        r.put((x, x * x))
if __name__ == "__main__":
    mp.set_start_method("fork")
    q, r = mp.Queue(), mp.Queue()
    for _ in range(2):
        mp.Process(target=worker, args=(q, r), daemon=True).start()
    out = open(os.path.join(d, "results"), "a", buffering=1)
    n = 0
    while True:
        batch = range(n * 10, n * 10 + 10)
        for x in batch:
            q.put(x)
        got = sorted(r.get(timeout=30) for _ in batch)
        out.write("%d %s\n" % (n, "ok" if got == [(x, x * x) for x in batch] else "BAD"))
        n += 1
        if n == 5:
            open(os.path.join(d, "ready.tmp"), "w").close()
            os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
        time.sleep(0.05)
PY
