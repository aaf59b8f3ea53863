"""The administrator's policy: what a user's settings cannot change.

Read from the file named by `AIRGAP_LSP_POLICY`, else `/etc/airgap-lsp/policy.toml` if it exists.
It fixes the allowed models (by name, version and manifest hash), the audit log's location,
group and rotation, paths excluded from every prompt, knowledge-base folders (always read) and
whether the users' settings may add their own, the users allowed to run the assistant, and
internal hosts the egress guard lets through. A refusal names the file and line that refused.
An invalid policy stops the tool: it fails closed.

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
    user_knowledge_base = false   # the settings add no folders of their own (default: true)
    [users]
    allowed = ["alice", "@flight-sw"]   # a name, or @group
    [network]
    allowed_hosts = ["gpu-rack.internal:8000"]   # HOST (any port) or HOST:PORT
    tcp_path_settings = false    # serve --tcp: may the editor set auditPath, knowledgeBase?
    [backend]                    # a team's inference server (docs/team-server.md)
    url = "https://gpu-rack.internal:8000/v1"    # allow-listed by naming it here
    model = "qwen2.5-coder-1.5b@2024-09"          # the locked model it serves, in the local store
    fallback = "none"            # or "local": the local model answers while the server is down
    ca_file = "/etc/airgap-lsp/team-ca.pem"       # the perimeter's CA, for https
"""

from __future__ import annotations

import grp
import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airgap_lsp.egress import parse_endpoint
from airgap_lsp.errors import AirgapError
from airgap_lsp.settings import Settings
from audit.record import login_name
from inference.errors import ModelRefused
from inference.store import StoredModel

POLICY_ENV = "AIRGAP_LSP_POLICY"
SYSTEM_POLICY = Path("/etc/airgap-lsp/policy.toml")

_KEYS = {
    "models": {"allowed"},
    "audit": {"path", "group", "rotate", "max_bytes"},
    "context": {"exclude", "knowledge_base", "user_knowledge_base"},
    "users": {"allowed"},
    "network": {"allowed_hosts", "tcp_path_settings"},
    "backend": {"url", "model", "fallback", "ca_file", "timeout_s"},
}
FALLBACKS = ("none", "local")


class PolicyError(AirgapError):
    """The policy is invalid, or it refuses what was asked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AllowedModel:
    name: str
    version: str | None
    sha256: str
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteBackend:
    """A team's inference server: an OpenAI-compatible completions API inside the perimeter."""

    url: str  # the API's base, ending in /v1
    model: str = ""  # the locked model it serves (NAME or NAME@VERSION); empty: the settings'
    fallback: str = "none"  # "local": the local model answers while the server is down
    ca_file: str = ""  # the CA that signs the server's certificate (https); empty: the system's
    timeout_s: float = 30.0
    where: str = ""  # the file and line that chose it, for messages


