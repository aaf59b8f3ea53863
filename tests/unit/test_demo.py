"""The demo session's reading of what the server sends besides replies."""

from __future__ import annotations

from pygls.protocol import default_converter
from pygls.protocol.json_rpc import JsonRPCProtocol

from lsp_server.demo import status_line


def test_the_status_notification_is_shown_as_a_line() -> None:
    # As pygls hands it to a client's handler: a method it does not know gets its params as a
    # namedtuple, not a dict.
    protocol = JsonRPCProtocol(None, default_converter())  # type: ignore[arg-type]
    message = protocol.structure_message(
        {
            "jsonrpc": "2.0",
            "method": "airgap/status",
            "params": {"state": "ready", "message": "smollm2@0.1.2 on cpu"},
        }
    )
    assert not isinstance(message.params, dict)
    assert status_line(message.params) == "  [status] ready: smollm2@0.1.2 on cpu"
    assert status_line({"state": "loading"}) == "  [status] loading"
