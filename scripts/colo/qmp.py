#!/usr/bin/env python3
"""A minimal QMP client for scripts/colo/run.sh.

    qmp.py SOCKET CMD [CMD...]   each CMD a JSON object ({"execute": ..., "arguments": ...})
                                 or a bare command name; prints each command's "return" as
                                 one JSON line; exit 1 (the error on stderr) on the first error.
    qmp.py SOCKET --wait-status STATUS SECONDS
                                 polls query-migrate until its status is STATUS.
"""
import json
import socket
import sys
import time


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    f = s.makefile("rw")
    json.loads(f.readline())  # greeting
    call(f, {"execute": "qmp_capabilities"})
    return s, f


def call(f, cmd):
    f.write(json.dumps(cmd) + "\n")
    f.flush()
    while True:
        msg = json.loads(f.readline())
        if "return" in msg:
            return msg["return"]
        if "error" in msg:
            raise RuntimeError("%s: %s" % (cmd.get("execute"), msg["error"].get("desc")))


def main():
    path = sys.argv[1]
    _, f = connect(path)
    if sys.argv[2] == "--wait-status":
        want, limit = sys.argv[3], float(sys.argv[4])
        t0 = time.time()
        while time.time() - t0 < limit:
            st = call(f, {"execute": "query-migrate"}).get("status")
            if st == want:
                print(json.dumps({"status": st, "after_s": round(time.time() - t0, 2)}))
                return 0
            if st in ("failed", "cancelled", "completed"):
                break  # "completed" while waiting for "colo": COLO ended (or never began)
            time.sleep(0.2)
        print("status %s, not %s" % (st, want), file=sys.stderr)
        return 1
    for c in sys.argv[2:]:
        cmd = json.loads(c) if c.startswith("{") else {"execute": c}
        print(json.dumps(call(f, cmd)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # one line for the harness log
        print("qmp.py: %s" % e, file=sys.stderr)
        sys.exit(1)