def check_backend_url(url: str) -> str:
    """The URL, or ValueError saying what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{url!r} must hold no user name, password, query or fragment")
    parse_endpoint(url)  # the port is valid
    return url.rstrip("/")


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
    user_knowledge_base: bool = True  # False: the settings' folders are not read
    users: tuple[str, ...] = ()  # empty: anyone
    users_line: int = 0
    allowed_hosts: tuple[str, ...] = ()
    tcp_path_settings: bool = False  # True: an editor over TCP may set auditPath, knowledgeBase
    backend: RemoteBackend | None = None  # None: the user's settings choose

    def where(self, line: int) -> str:
        return f"{self.path}:{line}" if line else str(self.path)

    def apply(self, settings: Settings) -> tuple[Settings, list[str]]:
        """The settings with the policy's values in force, and what the user asked that it
        overrode (to tell them)."""
        overridden = []
        if self.audit_path and settings.audit_path not in ("", self.audit_path):
            overridden.append(f"auditPath is fixed to {self.audit_path} by {self.path}")
        backend_url = settings.backend_url
        model = settings.model
        if self.backend is not None:
            b = self.backend
            if backend_url not in ("", b.url):
                overridden.append(f"backend.url is fixed to {b.url} by {b.where}")
            backend_url = b.url
            if b.model and model != b.model:
                if model != Settings().model:
                    overridden.append(f"model is fixed to {b.model} by {b.where}")
                model = b.model
        knowledge_base = settings.knowledge_base
        if not self.user_knowledge_base:
            if [f for f in knowledge_base if f not in self.knowledge_base]:
                fixed = ", ".join(self.knowledge_base) or "none"
                overridden.append(f"context.knowledgeBase is fixed to {fixed} by {self.path}")
            knowledge_base = ()
        s = replace(
            settings,
            model=model,
            backend_url=backend_url,
            audit_path=self.audit_path or settings.audit_path,
            policy_exclude=self.exclude,
            knowledge_base=tuple(dict.fromkeys(self.knowledge_base + knowledge_base)),
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

    def remote_backend(self, url: str) -> RemoteBackend:
        """The policy's backend, or one the user's settings name at an allow-listed address."""
        if self.backend is not None and self.backend.url == url:
            return self.backend
        target = parse_endpoint(url)
        for entry in self.allowed_hosts:
            e = parse_endpoint(entry)
            if e.host == target.host and e.port in (None, target.port):
                return RemoteBackend(url=url, where="the settings")
        raise PolicyError(
            f"The settings name the inference server {url}, but the administrator's policy "
            f"({self.path or 'none'}) does not allow-list {target}. Ask the administrator to add "
            "it under [network] allowed_hosts, or clear backend.url to use the local model."
        )

    def check_user(self) -> None:
        if not self.users:
            return
        user = login_name()
        groups = {grp.getgrgid(g).gr_name for g in os.getgroups() if _has_gid(g)}
        if user in self.users or any(f"@{g}" in self.users for g in groups):
            return
        raise PolicyError(
            f"The administrator's policy ({self.where(self.users_line)}) does not allow the user "
            f"{user!r} to use airgap-lsp. Ask the administrator to add you or your group."
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


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
    for section in ("models", "users"):
        # An empty list reads as "nobody", but no list means "anyone": refuse to guess.
        if doc.get(section, {}).get("allowed", None) == []:
            raise PolicyError(
                f"{path}:{_line_of(lines, section, 'allowed')}: [{section}] allowed is empty. "
                f"List the {section} allowed, or remove the key to allow any."
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
    if max_bytes is not None and (
        isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0
    ):
        raise PolicyError(
            f"{path}:{_line_of(lines, 'audit', 'max_bytes')}: [audit] max_bytes must be a "
            "positive whole number."
        )
    for key in ("path", "group"):
        if not isinstance(audit.get(key, ""), str):
            raise PolicyError(f"{path}:{_line_of(lines, 'audit', key)}: {key} must be a string.")
    # A relative path would be read from each editor's working folder: a different one each time.
    folders = [("audit", "path", [audit.get("path", "")])]
    folders.append(("context", "knowledge_base", doc.get("context", {}).get("knowledge_base", [])))
    for section, key, values in folders:
        for value in values if isinstance(values, list) else []:
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                raise PolicyError(
                    f"{path}:{_line_of(lines, section, key)}: {value!r} is a relative path; "
                    f"[{section}] {key} takes absolute paths."
                )
    user_knowledge_base = doc.get("context", {}).get("user_knowledge_base", True)
    if not isinstance(user_knowledge_base, bool):
        raise PolicyError(
            f"{path}:{_line_of(lines, 'context', 'user_knowledge_base')}: user_knowledge_base "
            "must be true or false."
        )
    tcp_path_settings = doc.get("network", {}).get("tcp_path_settings", False)
    if not isinstance(tcp_path_settings, bool):
        raise PolicyError(
            f"{path}:{_line_of(lines, 'network', 'tcp_path_settings')}: tcp_path_settings "
            "must be true or false."
        )
    allowed_hosts = _strings(doc.get("network", {}), "allowed_hosts", str(path))
    for entry in allowed_hosts:
        where = f"{path}:{_line_of(lines, 'network', entry)}"
        if "*" in entry:
            raise PolicyError(
                f"{where}: {entry!r}: allowed_hosts takes no wildcards; name each host."
            )
        try:
            parse_endpoint(entry)
        except ValueError as exc:
            raise PolicyError(f"{where}: {exc}.") from exc
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
        user_knowledge_base=user_knowledge_base,
        users=_strings(doc.get("users", {}), "allowed", str(path)),
        users_line=_line_of(lines, "users", "allowed"),
        allowed_hosts=allowed_hosts,
        tcp_path_settings=tcp_path_settings,
        backend=_backend(doc.get("backend"), lines, path),
    )


def _backend(doc: dict[str, Any] | None, lines: list[str], path: Path) -> RemoteBackend | None:
    if doc is None:
        return None

    def where(key: str) -> str:
        return f"{path}:{_line_of(lines, 'backend', key) or _line_of(lines, 'backend', '')}"

    if not isinstance(doc.get("url"), str):
        raise PolicyError(f"{where('url')}: [backend] needs url, the server's API (…/v1).")
    try:
        url = check_backend_url(doc["url"])
    except ValueError as exc:
        raise PolicyError(f"{where('url')}: {exc}.") from exc
    for key in ("model", "fallback", "ca_file"):
        if not isinstance(doc.get(key, ""), str):
            raise PolicyError(f"{where(key)}: {key} must be a string.")
    fallback = doc.get("fallback", "none")
    if fallback not in FALLBACKS:
        raise PolicyError(f"{where('fallback')}: fallback must be one of {', '.join(FALLBACKS)}.")
    timeout = doc.get("timeout_s", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 600:
        raise PolicyError(f"{where('timeout_s')}: timeout_s must be a number of seconds, 1-600.")
    return RemoteBackend(
        url=url,
        model=doc.get("model", ""),
        fallback=fallback,
        ca_file=doc.get("ca_file", ""),
        timeout_s=float(timeout),
        where=where("url"),
    )


def load_policy() -> Policy:
    """The policy in force; an empty one when there is none. A named file must exist.

    The administrator's file, when there is one, is the policy: `AIRGAP_LSP_POLICY` names one
    only on a machine without it (a test, a trial), so a user cannot set their own in its place.
    """
    named = os.environ.get(POLICY_ENV)
    if SYSTEM_POLICY.exists():
        if named and not _same_file(Path(named), SYSTEM_POLICY):
            raise PolicyError(
                f"{POLICY_ENV} names the policy {named}, but the administrator's policy "
                f"{SYSTEM_POLICY} is in force on this machine and cannot be replaced. Unset "
                f"{POLICY_ENV}; to change the policy, ask the administrator."
            )
        named = ""
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
