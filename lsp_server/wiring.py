"""The server with its features: what `airgap-lsp serve` runs."""

from __future__ import annotations

import logging
import sys
from typing import Any

from pygls.exceptions import JsonRpcRequestCancelled

from airgap_lsp.policy import Policy
from lsp_server.features import (
    accept,
    code_actions,
    configuration,
    documents,
    hover,
    inline_completion,
    symbols,
)
from lsp_server.server import AirgapServer


def build_server(policy: Policy | None = None) -> AirgapServer:
    server = AirgapServer(policy)
    accept.register(server)
    code_actions.register(server)
    configuration.register(server)
    documents.register(server)
    hover.register(server)
    inline_completion.register(server)
    symbols.register(server)
    return server


def log_to_stderr() -> None:
    """stdout is the protocol channel: logs go to stderr, which editors keep as the server's log."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    # pygls's protocol layer would log every message, prompts included.
    logging.getLogger("pygls.protocol").setLevel(logging.WARNING)
    # A request the editor cancelled (most completions, as the user types on) is routine: pygls
    # would log each with a traceback at ERROR level.
    logging.getLogger("pygls.protocol.json_rpc").addFilter(_not_a_cancel)


def _not_a_cancel(record: Any) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], JsonRpcRequestCancelled))
