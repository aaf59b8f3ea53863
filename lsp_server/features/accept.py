"""Accepted or not: each shown suggestion's fate comes back to the audit log under its id.

An inline completion carries the command `airgap.accept`, which the editor runs when the user
accepts it. A suggestion that the next one replaces, or whose document closes, is logged as not
accepted.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from airgap_lsp.errors import AirgapError
from lsp_server.server import AirgapServer  # at run time: pygls reads the handler's type hints

ACCEPT = "airgap.accept"
AUDIT_RECORD = "airgap.auditRecord"  # arguments: [] for the last suggestion, or [id]
log = logging.getLogger("airgap_lsp.accept")


def register(server: AirgapServer) -> None:
    @server.command(ACCEPT)
    def accept(ls: AirgapServer, suggestion_id: str) -> dict[str, Any]:
        uri = ls.ledger.accept(suggestion_id)
        if uri is None:
            # Not pending: unknown, or accepted/replaced already. Logged all the same, so the
            # log shows what the editor claimed.
            log.warning("accept for a suggestion that is not pending: %s", suggestion_id)
        try:
            ls.ledger.audit_event("accept", suggestion_id, uri or "")
        except AirgapError as exc:
            ls.show_error(str(exc))
            raise
        return {"accepted": suggestion_id}

    @server.command(AUDIT_RECORD)
    def audit_record(ls: AirgapServer, *args: Any) -> dict[str, Any]:
        """The audit line of a suggestion made in this session: the last one, or the one named."""
        if args and not isinstance(args[0], str):
            raise JsonRpcInvalidParams(f"{AUDIT_RECORD} takes a suggestion id, or nothing")
        if args:
            record = ls.ledger.recent.get(args[0])
            if record is None:
                raise JsonRpcInvalidParams(
                    f"No suggestion {args[0]} in this session; for older ones run "
                    f"`airgap-lsp audit replay {args[0]}`."
                )
        elif ls.ledger.recent:
            record = next(reversed(ls.ledger.recent.values()))
        else:
            raise JsonRpcInvalidParams("No suggestion has been made in this session yet.")
        return asdict(record)
