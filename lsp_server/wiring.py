"""The server with its features: what `airgap-lsp serve` runs."""

from __future__ import annotations

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
