"""The model, for the server: loaded off the event loop (the local one, or the team server with
its fallback), checked against the policy, and shown to the user while it loads
(`airgap/status`, work-done progress). Features ask it for the engine."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from airgap_lsp.errors import AirgapError
from airgap_lsp.paths import model_store_root
from airgap_lsp.policy import Policy
from airgap_lsp.settings import Settings
from inference.engine import Engine
from lsp_server.client import Progress, show_error

log = logging.getLogger("airgap_lsp")
STATUS = "airgap/status"  # server -> client: the model's state, for a status bar


class ModelHost:
    """One model at a time: the one the settings name, on the device and dtype they name."""

    def __init__(
        self, ls: LanguageServer, policy: Policy, settings: Callable[[], Settings]
    ) -> None:
        self.ls, self.policy, self.settings = ls, policy, settings
        # One worker: the model runs one generation at a time, off the event loop.
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airgap-model")
        self._engine: asyncio.Future[Engine] | None = None
        self._key: tuple[str, str, str, str] | None = None
        self.status_state = ""  # the last `airgap/status` state sent
        # Called when another model starts loading: what was made with the one before goes.
        self.reloaded: list[Callable[[], None]] = []
        # Cancel flags of work done ahead of a request (the rest of a block): a request that
        # wants the worker stops it between two steps (`preempt`).
        self.ahead: set[threading.Event] = set()

    def preempt(self) -> None:
        """A request wants the worker: work done ahead of one stops between two steps."""
        for cancel in self.ahead:
            cancel.set()
        self.ahead.clear()

    @property
    def started(self) -> bool:
        """Whether a model was asked for yet (the editor said `initialized`)."""
        return self._key is not None

    def ensure(self) -> None:
        """Start loading the configured model unless it is loaded or loading already."""
        s = self.settings()
        key = (s.model, s.device, s.dtype, s.backend_url)
        if key == self._key:
            return
        self._key = key
        for reloaded in self.reloaded:  # suggestions of the model before: not to be served
            reloaded()
        self._engine = asyncio.ensure_future(self._load(*key))
        # A failed load is shown to the user as it happens and retried on the next request;
        # reading it here keeps asyncio from logging it again as never retrieved.
        self._engine.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def engine(self) -> Engine:
        """The loaded model; waits while it loads. A load that failed is tried again, so that
        importing the missing model or fixing the store needs no restart."""
        failed = self._engine is not None and self._engine.done() and self._engine.exception()
        if self._engine is None or failed:
            self._key = None
            self.ensure()
        assert self._engine is not None
        return await asyncio.shield(self._engine)

    def now(self) -> Engine | str:
        """The loaded model, or why there is none yet: never waits (a hover must not)."""
        if self._engine is None:
            self.ensure()
            return "the model has not started loading"
        if not self._engine.done():
            return f"the model {self.settings().model} is still loading"
        if (exc := self._engine.exception()) is not None:  # `engine()` will try again
            return f"the model {self.settings().model} could not be loaded: {exc}"
        return self._engine.result()

    async def _load(self, ref: str, device: str, dtype: str, backend_url: str = "") -> Engine:
        where = f" on the team server {backend_url}" if backend_url else ""
        progress = Progress(self.ls, f"airgap-lsp: loading {ref}{where}")
        self.send_status("loading", f"loading {ref}{where}")
        await progress.begin()
        loop = asyncio.get_running_loop()

        def hashing(name: str, done: int, total: int) -> None:
            if done == total:
                loop.call_soon_threadsafe(progress.report, f"checked {name}")

        def load_local() -> Engine:
            from inference.engine import LocalEngine
            from inference.store import ModelStore

            # Loaded from the very files that were hashed, held open until the load is done.
            with ModelStore(model_store_root()).held(ref, progress=hashing) as stored:
                self.policy.check_model(stored)
                loop.call_soon_threadsafe(progress.report, "loading weights")
                engine = LocalEngine(stored, device=device, dtype=dtype)
            loop.call_soon_threadsafe(progress.report, "warming up")
            seconds = engine.warm_up(self.settings().prompt_lookup)
            log.info("warm-up: %.2f s; decoding steps: %s", seconds, engine.steps)
            return engine

        def load() -> Engine:
            self.policy.check_user()
            if not backend_url:
                return load_local()
            return self._load_remote(ref, backend_url, hashing, load_local, progress, loop)

        try:
            engine = await loop.run_in_executor(self.worker, load)
        except Exception as exc:
            # Whatever stopped the load, the user is told and the progress ends: a model left
            # "loading" for ever is a hang. Requests get the same reason, as an AirgapError.
            failure = exc
            if not isinstance(exc, AirgapError):
                log.error("loading %s failed unexpectedly", ref, exc_info=exc)
                failure = AirgapError(
                    f"{type(exc).__name__}: {exc} (the server's log has the details; import a "
                    "model this version of transformers can load)"
                )
            progress.end("failed")
            self.send_status("error", f"cannot load {ref}: {failure}")
            show_error(self.ls, f"airgap-lsp cannot load the model {ref}: {failure}")
            if failure is exc:
                raise
            raise failure from exc
        info = engine.info
        message = f"{info.name}@{info.version} on {info.device} ({info.dtype})"
        progress.end(message)
        self.send_status("ready", message, engine)
        log.info("model ready: %s, manifest sha256 %s", message, info.manifest_sha256)
        self.ls.window_log_message(
            types.LogMessageParams(type=types.MessageType.Info, message=f"airgap-lsp: {message}")
        )
        return engine

    def _load_remote(
        self,
        ref: str,
        url: str,
        hashing: Callable[[str, int, int], None],
        load_local: Callable[[], Engine],
        progress: Progress,
        loop: asyncio.AbstractEventLoop,
    ) -> Engine:
        """The team server, checked against the locked model's manifest in the local store.

        Down at start-up: the local model if the policy allows a fallback, else the load fails
        (and is tried again on the next request). Serving another model: refused, no fallback.
        """
        from inference.errors import BackendDown
        from inference.remote import RemoteEngine, TeamEngine
        from inference.store import ModelStore

        backend = self.policy.remote_backend(url)
        # The tokenizer, chat template and configs are hashed and read here; the weights are not
        # loaded (their hashes are in the manifest that the server's name must carry).
        with ModelStore(model_store_root()).held(ref, progress=hashing, weights=False) as stored:
            self.policy.check_model(stored)
            loop.call_soon_threadsafe(progress.report, f"checking {url}")
            remote = RemoteEngine(stored, url, ca_file=backend.ca_file, timeout_s=backend.timeout_s)

        def tell(message: str, down: bool) -> None:
            loop.call_soon_threadsafe(self.backend_changed, message, down)

        fallback = load_local if backend.fallback == "local" else None
        engine = TeamEngine(remote, fallback, tell)
        try:
            served = remote.check()
        except BackendDown as exc:
            if fallback is None:
                raise  # the load fails, the user is told, the next request tries again
            engine.went_down(exc)
        else:
            log.info("team server %s serves %s", url, served)
        return engine

    def backend_changed(self, message: str, down: bool) -> None:
        """The team server went down (the local model answers) or came back: tell the user."""
        now = self.now()
        engine = None if isinstance(now, str) else now
        if down:
            self.send_status("error", message, engine)
            log.warning(message)
            self.ls.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Warning, message=message)
            )
        else:
            self.send_status("ready", message, engine)
            log.info(message)
            self.ls.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Info, message=message)
            )

    def send_status(self, state: str, message: str = "", engine: Engine | None = None) -> None:
        """`airgap/status`: loading, ready or error, with the model and where it runs."""
        self.status_state = state
        info = engine.info if engine is not None else None
        name, _, version = self.settings().model.partition("@")
        self.ls.protocol.notify(
            STATUS,
            {
                "state": state,
                "model": info.name if info else name,
                "version": info.version if info else version,
                "device": info.device if info else "",
                "dtype": info.dtype if info else "",
                "message": message,
            },
        )

    def audited(self, engine: Engine) -> None:
        """An audit line was written: an error shown for a failed write is over."""
        if self.status_state == "error":
            info = engine.info
            self.send_status("ready", f"{info.name}@{info.version} on {info.device}", engine)
