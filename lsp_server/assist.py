"""What hover and code actions share: run one model task off the event loop, audit its result.

Each task's text comes from `inference.tasks`; its reply is audited with the task's kind before
the editor sees anything, like a completion. The model text is rendered from the model's own
chat template on a thread of its own, never on the event loop, and a request waits for it only
so long: the render stops itself at its step and size bounds (`inference.chat_template`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcInternalError, JsonRpcRequestCancelled

from airgap_lsp.errors import AirgapError
from audit.record import AuditRecord, new_record
from inference.engine import Engine, EngineInfo, Generation, GenerationRequest
from inference.errors import ChatTemplateError, GenerationCancelled
from inference.stops import StopRule
from inference.tasks import RenderedTask, Task, render_task

NOT_SENT = "cancelled before the reply: the editor never showed it"
RENDER_SECONDS = 2.0  # the longest a code action waits for its model text (a sane one: ms)
# One render at a time: a template that runs until its step bound holds this thread only, and
# a render that waited behind it past its time is dropped, never run.
renderer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airgap-render")

if TYPE_CHECKING:
    from lsp_server.server import AirgapServer


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRun:
    task: Task
    rendered: RenderedTask
    request: GenerationRequest
    generation: Generation
    total_ms: float


async def run_task(
    ls: AirgapServer,
    engine: Engine,
    task: Task,
    *,
    max_new_tokens: int,
    max_seconds: float = 0.0,
    cancel: threading.Event | None = None,
    rendered: RenderedTask | None = None,
) -> TaskRun:
    """Generate the task's reply on the model worker; a cancelled request stops it between steps.
    `rendered`: the task's model text, if the caller has it already. ChatTemplateError: the
    model's chat template failed or was stopped (nothing was generated)."""
    rendered = rendered or await render(engine, task, RENDER_SECONDS)
    request = GenerationRequest(
        prompt=rendered.prompt,
        max_new_tokens=max_new_tokens,
        stop=StopRule(multiline=True, stop_texts=rendered.stop_texts, prose=True),
        max_seconds=max_seconds,
        lookahead=ls.settings.prompt_lookup,
        threads=ls.settings.threads,
    )
    cancel = cancel or threading.Event()
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    ls.model.preempt()
    try:
        gen = await loop.run_in_executor(ls.model.worker, engine.generate, request, cancel)
    except (asyncio.CancelledError, GenerationCancelled) as exc:
        cancel.set()
        raise JsonRpcRequestCancelled("cancelled by the editor") from exc
    except AirgapError as exc:
        raise JsonRpcInternalError(f"airgap-lsp: {exc}") from exc
    return TaskRun(
        task=task,
        rendered=rendered,
        request=request,
        generation=gen,
        total_ms=(time.perf_counter() - started) * 1000,
    )


async def render(engine: Engine, task: Task, seconds: float) -> RenderedTask:
    """The task's model text, rendered off the event loop. ChatTemplateError if the template
    fails, is stopped at a bound, or is still rendering after `seconds` (it stops by itself)."""
    rendering = asyncio.get_running_loop().run_in_executor(renderer, render_task, engine, task)
    try:
        return await asyncio.wait_for(rendering, seconds)
    except TimeoutError:
        raise ChatTemplateError(
            f"The model's chat template took longer than {seconds * 1000:.0f} ms to render the "
            "prompt; the model was not asked. If it does so again, the template is too "
            "expensive: import a model whose chat template renders a conversation plainly "
            "(`airgap-lsp model import`) and name it in the settings."
        ) from None


def task_record(
    ls: AirgapServer,
    run: TaskRun,
    *,
    kind: str,
    uri: str,
    position: dict[str, int],
    language: str,
    engine: Engine,
    text: str,
    sources: list[dict[str, Any]] | None = None,
    result: dict[str, Any] | None = None,
) -> AuditRecord:
    gen, request = run.generation, run.request
    info = gen.answered_by or engine.info
    return new_record(
        kind=kind,
        client=ls.client,
        file=uri,
        position=position,
        language=language,
        model=model_fields(info),
        device=info.device,
        dtype=info.dtype,
        decoding={
            "strategy": "greedy",
            "max_new_tokens": request.max_new_tokens,
            "multiline": True,
            "base_indent": 0,
            "forced_prefix": "",
            "prose": True,
            "stop_texts": list(request.stop.stop_texts),
            "chat_template": run.rendered.chat,
            "max_seconds": request.max_seconds,
            "prompt_lookup": request.lookahead,
            "threads": gen.threads,  # CPU threads it decoded with; 0: a GPU or a team server
            "steps": gen.steps,  # how the steps ran: inference.engine.Generation.steps
            # What prompt lookup drafted from besides the prompt (the last suggestion's tokens):
            # the drafts change how the steps round, so replay drafts from the same.
            "drafts_from": list(gen.drafts_from),
            "stop_reason": gen.stop_reason,
        },
        prompt=request.prompt,
        text=text,
        context_sources=sources or [],
        timings=timing_fields(gen, run.total_ms),
        result=result or {},
    )


def model_fields(info: EngineInfo) -> dict[str, str]:
    """What an audit line says of the model that answered."""
    return {
        "name": info.name,
        "version": info.version,
        "manifest_sha256": info.manifest_sha256,
        "family": info.family,
        "prompt_format": info.prompt_format,
        "backend": info.backend,  # local, or remote: a team server
        "address": info.address,  # the team server's API address
    }


def timing_fields(gen: Generation, total_ms: float) -> dict[str, float]:
    return {
        "prefill_ms": round(gen.prefill_ms, 1),
        "decode_ms": round(gen.decode_ms, 1),
        "total_ms": round(total_ms, 1),
        "prompt_tokens": gen.prompt_tokens,
        "new_tokens": gen.new_tokens,
        "tokens_per_second": round(gen.tokens_per_second, 1),
        "reused_prompt_tokens": gen.reused_tokens,
        "drafted_tokens": gen.drafted_tokens,
        "accepted_drafts": gen.accepted_tokens,
    }


async def write_audit(ls: AirgapServer, record: AuditRecord, engine: Engine) -> None:
    """The line is on disk before the reply leaves; a failed write withholds the reply.

    An editor that cancels while the line is being written never sees the reply, but the write
    goes on: once it ends, the line gets a not-accepted event that says so.
    """
    writing = asyncio.ensure_future(asyncio.to_thread(ls.ledger.audit, record))
    try:
        await asyncio.shield(writing)
    except asyncio.CancelledError:
        writing.add_done_callback(lambda _: written(ls, record, engine, writing, cancelled=True))
        raise
    except AirgapError as exc:
        raise JsonRpcInternalError(str(exc)) from written(ls, record, engine, writing)
    written(ls, record, engine, writing)


def written(
    ls: AirgapServer,
    record: AuditRecord,
    engine: Engine,
    writing: asyncio.Future[None],
    *,
    cancelled: bool = False,
) -> BaseException | None:
    """Report how a line's write ended: its error, shown to the user and returned, or the line
    on disk (and, for a reply the editor cancelled, that it was never shown)."""
    if writing.cancelled():  # the loop is closing: the write's end is not known here
        return None
    if (exc := writing.exception()) is not None:
        ls.model.send_status("error", str(exc))
        ls.show_error(str(exc))
        return exc
    ls.model.audited(engine)
    if cancelled:
        ls.ledger.withdraw(record.id, record.file, NOT_SENT)
    return None
