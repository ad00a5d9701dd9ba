#!/usr/bin/env python3
"""A checkpoint engine's side of the `hac serve` control protocol, in Python (standard library
only): tag a VF, run checkpoint epochs (open the next one, commit the previous one when the
backup has acknowledged it) and read the VF's counters.

The protocol (docs/control.md, schema in docs/control-schema.json): one JSON object per line
over a Unix stream socket, one answer line per request, in order. All requests go on one
connection, so the daemon applies them in the order sent.

    python3 examples/hac_client.py --socket /tmp/hac.sock --vf 1 --epochs 5

On the built-in model (`hac serve --model`) the stand-in VM on the VF sends --frames frames in
each epoch (`send`), so the commits have something to release. Prints one JSON summary line;
exit status 0, or 1 with a one-line error on stderr if the daemon refused a request or went
away.
"""

import argparse
import json
import socket
import sys
import time


class Refused(Exception):
    """The daemon answered a request with an error."""


class HacClient:
    """One connection to the daemon."""

    def __init__(self, path, timeout=30.0, transcript=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.reader = self.sock.makefile("r", encoding="utf-8", newline="\n")
        self.next_id = 1
        self.transcript = transcript

    def call(self, op, **fields):
        """Sends one request and returns its `result`; raises Refused on an error answer."""
        request = {"op": op, "id": self.next_id}
        request.update(fields)
        self.next_id += 1
        self.sock.sendall((json.dumps(request) + "\n").encode("utf-8"))
        line = self.reader.readline()
        if not line:
            raise ConnectionError("the daemon closed the connection")
        if self.transcript is not None:
            self.transcript.write(json.dumps({"op": op, "request": request, "response": line.rstrip("\n")}) + "\n")
        answer = json.loads(line)
        if answer.get("id") != request["id"]:
            raise ConnectionError("answer %r does not match request %r" % (answer.get("id"), request["id"]))
        if not answer.get("ok"):
            error = answer.get("error", {})
            raise Refused("%s: %s: %s" % (op, error.get("code"), error.get("message")))
        return answer["result"]

    def vf_stats(self, vf):
        """The VF's counters (`stats` with `vf`)."""
        return self.call("stats", vf=vf)["vfs"][0]

    def close(self):
        self.reader.close()
        self.sock.close()


def wait_for(what, predicate, timeout=10.0):
    """Polls `predicate` (which returns a value or None) until it gives a value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(0.02)


def run(args, transcript):
    client = HacClient(args.socket, transcript=transcript)
    try:
        hello = client.call("hello")
        can_send = hello.get("backend", "").startswith("model") and hello.get("backend") != "model-mlx5"
        client.call("tag", vf=args.vf)
        before = client.vf_stats(args.vf)
        epoch, commits, sent = 1, 0, 0
        for _ in range(args.epochs):
            if can_send and args.frames > 0:
                sent += client.call("send", vf=args.vf, frames=args.frames, len=args.len)["queued"]
            time.sleep(args.period_ms / 1000.0)
            # Checkpoint `epoch` is taken: later frames belong to the next epoch. The backup
            # acknowledges at once here, so `epoch` commits.
            client.call("open", vf=args.vf, epoch=epoch + 1)
            client.call("commit", vf=args.vf, epoch=epoch)
            commits += 1
            epoch += 1
        # The last frames may have reached the TX ring after the last open: let the stand-in VM
        # hand them all over, then close the open epoch too.
        wait_for("the VF's send queue to drain",
                 lambda: True if client.vf_stats(args.vf)["workload_queued"] == 0 else None)
        client.call("open", vf=args.vf, epoch=epoch + 1)
        client.call("commit", vf=args.vf, epoch=epoch)
        commits += 1
        epoch += 1
        after = wait_for(
            "the committed frames to be released",
            lambda: (lambda s: s if s["hac_buffered_frames"] == 0
                     and s["hac_released"] - before["hac_released"] >= sent else None)(client.vf_stats(args.vf)))
        if args.untag:
            client.call("untag", vf=args.vf)
        return {
            "vf": args.vf,
            "backend": hello.get("backend"),
            "epochs_committed": commits,
            "open_epoch": after["hac_open_epoch"],
            "committed_epoch": after["hac_committed_epoch"],
            "frames_sent": sent,
            "released": after["hac_released"] - before["hac_released"],
            "discarded": after["hac_discarded"] - before["hac_discarded"],
            "tx_packets": after["tx_packets"],
        }
    finally:
        client.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", default="/run/hac.sock", help="the daemon's control socket")
    parser.add_argument("--vf", type=int, default=1, help="the VF (0-based)")
    parser.add_argument("--epochs", type=int, default=5, help="checkpoint epochs to run")
    parser.add_argument("--period-ms", type=int, default=20, help="epoch length, ms")
    parser.add_argument("--frames", type=int, default=4, help="frames the model's VF sends per epoch")
    parser.add_argument("--len", type=int, default=128, help="their length without FCS")
    parser.add_argument("--untag", action="store_true", help="stop checkpointing the VF at the end")
    parser.add_argument("--transcript", help="write every request and answer line to this file (JSON lines)")
    args = parser.parse_args()
    transcript = open(args.transcript, "w", encoding="utf-8") if args.transcript else None
    try:
        summary = run(args, transcript)
    except (OSError, ValueError, KeyError, Refused, TimeoutError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    finally:
        if transcript is not None:
            transcript.close()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
