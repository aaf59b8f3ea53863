"""Start `airgap-lsp serve` under an independent network watcher.

Usage: python netwatch.py EVENTS.jsonl [--plant] [--watch-open DIR]

A first audit hook, added before any project code runs, records every socket event of the
process to EVENTS.jsonl: it sees what the server's own guard sees, but does not trust it. A last
hook, added after the guard, is a backstop: should the guard let a non-local connection through,
it records a leak and refuses the connection itself, so that no test ever sends a packet out.

With --watch-open DIR, every file the process opens under DIR is recorded as well (the `open`
audit event, which Python's file functions raise before the system call).

The index's worker processes start by importing this script again (multiprocessing's `spawn`),
so they are watched the same way; each line names its process (`pid`), and each process writes a
`start` line saying whether it is the server. A worker does not install the egress guard here:
its guard is the one the server gives its workers, and each file opened under --watch-open is
recorded with whether the process's guard was installed by then.

With --plant, the server gets a command `airgap.test.phoneHome` that tries to reach out the way a
plug-in or a library that phones home would.
"""

from __future__ import annotations

import json
import os
import socket
import sys

EVENTS = open(sys.argv[1], "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life
PLANT = "--plant" in sys.argv
WATCHED = sys.argv[sys.argv.index("--watch-open") + 1] if "--watch-open" in sys.argv else None
SERVER = __name__ == "__main__"  # else an index worker, importing this again as __mp_main__


def _record(kind: str, event: str, args: tuple[object, ...]) -> None:
    """One line per event; for a socket's own events, its family and the rest of the arguments."""
    sock = args[0] if args and isinstance(args[0], socket.socket) else None
    family = int(sock.family) if sock is not None else None
    doc = {
        "kind": kind,
        "event": event,
        "family": family,
        "args": repr(args[1:] if sock else args),
        "pid": os.getpid(),  # the server's, or a worker process's (they import this again)
    }
    EVENTS.write(json.dumps(doc) + "\n")
    EVENTS.flush()


def guarded() -> bool:
    """Whether this process's egress guard is installed (in a worker: by the server's
    initializer; netwatch installs none there)."""
    guard = sys.modules.get("airgap_lsp.egress")
    return guard is not None and getattr(guard, "_state", None) is not None


def watcher(event: str, args: tuple[object, ...]) -> None:
    if event.startswith("socket."):
        _record("seen", event, args)
    elif event == "open" and WATCHED and isinstance(args[0], (str, os.PathLike)):
        path = os.fspath(args[0])
        if isinstance(path, str) and path.startswith(WATCHED):
            _record("opened", event, (path, guarded()))


sys.addaudithook(watcher)
_record("start", "netwatch", (SERVER,))

from airgap_lsp import egress  # noqa: E402

if SERVER:
    egress.install()

LOOPBACK = ("127.", "::1", "localhost")


def backstop(event: str, args: tuple[object, ...]) -> None:
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        sock = args[0] if event == "socket.connect" else None
        if sock is not None and getattr(sock, "family", None) == socket.AF_UNIX:
            return
        target = args[1] if event == "socket.connect" else args[0]
        host = target[0] if isinstance(target, tuple) else target
        if isinstance(host, str) and not host.startswith(LOOPBACK):
            _record("leaked", event, args)
            raise RuntimeError(f"the egress guard let {event} {target!r} through")


sys.addaudithook(backstop)

if PLANT:
    import lsp_server.wiring as server_module

    build = server_module.build_server

    def build_with_plant(policy=None):  # type: ignore[no-untyped-def]
        server = build(policy)

        @server.command("airgap.test.phoneHome")
        def phone_home(*_args):  # type: ignore[no-untyped-def]
            results = {}
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.connect(("192.0.2.1", 443))  # TEST-NET-1: documentation only
                results["connect"] = "connected"
            except PermissionError as exc:
                results["connect"] = f"{type(exc).__name__}: {exc}"
            finally:
                sock.close()
            try:
                socket.getaddrinfo("telemetry.example.com", 443)
                results["lookup"] = "resolved"
            except PermissionError as exc:
                results["lookup"] = f"{type(exc).__name__}: {exc}"
            return results

        return server

    server_module.build_server = build_with_plant

from airgap_lsp.cli import main  # noqa: E402

if __name__ == "__main__":  # the index's worker processes import this script again
    sys.exit(main(["serve"]))
