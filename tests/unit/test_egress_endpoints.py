"""The egress guard with a team server allow-listed by address: exactly that address and port get
through; another port on the same host, loopback included, and any other host are refused.
Checked with audit events raised by hand (`sys.audit`), so no test sends a packet anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airgap_lsp.egress import Endpoint, parse_endpoint
from tests.unit.test_egress import run

SCRIPT = """
import json, socket, sys
from airgap_lsp.cli import main
main(["model", "list"])  # starts like any command: guard first, then the policy's addresses
sock = socket.socket()
def attempt(event, host, port=443):
    try:
        if event == "connect":
            sys.audit("socket.connect", sock, (host, port))
        else:
            sys.audit("socket.getaddrinfo", host, port, 0, 0, 0)
        return "allowed"
    except PermissionError:
        return "refused"
print(*(attempt(*a) for a in json.loads(sys.argv[1])))
"""


def attempts(tmp_path: Path, policy: str | None, cases: list[tuple[object, ...]]) -> list[str]:
    return run(tmp_path, policy, SCRIPT, json.dumps(cases))


def test_without_a_policy_the_process_connects_nowhere_not_even_to_loopback(
    tmp_path: Path,
) -> None:
    cases = [("connect", "127.0.0.1", 8080), ("connect", "::1", 8080), ("connect", "10.1.2.3")]
    assert attempts(tmp_path, None, cases) == ["refused", "refused", "refused"]


def test_the_policys_team_server_gets_through_and_nothing_else(tmp_path: Path) -> None:
    policy = '[backend]\nurl = "http://127.0.0.1:18080/v1"\n'
    cases = [
        ("connect", "127.0.0.1", 18080),  # the team server
        ("connect", "127.0.0.1", 18081),  # another loopback port
        ("connect", "127.0.0.2", 18080),  # another loopback address
        ("connect", "10.1.2.3", 18080),  # another host
        ("lookup", "updates.example.com"),
    ]
    assert attempts(tmp_path, policy, cases) == [
        "allowed",
        "refused",
        "refused",
        "refused",
        "refused",
    ]


def test_an_allow_listed_name_is_looked_up_and_reached_on_its_port_only(tmp_path: Path) -> None:
    # localhost stands for a name the site's resolver knows: the guard resolves it itself.
    policy = '[network]\nallowed_hosts = ["localhost:18090", "[::1]:18091"]\n'
    cases = [
        ("lookup", "localhost"),
        ("connect", "127.0.0.1", 18090),  # what localhost resolves to, on its port
        ("connect", "127.0.0.1", 18091),  # another port
        ("connect", "::1", 18091),
        ("connect", "::1", 18090),
    ]
    assert attempts(tmp_path, policy, cases) == [
        "allowed",
        "allowed",
        "refused",
        "allowed",
        "allowed" if _localhost_has_v6() else "refused",
    ]


def _localhost_has_v6() -> bool:
    import socket

    return any(i[4][0] == "::1" for i in socket.getaddrinfo("localhost", None))


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("gpu-rack.internal", Endpoint("gpu-rack.internal", None)),
        ("GPU-Rack.internal:8000", Endpoint("gpu-rack.internal", 8000)),
        ("[::1]:8000", Endpoint("::1", 8000)),
        ("https://gpu-rack.internal/v1", Endpoint("gpu-rack.internal", 443)),
        ("http://10.0.0.7:8000/v1", Endpoint("10.0.0.7", 8000)),
    ],
)
def test_allow_list_entries(text: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(text) == endpoint


@pytest.mark.parametrize("text", ["host:port", "a:1:2", "host:0", "host:70000", "u@host", ""])
def test_a_bad_entry_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(text)
