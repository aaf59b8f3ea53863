"""Who is at the other end of a loopback TCP connection: the kernel's word, not the client's.

Any local user can connect to a loopback port, and LSP has no login: `serve --tcp` serves only a
connection whose other end belongs to the user running the server. On Linux the kernel lists
every TCP socket with its owner's uid in /proc/net/tcp and /proc/net/tcp6 (what identd reads);
the connecting socket is the row whose local end is the peer's address and whose remote end is
ours. Where the owner cannot be found, the connection is refused: fail closed.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def _address(field: str) -> tuple[str, int]:
    """`0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6), as the kernel prints them:
    each 32-bit word of the address in the host's byte order, then the port."""
    hex_ip, hex_port = field.rsplit(":", 1)
    words = [struct.pack("=I", int(hex_ip[i : i + 8], 16)) for i in range(0, len(hex_ip), 8)]
    raw = b"".join(words)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw)
    else:
        ip = socket.inet_ntop(socket.AF_INET6, raw)
        if ip.startswith("::ffff:") and "." in ip:  # an IPv4 client of an IPv6 socket
            ip = ip.removeprefix("::ffff:")
    return ip, int(hex_port, 16)


def _normal(address: tuple[str, int] | tuple[str, int, int, int]) -> tuple[str, int]:
    ip = str(address[0]).removeprefix("::ffff:")
    return socket.inet_ntop(*_family(ip)), int(address[1])


def _family(ip: str) -> tuple[int, bytes]:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return family, socket.inet_pton(family, ip)


def peer_uid(
    ours: tuple[str, int] | tuple[str, int, int, int],
    theirs: tuple[str, int] | tuple[str, int, int, int],
    tables: tuple[Path, ...] = TABLES,
) -> int | None:
    """The uid that owns the socket at `theirs`, connected to `ours`; None where no table says
    (not Linux, /proc not mounted, or the peer already gone)."""
    local, remote = _normal(theirs), _normal(ours)
    for table in tables:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 8:
                continue
            try:
                if _address(fields[1]) == local and _address(fields[2]) == remote:
                    return int(fields[7])
            except (ValueError, OSError, struct.error):
                continue
    return None
