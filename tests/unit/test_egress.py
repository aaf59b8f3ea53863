"""The egress guard and the policy's allow-listed hosts, checked with audit events raised by hand
(`sys.audit`), so that no test sends a packet or a DNS query anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from airgap_lsp.cli import main
main(["model", "list"])  # starts like any command: guard first, then the policy's hosts
def attempt(host):
    try:
        sys.audit("socket.getaddrinfo", host, 443, 0, 0, 0)
        return "allowed"
    except PermissionError:
        return "refused"
print(attempt("gpu-rack.internal"), attempt("updates.example.com"), attempt("localhost"),
      attempt("127.0.0.5"))
"""


def run(tmp_path: Path, policy: str | None, script: str = SCRIPT, *args: str) -> list[str]:
    """The last line of `script`'s output, split, run as a command starts with `policy`."""
    env = {"AIRGAP_LSP_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    if policy is not None:
        path = tmp_path / "policy.toml"
        path.write_text(policy)
        env["AIRGAP_LSP_POLICY"] = str(path)
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    return out.stdout.strip().splitlines()[-1].split()


def test_only_loopback_without_a_policy(tmp_path: Path) -> None:
    assert run(tmp_path, None) == ["refused", "refused", "allowed", "allowed"]


def test_a_host_the_policy_allow_lists_gets_through(tmp_path: Path) -> None:
    policy = '[network]\nallowed_hosts = ["gpu-rack.internal"]\n'
    assert run(tmp_path, policy) == ["allowed", "refused", "allowed", "allowed"]


REVERSE = """
import sys
from airgap_lsp.cli import main
main(["model", "list"])
def attempt(event, arg):
    try:
        sys.audit(event, arg)
        return "allowed"
    except PermissionError:
        return "refused"
print(attempt("socket.getnameinfo", ("192.0.2.77", 80)),
      attempt("socket.getnameinfo", ("127.0.0.1", 80)),
      attempt("socket.gethostbyaddr", "192.0.2.77"),
      attempt("socket.gethostbyaddr", "::1"))
"""


def test_reverse_look_ups_ask_no_name_server_but_for_loopback(tmp_path: Path) -> None:
    assert run(tmp_path, None, REVERSE) == ["refused", "allowed", "refused", "allowed"]
