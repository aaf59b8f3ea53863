"""The suggestions of a session and their fate: each one's audit line, written before it is
shown, the one awaiting a verdict in each document, the code-action edits offered, and the
accept and not-accepted lines that come back under the same id. Bounded: a long session keeps
no more than the last of each."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from airgap_lsp.errors import AirgapError
from airgap_lsp.paths import default_audit_path
from airgap_lsp.policy import Policy
from airgap_lsp.settings import Settings
from audit.record import AuditRecord, AuditSink, new_event
from audit.writer import JsonlAudit

RECENT_RECORDS = 64  # audit records kept in memory for `airgap.auditRecord`
# Resolved code-action edits awaiting their accept; an older one accepted after these is logged
# with no document (`accept` of a suggestion that is not pending).
OFFERED_EDITS = 256


class Ledger:
    def __init__(
        self,
        policy: Policy,
        settings: Callable[[], Settings],
        client: Callable[[], dict[str, str]],
        show_error: Callable[[str], None],
    ) -> None:
        self.policy, self.settings, self.client, self.show_error = (
            policy,
            settings,
            client,
            show_error,
        )
        self.shown: dict[str, str] = {}  # document uri -> id of its suggestion awaiting a verdict
        self.offered: dict[str, str] = {}  # id of a resolved code action's edit -> document uri
        self.recent: OrderedDict[str, AuditRecord] = OrderedDict()  # id -> record, newest last

    def sink(self) -> AuditSink:
        path = Path(self.settings().audit_path).expanduser() if self.settings().audit_path else None
        p = self.policy
        return JsonlAudit(
            path or default_audit_path(),
            max_bytes=p.audit_max_bytes,
            monthly=p.audit_monthly,
            group=p.audit_group or None,
        )

    def audit(self, record: AuditRecord) -> None:
        """Write a suggestion's line (flushed before any reply shows it) and remember it."""
        self.sink().write(record)
        self.recent[record.id] = record
        while len(self.recent) > RECENT_RECORDS:
            self.recent.popitem(last=False)

    def audit_event(self, event: str, suggestion_id: str, uri: str, reason: str = "") -> None:
        """An accept / not-accepted line, with the same id as the suggestion it is about."""
        self.sink().write(
            new_event(event, suggestion_id, client=self.client(), file=uri, reason=reason)
        )

    def withdraw(self, suggestion_id: str, uri: str, reason: str) -> None:
        """A suggestion's not-accepted line; a failed write is shown to the user."""
        try:
            self.audit_event("not_accepted", suggestion_id, uri, reason)
        except AirgapError as exc:
            self.show_error(str(exc))

    def replace_shown(self, uri: str, suggestion_id: str | None, reason: str = "replaced") -> None:
        """A new suggestion (or none) for a document: the one it replaces was not accepted."""
        previous = self.shown.pop(uri, None)
        if previous is not None:
            self.withdraw(previous, uri, reason)
        if suggestion_id is not None:
            self.shown[uri] = suggestion_id

    def offer(self, suggestion_id: str, uri: str) -> None:
        """A code action's edit was resolved: its accept comes back under its id."""
        self.offered[suggestion_id] = uri
        while len(self.offered) > OFFERED_EDITS:
            del self.offered[next(iter(self.offered))]

    def accept(self, suggestion_id: str) -> str | None:
        """The document of the pending suggestion or offered edit the user accepted, which is
        pending no more; None when nothing by that id is pending."""
        uri = next((u for u, sid in self.shown.items() if sid == suggestion_id), None)
        if uri is not None:
            del self.shown[uri]
            return uri
        return self.offered.pop(suggestion_id, None)

    def end_session(self) -> None:
        """The session ends: a suggestion still awaiting its verdict was not accepted."""
        for uri in list(self.shown):
            self.replace_shown(uri, None, "session ended")
