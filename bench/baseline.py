"""The baseline: the original "EFS Lambda" pattern's storage design, rewritten for the benchmark.

The original pattern's Python function keeps every message as one line of one shared file on the
EFS mount (``/mnt/msg/content``):

* POST appends ``body + "\\n"`` with ``open(path, "a")`` under an exclusive ``flock``, then answers
  with the whole file, read under a shared ``flock``;
* GET reads the whole file under a shared ``flock``;
* DELETE removes the file.

This module implements the same handler (same calls, same order) so that it can be timed on the
same file systems as the Rust designs, and speaks the harness's line protocol:

    python3 baseline.py serve --file /path/to/mount/content

Each request is one JSON line (``{"op": "post", "count": K, "size": S}``, ``{"op": "list",
"repeat": R}``, ``{"op": "get", "positions": [...]}``, ``{"op": "delete_all"}``,
``{"op": "quit"}``); each answer is one JSON line with the handler's durations in nanoseconds,
measured here with ``time.perf_counter_ns`` around the handler call only.
"""

import fcntl
import json
import os
import sys
import time

MSG_FILE_PATH = "/mnt/msg/content"


def get_messages():
    try:
        with open(MSG_FILE_PATH, "r") as msg_file:
            fcntl.flock(msg_file, fcntl.LOCK_SH)
            messages = msg_file.read()
            fcntl.flock(msg_file, fcntl.LOCK_UN)
    except OSError:
        messages = "No message yet."
    return messages


def add_message(new_message):
    with open(MSG_FILE_PATH, "a") as msg_file:
        fcntl.flock(msg_file, fcntl.LOCK_EX)
        msg_file.write(new_message + "\n")
        fcntl.flock(msg_file, fcntl.LOCK_UN)


def delete_messages():
    try:
        os.remove(MSG_FILE_PATH)
    except OSError:
        pass


def lambda_handler(event, context):
    method = event["requestContext"]["http"]["method"]
    if method == "GET":
        messages = get_messages()
    elif method == "POST":
        add_message(event["body"])
        messages = get_messages()
    elif method == "DELETE":
        delete_messages()
        messages = "Messages deleted."
    else:
        messages = "Method unsupported."
    return messages


def body(size, n):
    """The same message bodies as the Rust side (efs-bench's `body`)."""
    text = f"message {n:08d} "
    return (text + "x" * max(size - len(text), 0))[: max(size, 1)]


def event(method, body_text=None):
    return {"requestContext": {"http": {"method": method}}, "body": body_text}


def answer(request, state):
    op = request.get("op")
    clock = time.perf_counter_ns
    if op == "post":
        # lambda_handler's POST branch, step by step, so that the append alone is timed too
        # (what a POST would cost if it did not answer with the whole wall).
        ns, append_ns = [], []
        for _ in range(int(request.get("count", 1))):
            state["posted"] += 1
            ev = event("POST", body(int(request.get("size", 256)), 1_000_000 + state["posted"]))
            start = clock()
            add_message(ev["body"])
            appended = clock()
            get_messages()
            ns.append(clock() - start)
            append_ns.append(appended - start)
        return {"ns": ns, "append_ns": append_ns, "errors": 0}
    if op == "list":
        ns, text = [], ""
        for _ in range(int(request.get("repeat", 1))):
            start = clock()
            text = lambda_handler(event("GET"), None)
            ns.append(clock() - start)
        return {"ns": ns, "errors": 0, "messages": text.count("\n"), "bytes": len(text.encode())}
    if op == "get":
        # The original has no per-message read: a client gets the whole wall and picks one line.
        ns, bad = [], 0
        for position in request.get("positions", []):
            start = clock()
            lines = lambda_handler(event("GET"), None).split("\n")
            line = lines[position] if position < len(lines) else None
            ns.append(clock() - start)
            bad += line is None
        return {"ns": ns, "errors": bad}
    if op == "delete_all":
        start = clock()
        lambda_handler(event("DELETE"), None)
        return {"ns": [clock() - start], "errors": 0, "deleted": None}
    return {"error": f"unknown op {op!r}"}


def serve(path):
    global MSG_FILE_PATH
    MSG_FILE_PATH = path
    state = {"posted": 0}
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("op") == "quit":
            break
        try:
            reply = answer(request, state)
        except Exception as e:  # report, keep serving
            reply = {"error": repr(e)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve" and sys.argv[2] == "--file":
        serve(sys.argv[3])
    else:
        sys.exit("usage: baseline.py serve --file PATH")
