"""The egress guard: this process connects to the addresses the policy allow-lists, and nowhere
else; without a policy, nowhere at all (loopback included: the editor's pipes and the TCP mode's
listening socket need no outbound connection).

A Python audit hook sees every socket connect, send and name look-up before the system call is
made, so refusing there means no packet and no DNS query ever leaves. The hook cannot be removed
once installed, which is what we want for a process that promises never to reach out.

An allow-list entry is `host` (any port) or `host:port` (`[v6]:port` for an IPv6 address; a URL
gives its host and port). A name is allowed to be looked up, and a connection to an address it
resolves to is allowed on its port: the guard resolves allowed names itself to know them.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from inference.offline import set_offline_env

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


class EgressRefused(PermissionError):
    """Raised inside the code that tried to reach a non-local address."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An allow-listed address: a host name or IP address, and a port (None: any port)."""

    host: str
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """`host`, `host:port`, `[v6]`, `[v6]:port`, or a URL (`https://host:port/v1`)."""
    raw = text.strip()
    if "://" in raw:
        url = urlsplit(raw)
        if not url.hostname:
            raise ValueError(f"{text!r} names no host")
        try:
            port = url.port
        except ValueError as exc:
            raise ValueError(f"{text!r}: {exc}") from exc
        if port is None:
            port = {"http": 80, "https": 443}.get(url.scheme)
        return Endpoint(_normal(url.hostname), port)
    host, port_text = raw, ""
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r} is not [ADDRESS]:PORT")
        port_text = rest[1:]
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
    elif ":" in raw:  # an IPv6 address without a port
        try:
            ipaddress.IPv6Address(raw.split("%", 1)[0])
        except ValueError as exc:
            raise ValueError(f"{text!r} is not HOST, HOST:PORT or [ADDRESS]:PORT") from exc
    if not host or any(c in host for c in "/ @") or (port_text and not port_text.isdigit()):
        raise ValueError(f"{text!r} is not HOST, HOST:PORT or [ADDRESS]:PORT")
    port = int(port_text) if port_text else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{text!r}: the port must be between 1 and 65535")
    return Endpoint(_normal(host), port)


def _normal(host: str) -> str:
    name = host.strip("[]").lower()
    try:
        return str(ipaddress.ip_address(name.split("%", 1)[0]))
    except ValueError:
        return name


@dataclass
class _GuardState:
    allowed: frozenset[Endpoint] = frozenset()
    resolved: dict[str, frozenset[str]] = field(default_factory=dict)  # name -> its addresses
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def allowed_names(self) -> frozenset[str]:
        return frozenset(e.host for e in self.allowed)


_state: _GuardState | None = None


def _may_look_up(host: object, allowed: frozenset[str]) -> bool:
    """A name look-up that asks no remote server, or one of an allow-listed name."""
    if host is None:  # passive look-ups (bind to any) resolve nothing remotely
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = _normal(host)
    if name in LOCAL_NAMES or name in allowed:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _addresses(state: _GuardState, host: str) -> frozenset[str]:
    """The addresses an allow-listed host stands for (resolved once, by the guard itself)."""
    try:
        ipaddress.ip_address(host)
        return frozenset({host})
    except ValueError:
        pass
    with state.lock:
        known = state.resolved.get(host)
    if known is None:
        try:
            infos = socket.getaddrinfo(host, None)  # an allowed name: the hook lets it through
        except OSError:
            infos = []
        known = frozenset(_normal(str(info[4][0])) for info in infos)
        if known:
            with state.lock:
                state.resolved[host] = known
    return known


def _may_connect(state: _GuardState, host: object, port: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    target = _normal(host)
    for e in state.allowed:
        if e.port is not None and e.port != port:
            continue
        if target == e.host or target in _addresses(state, e.host):
            return True
    return False


def _address(address: object) -> tuple[object, object] | None:
    """Host and port of a socket address; None for a Unix socket path (always local)."""
    if isinstance(address, tuple) and address:
        return address[0], address[1] if len(address) > 1 else None
    if isinstance(address, str | bytes):
        return None
    return address, None


def _refuse(event: str, target: object) -> None:
    assert _state is not None
    message = (
        f"airgap-lsp refused an outbound {event} to {target!r}: this process connects only to "
        f"the addresses the administrator's policy allow-lists ({_listed()}). If this is an "
        "internal inference server, an administrator must allow-list it."
    )
    with _state.lock:
        _state.refused.append(f"{event} {target!r}")
    print(message, file=sys.stderr, flush=True)
    raise EgressRefused(message)


def _listed() -> str:
    if _state is None or not _state.allowed:
        return "none"
    return ", ".join(sorted(str(e) for e in _state.allowed))


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
        if event == "socket.sendmsg" and address is None:
            return  # connected socket: its connect was already checked
        target = _address(address)
        if target is not None and not _may_connect(state, *target):
            _refuse(event.removeprefix("socket."), address)
    elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
        if not _may_look_up(args[0], state.allowed_names):
            _refuse("name look-up", args[0])
    elif event in ("socket.gethostbyaddr", "socket.getnameinfo"):
        # getnameinfo's argument is a socket address: (host, port, ...); a reverse look-up of
        # anything but loopback asks a name server.
        host = args[0]
        if event == "socket.getnameinfo" and isinstance(host, tuple) and host:
            host = host[0]
        if not _may_look_up(host, state.allowed_names):
            _refuse("address look-up", args[0])


def install(allowed: Iterable[str | Endpoint] = ()) -> None:
    """Set the offline environment and refuse every connection that is not allow-listed.

    Safe to call more than once: the hook is added once, later calls extend the allow-list.
    Raises ValueError for an entry that is not HOST, HOST:PORT, [ADDRESS]:PORT or a URL.
    """
    global _state
    set_offline_env()
    endpoints = frozenset(e if isinstance(e, Endpoint) else parse_endpoint(e) for e in allowed)
    if _state is None:
        _state = _GuardState(allowed=endpoints)
        sys.addaudithook(_hook)
    else:
        with _state.lock:
            _state.allowed = _state.allowed | endpoints


def allowed() -> frozenset[Endpoint]:
    """The allow-list in force."""
    return _state.allowed if _state is not None else frozenset()


def refused_attempts() -> list[str]:
    """What the guard refused so far in this process (for status reports and tests)."""
    if _state is None:
        return []
    with _state.lock:
        return list(_state.refused)
