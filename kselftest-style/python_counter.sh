#!/bin/bash
# python_counter: a python3 loop appending a counter to $CR_DIR/counter
# every 50 ms (file kept open, O_APPEND, line-buffered); after restart the
# counter goes on from where it was (python_counter.check).
. "${BASH_SOURCE%/*}/cr.sh"
# The system python if there is one (fast, no wrapper); else resolve
# wrappers (pyenv shims...) so that the subject is python itself.
if [[ -x /usr/bin/python3 ]]; then
	py=/usr/bin/python3
else
	py=$(command -v python3) || ksft_exit_skip "no python3"
	py=$("$py" -c 'import sys; print(sys.executable)') || ksft_exit_fail_msg "python3 does not run"
fi
exec "$py" -c '
import os, sys, time
d = os.environ["CR_DIR"]
path = os.path.join(d, "counter")
f = open(path, "a", buffering=1)
i = 0
while True:
    f.write("%d\n" % i)
    i += 1
    if i == 10:
        with open(path) as r:
            got = r.read().split()
        if got != [str(n) for n in range(10)]:
            print("Bail out! setup: counter file holds %r" % got[:20], flush=True)
            sys.exit(1)
        print("# setup ok: pid %d counting" % os.getpid(), flush=True)
        open(os.path.join(d, "ready.tmp"), "w").close()
        os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
    time.sleep(0.05)
'
