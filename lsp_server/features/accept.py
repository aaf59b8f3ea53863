"""Accepted or not: each shown suggestion's fate comes back to the audit log under its id.

An inline completion carries the command `airgap.accept`, which the editor runs when the user
accepts it. A suggestion that the next one replaces, or whose document closes, is logged as not
accepted.
"""

from __future__ import annotations

import logging
from typing import Any

from inference.errors import AirgapError
from lsp_server.server import AirgapServer  # at run time: pygls reads the handler's type hints

ACCEPT = "airgap.accept"
log = logging.getLogger("airgap_lsp.accept")


def register(server: AirgapServer) -> None:
    @server.command(ACCEPT)
    def accept(ls: AirgapServer, suggestion_id: str) -> dict[str, Any]:
        uri = next((u for u, sid in ls.shown.items() if sid == suggestion_id), None)
        if uri is None:
            # Not pending: unknown, or accepted/replaced already. Logged all the same, so the
            # log shows what the editor claimed.
            log.warning("accept for a suggestion that is not pending: %s", suggestion_id)
        else:
            del ls.shown[uri]
        try:
            ls.audit_event("accept", suggestion_id, uri or "")
        except AirgapError as exc:
            ls.show_error(str(exc))
            raise
        return {"accepted": suggestion_id}
