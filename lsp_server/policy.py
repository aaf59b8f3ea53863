"""The administrator's policy: what a user's settings cannot change.

Read from the file named by `AIRGAP_LSP_POLICY`, else `/etc/airgap-lsp/policy.toml` if it exists.
It fixes the allowed models (by name, version and manifest hash), the audit log's location,
group and rotation, paths excluded from every prompt, knowledge-base folders, the users allowed
to run the assistant, and internal hosts the egress guard lets through. A refusal names the file
and line that refused. An invalid policy stops the tool: it fails closed.

    [models]
    allowed = [
      { name = "qwen2.5-coder-1.5b", version = "2024-09", sha256 = "3f1c..." },
    ]
    [audit]
    path = "/var/log/airgap-lsp/audit.jsonl"
    group = "auditors"
    rotate = "monthly"          # or max_bytes = 104857600
    [context]
    exclude = ["secrets/**", "*.kdbx"]
    knowledge_base = ["/srv/standards"]
    [users]
    allowed = ["alice", "@flight-sw"]   # a name, or @group
    [network]
    allowed_hosts = ["gpu-rack.internal"]
"""

from __future__ import annotations

import getpass
import grp
import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from inference.errors import AirgapError, ModelRefused
from inference.store import StoredModel
from lsp_server.settings import Settings

POLICY_ENV = "AIRGAP_LSP_POLICY"
SYSTEM_POLICY = Path("/etc/airgap-lsp/policy.toml")

_KEYS = {
    "models": {"allowed"},
    "audit": {"path", "group", "rotate", "max_bytes"},
    "context": {"exclude", "knowledge_base"},
    "users": {"allowed"},
    "network": {"allowed_hosts"},
}


class PolicyError(AirgapError):
    """The policy is invalid, or it refuses what was asked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AllowedModel:
    name: str
    version: str | None
    sha256: str
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    path: Path | None = None
    models: tuple[AllowedModel, ...] = ()  # empty: any stored model
    models_line: int = 0
    audit_path: str = ""
    audit_group: str = ""
    audit_max_bytes: int | None = None
    audit_monthly: bool = False
    exclude: tuple[str, ...] = ()
    knowledge_base: tuple[str, ...] = ()
    users: tuple[str, ...] = ()  # empty: anyone
    users_line: int = 0
    allowed_hosts: tuple[str, ...] = ()

    def where(self, line: int) -> str:
        return f"{self.path}:{line}" if line else str(self.path)

    def apply(self, settings: Settings) -> tuple[Settings, list[str]]:
        """The settings with the policy's values in force, and what the user asked that it
        overrode (to tell them)."""
        overridden = []
        if self.audit_path and settings.audit_path not in ("", self.audit_path):
            overridden.append(f"auditPath is fixed to {self.audit_path} by {self.path}")
        s = replace(
            settings,
            audit_path=self.audit_path or settings.audit_path,
            context_exclude=tuple(dict.fromkeys(self.exclude + settings.context_exclude)),
            knowledge_base=tuple(dict.fromkeys(self.knowledge_base + settings.knowledge_base)),
        )
        return s, overridden

    def check_model(self, stored: StoredModel) -> None:
        if not self.models:
            return
        m = stored.manifest
        for allowed in self.models:
            if (
                allowed.name == m.name
                and allowed.version in (None, m.version)
                and allowed.sha256 == stored.manifest_sha256
            ):
                return
        near = [a for a in self.models if a.name == m.name]
        line = near[0].line if near else self.models_line
        listed = ", ".join(f"{a.name}@{a.version or '*'}" for a in self.models)
        raise ModelRefused(
            f"The administrator's policy ({self.where(line)}) does not allow {stored.ref} with "
            f"manifest sha256 {stored.manifest_sha256}; it allows: {listed}. Choose an allowed "
            "model in the settings, or ask the administrator."
        )

    def check_user(self) -> None:
        if not self.users:
            return
        user = getpass.getuser()
        groups = {grp.getgrgid(g).gr_name for g in os.getgroups() if _has_gid(g)}
        if user in self.users or any(f"@{g}" in self.users for g in groups):
            return
        raise PolicyError(
            f"The administrator's policy ({self.where(self.users_line)}) does not allow the user "
            f"{user!r} to use airgap-lsp. Ask the administrator to add you or your group."
        )


def _has_gid(gid: int) -> bool:
    try:
        grp.getgrgid(gid)
    except KeyError:
        return False
    return True


def _line_of(lines: list[str], section: str, needle: str) -> int:
    """The 1-based line of the first `needle` after the `[section]` header (0 if none)."""
    inside = False
    for n, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("["):
            inside = stripped.strip("[] ") == section
        elif inside and needle in line:
            return n
    return 0


def _strings(doc: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: {key} must be a list of strings.")
    return tuple(value)


def parse_policy(text: str, path: Path) -> Policy:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"The policy {path} is not valid TOML ({exc}).") from exc
    lines = text.split("\n")
    for section, body in doc.items():
        if section not in _KEYS or not isinstance(body, dict):
            raise PolicyError(
                f"{path}:{_line_of(lines, section, '') or 1}: unknown section [{section}] "
                f"(known: {', '.join(_KEYS)})."
            )
        for key in body:
            if key not in _KEYS[section]:
                raise PolicyError(
                    f"{path}:{_line_of(lines, section, key)}: unknown key {key!r} in [{section}]."
                )
    models = []
    for entry in doc.get("models", {}).get("allowed", []):
        if not isinstance(entry, dict) or not {"name", "sha256"} <= entry.keys():
            raise PolicyError(f"{path}: each [models] allowed entry needs a name and a sha256.")
        models.append(
            AllowedModel(
                name=str(entry["name"]),
                version=str(entry["version"]) if "version" in entry else None,
                sha256=str(entry["sha256"]).removeprefix("sha256:"),
                line=_line_of(lines, "models", str(entry["sha256"])),
            )
        )
    audit = doc.get("audit", {})
    rotate = audit.get("rotate", "")
    if rotate not in ("", "monthly"):
        raise PolicyError(f"{path}:{_line_of(lines, 'audit', 'rotate')}: rotate must be 'monthly'.")
    max_bytes = audit.get("max_bytes")
    if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes <= 0):
        raise PolicyError(f"{path}: [audit] max_bytes must be a positive whole number.")
    return Policy(
        path=path,
        models=tuple(models),
        models_line=_line_of(lines, "models", "allowed"),
        audit_path=str(audit.get("path", "")),
        audit_group=str(audit.get("group", "")),
        audit_max_bytes=max_bytes,
        audit_monthly=rotate == "monthly",
        exclude=_strings(doc.get("context", {}), "exclude", str(path)),
        knowledge_base=_strings(doc.get("context", {}), "knowledge_base", str(path)),
        users=_strings(doc.get("users", {}), "allowed", str(path)),
        users_line=_line_of(lines, "users", "allowed"),
        allowed_hosts=_strings(doc.get("network", {}), "allowed_hosts", str(path)),
    )


def load_policy() -> Policy:
    """The policy in force; an empty one when there is none. A named file must exist."""
    named = os.environ.get(POLICY_ENV)
    path = Path(named) if named else SYSTEM_POLICY
    if not named and not path.exists():
        return Policy()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(
            f"Cannot read the policy {path} ({exc.strerror}); airgap-lsp does not run without "
            "the policy it was told to follow."
        ) from exc
    return parse_policy(text, path)
