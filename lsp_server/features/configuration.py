"""The life cycle: settings from `initializationOptions`, re-applied on
`workspace/didChangeConfiguration`; the model loads once the editor is ready; shutdown stops
generations in flight."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from lsp_server.features.documents import watch_files

if TYPE_CHECKING:
    from lsp_server.server import AirgapServer


def register(server: AirgapServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: AirgapServer, params: types.InitializeParams) -> None:
        if params.client_info:
            ls.client = {
                "name": params.client_info.name,
                "version": params.client_info.version or "",
            }
        ls.apply_settings(params.initialization_options)

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
        ls.apply_settings(params.settings)
