"""A team server for the tests and the benchmark: llama-cpp-python's OpenAI-compatible server on
a GGUF, on loopback, with what a test must observe of it.

    python tests/e2e/team_server.py --gguf MODEL.gguf --alias NAME [--port 0] [--gate-after N]

Prints `listening on 127.0.0.1:PORT` once the model is loaded and the socket accepts (connections
queue from then on, so a client may connect at once). The server is llama-cpp-python's own app;
this script only adds, under /test/, a count of the tokens it sampled (its generation loop calls
`Llama.sample` once per new token) and, with --gate-after N, a gate: the N-th token of a
generation waits until a test opens it, so that a test can act while the server is generating.

    GET  /test/sampled                  {"sampled": tokens sampled since start}
    GET  /test/wait_sampled?at_least=K  returns once K tokens were sampled
    GET  /test/wait_gated?at_least=K    returns once K generations reached the gate (a client's
                                        one-token requests, as token healing makes, never do),
                                        with the tokens sampled so far
    POST /test/open                     opens the gate (it closes again for the next generation)
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from typing import Any


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--gguf", required=True)
    p.add_argument("--alias", required=True, help="the served model name")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--n-ctx", type=int, default=4096)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--gate-after", type=int, default=0)
    p.add_argument("--ssl-keyfile", default=None)
    p.add_argument("--ssl-certfile", default=None)
    args = p.parse_args()

    import llama_cpp
    import uvicorn
    from fastapi import Query
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    state = threading.Condition()
    sampled = {"total": 0, "this_generation": 0, "gated": 0}
    gate = threading.Event()
    sample = llama_cpp.Llama.sample
    generate = llama_cpp.Llama.generate

    def counting_generate(self: Any, *a: Any, **kw: Any) -> Any:
        with state:
            sampled["this_generation"] = 0
        gate.clear()
        return generate(self, *a, **kw)

    def counting_sample(self: Any, *a: Any, **kw: Any) -> Any:
        with state:
            sampled["total"] += 1
            sampled["this_generation"] += 1
            n = sampled["this_generation"]
            state.notify_all()
        if args.gate_after and n == args.gate_after:
            with state:
                sampled["gated"] += 1
                state.notify_all()
            gate.wait()
        return sample(self, *a, **kw)

    llama_cpp.Llama.sample = counting_sample  # type: ignore[method-assign]
    llama_cpp.Llama.generate = counting_generate  # type: ignore[method-assign]

    app = create_app(
        # interrupt_requests off: a waiting request must not cut the running one short (what a
        # shared server needs, and what lets a test see that only a closed stream stops it).
        server_settings=ServerSettings(host=args.host, port=args.port, interrupt_requests=False),
        model_settings=[
            ModelSettings(
                model=args.gguf,
                model_alias=args.alias,
                n_ctx=args.n_ctx,
                n_threads=args.threads,
                n_threads_batch=args.threads,
                verbose=False,
            )
        ],
    )

    @app.get("/test/sampled")
    def get_sampled() -> dict[str, int]:
        with state:
            return {"sampled": sampled["total"]}

    @app.get("/test/wait_sampled")
    def wait_sampled(at_least: int = Query(...)) -> dict[str, int]:
        with state:
            state.wait_for(lambda: sampled["total"] >= at_least, timeout=120)
            return {"sampled": sampled["total"]}

    @app.get("/test/wait_gated")
    def wait_gated(at_least: int = Query(...)) -> dict[str, int]:
        with state:
            state.wait_for(lambda: sampled["gated"] >= at_least, timeout=120)
            return {"gated": sampled["gated"], "sampled": sampled["total"]}

    @app.post("/test/open")
    def open_gate() -> dict[str, bool]:
        gate.set()
        return {"open": True}

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(64)
    config = uvicorn.Config(
        app,
        log_level="warning",
        timeout_graceful_shutdown=1,
        ssl_keyfile=args.ssl_keyfile,
        ssl_certfile=args.ssl_certfile,
    )
    server = uvicorn.Server(config)
    print(f"listening on {args.host}:{sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
