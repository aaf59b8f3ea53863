"""The life cycle: settings from `initializationOptions`, re-applied on
`workspace/didChangeConfiguration` (a key a change leaves out goes back to what
`initializationOptions` gave it, else to its default: airgap_lsp.settings); the model loads once
the editor is ready; shutdown stops generations in flight."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from airgap_lsp.settings import Settings, says_nothing
from lsp_server.features.documents import watch_files

if TYPE_CHECKING:
    from lsp_server.server import AirgapServer


def register(server: AirgapServer) -> None:
    # The base of every change: the defaults, with what `initializationOptions` gave over them
    # (before the policy's, which is applied over each result).
    given = Settings()

    @server.feature(types.INITIALIZE)
    def initialize(ls: AirgapServer, params: types.InitializeParams) -> None:
        nonlocal given
        if params.client_info:
            ls.client = {
                "name": params.client_info.name,
                "version": params.client_info.version or "",
            }
        given = ls.apply_settings(params.initialization_options, Settings()) or Settings()

    @server.feature(types.INITIALIZED)
    async def initialized(ls: AirgapServer, _params: types.InitializedParams) -> None:
        # Both in the background: the editor is usable at once.
        ls.files.start_indexing()
        ls.model.ensure()
        await watch_files(ls)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: AirgapServer, _params: None) -> None:
        for stop in ls.stopping:  # generations stop between two steps, then the server exits
            stop()
        ls.ledger.end_session()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(
        ls: AirgapServer, params: types.DidChangeConfigurationParams
    ) -> None:
        if not says_nothing(params.settings):  # null: a client that expects a pull
            ls.apply_settings(params.settings, given)
