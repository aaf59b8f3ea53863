"""The egress guard: this process connects to loopback and nothing else.

A Python audit hook sees every socket connect, send and name look-up before the system call is
made, so refusing there means no packet and no DNS query ever leaves. The hook cannot be removed
once installed, which is what we want for a process that promises never to reach out.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from inference.offline import set_offline_env

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


class EgressRefused(PermissionError):
    """Raised inside the code that tried to reach a non-local address."""


@dataclass
class _GuardState:
    allowed_hosts: frozenset[str] = frozenset()
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_state: _GuardState | None = None


def _is_local_host(host: object, allowed: frozenset[str]) -> bool:
    if host is None:  # passive look-ups (bind to any) resolve nothing remotely
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").lower()
    if name in LOCAL_NAMES or name in allowed:
        return True
    try:
        return ipaddress.ip_address(name.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _address_host(address: object) -> object:
    """The host part of a socket address; None for a Unix socket path (always local)."""
    if isinstance(address, tuple) and address:
        return address[0]
    if isinstance(address, str | bytes):
        return None
    return address


def _refuse(event: str, target: object) -> None:
    assert _state is not None
    message = (
        f"airgap-lsp refused an outbound {event} to {target!r}: this process talks to loopback "
        "only. If this is an internal inference server, an administrator must allow-list it."
    )
    with _state.lock:
        _state.refused.append(f"{event} {target!r}")
    print(message, file=sys.stderr, flush=True)
    raise EgressRefused(message)


def _hook(event: str, args: tuple[object, ...]) -> None:
    if not event.startswith("socket."):
        return
    state = _state
    if state is None:
        return
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args[0], args[-1]
        family = getattr(sock, "family", None)
        if family == socket.AF_UNIX:
            return
        host = _address_host(address)
        if event == "socket.sendmsg" and address is None:
            return  # connected socket: its connect was already checked
        if host is not None and not _is_local_host(host, state.allowed_hosts):
            _refuse(event.removeprefix("socket."), address)
    elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
        if not _is_local_host(args[0], state.allowed_hosts):
            _refuse("name look-up", args[0])
    elif event == "socket.gethostbyaddr" and not _is_local_host(args[0], state.allowed_hosts):
        _refuse("address look-up", args[0])


def install(allowed_hosts: Iterable[str] = ()) -> None:
    """Set the offline environment and refuse every non-loopback connection from now on.

    Safe to call more than once: the hook is added once, later calls extend the allow-list.
    """
    global _state
    set_offline_env()
    allowed = frozenset(h.lower() for h in allowed_hosts)
    if _state is None:
        _state = _GuardState(allowed_hosts=allowed)
        sys.addaudithook(_hook)
    else:
        _state.allowed_hosts = _state.allowed_hosts | allowed


def refused_attempts() -> list[str]:
    """What the guard refused so far in this process (for status reports and tests)."""
    if _state is None:
        return []
    with _state.lock:
        return list(_state.refused)
