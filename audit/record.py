"""The audit record: one line per suggestion, and one per verdict on it (accept, not accepted).

What a line holds, who wrote it, and what a reader accepts as a line of ours."""

from __future__ import annotations

import os
import pwd
import socket
import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from airgap_lsp.errors import AirgapError

GENESIS = "0" * 64


class AuditError(AirgapError):
    """The audit line could not be written, so the suggestion must not be shown."""


class AuditReadError(AirgapError):
    """An audit log cannot be read, or holds a line that is not an audit record."""


class AuditRefused(AuditError):
    """The audit path holds something that is not this user's audit log; it was left as it was."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    id: str
    time: str
    kind: str  # inline_completion, hover, code_action.refactor / .spark_contracts / .explain
    user: dict[str, Any]  # the OS account: name, uid
    host: str
    client: dict[str, Any]  # what the editor says it is: name, version
    file: str
    position: dict[str, int]
    language: str
    model: dict[str, str]  # name, version, manifest_sha256, family, prompt_format
    device: str
    dtype: str
    decoding: dict[str, Any]
    prompt: str
    text: str
    context_sources: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # What was made of the model's text (hover and code actions): the edit offered, or why none
    # was (the proposal did not parse), and what the explanation was about.
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """What became of a shown suggestion, logged under the suggestion's id."""

    id: str
    time: str
    kind: str  # one of EVENT_KINDS
    user: dict[str, Any]
    host: str
    client: dict[str, Any]
    file: str
    reason: str = ""


EVENT_KINDS = frozenset({"accept", "not_accepted"})


def login_name() -> str:
    """The name of the user this process runs as, from the user database: never from $USER or
    $LOGNAME, which any user can set to another's name."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no entry: the audit line still has the uid
        return ""


def os_identity() -> tuple[dict[str, Any], str]:
    """The OS user (never the editor's claim) and the host name, read locally."""
    return {"name": login_name(), "uid": os.getuid()}, socket.gethostname()


def now() -> str:
    """An audit line's time: UTC, ISO 8601, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_record(*, kind: str, client: dict[str, Any], file: str, **made: Any) -> AuditRecord:
    """A suggestion's record, the one way one is made: a new id, the time, the OS user and host
    (never the editor's claim) filled here; `made` is what was asked and answered."""
    user, host = os_identity()
    return AuditRecord(
        id=str(uuid.uuid4()),
        time=now(),
        kind=kind,
        user=user,
        host=host,
        client=dict(client),
        file=file,
        **made,
    )


def renewed(origin: AuditRecord, **changes: Any) -> AuditRecord:
    """A record made from another one (the rest of a suggestion, shown again): its own id and
    time, the rest as `origin` had it but for `changes`."""
    return replace(origin, id=str(uuid.uuid4()), time=now(), **changes)


def new_event(
    kind: str, suggestion_id: str, *, client: dict[str, Any], file: str, reason: str = ""
) -> AuditEvent:
    """What became of a suggestion (one of EVENT_KINDS), under the suggestion's id."""
    user, host = os_identity()
    return AuditEvent(
        id=suggestion_id,
        time=now(),
        kind=kind,
        user=user,
        host=host,
        client=dict(client),
        file=file,
        reason=reason,
    )


class AuditSink(Protocol):
    path: Path

    def write(self, record: AuditRecord | AuditEvent) -> None: ...


_JSON_TYPES: dict[str, tuple[type, str]] = {
    "str": (str, "a string"),
    "dict": (dict, "an object"),
    "list": (list, "an array"),
}


def _json_types(cls_fields: tuple[Any, ...]) -> dict[str, tuple[type, str]]:
    """Each field's JSON type, read from its annotation (a string: `dict[str, Any]`)."""
    out = {f.name: _JSON_TYPES[str(f.type).partition("[")[0]] for f in cls_fields}
    return out | {"prev_sha256": _JSON_TYPES["str"]}


_RECORD_TYPES = _json_types(fields(AuditRecord))
_EVENT_TYPES = _json_types(fields(AuditEvent))


def record_problem(doc: object) -> str:
    """Why a decoded line is not an audit record as this writer writes them; "" when it is.

    A record is a JSON object with every `AuditRecord` field (every `AuditEvent` field when its
    kind is in `EVENT_KINDS`) and `prev_sha256`, each of its type (string, object or array), a
    `time` in ISO 8601 and `context_sources` of objects; other keys are allowed. Readers of the
    log (report, provenance) rely on it, so a hostile line is named, not a traceback.
    """
    if not isinstance(doc, dict):
        return "JSON, but not an object"
    kind = doc.get("kind")
    if not isinstance(kind, str):
        return "no kind"
    types = _EVENT_TYPES if kind in EVENT_KINDS else _RECORD_TYPES
    missing = sorted(types.keys() - doc.keys())
    if missing:
        return f"missing {', '.join(missing)}"
    for name, (want, called) in types.items():
        if not isinstance(doc[name], want):
            return f"{name} is not {called}"
    if not all(isinstance(source, dict) for source in doc.get("context_sources", [])):
        return "context_sources holds something that is not an object"
    try:
        datetime.fromisoformat(doc["time"])
    except ValueError:
        return "time is not an ISO 8601 time"
    return ""
