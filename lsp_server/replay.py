"""`airgap-lsp audit replay ID`: the same locked model, the logged prompt and parameters, again.

Greedy decoding on the same checkpoint, dtype and device gives the same text; replay shows it, or
shows the difference. It refuses a model whose manifest hash is not the one the line records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from context.prompt import suggestion_text
from inference.errors import AirgapError, ModelRefused
from inference.stops import StopRule
from inference.store import ModelStore
from lsp_server.audit import log_files


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayResult:
    record: dict[str, Any]
    text: str  # what the model gives now
    device: str
    dtype: str

    @property
    def expected(self) -> str:
        """What the model wrote then: the shown text, unless the parse check cut it."""
        return str(self.record.get("result", {}).get("model_text", self.record["text"]))

    @property
    def same(self) -> bool:
        return self.text == self.expected


def find_record(log: Path, suggestion_id: str) -> dict[str, Any]:
    """The suggestion line with this id (not its accept / not-accepted events), in the log or
    its rotated files, newest first."""
    wanted = suggestion_id.encode()
    files = [f for f in reversed(log_files(log)) if f.exists()]
    if not files:
        raise AirgapError(
            f"There is no audit log at {log}: pass the log the suggestion was written to (--log)."
        )
    for file in files:
        try:
            with file.open("rb") as fh:
                for line in fh:
                    if wanted not in line or not line.endswith(b"\n"):
                        continue  # (an unfinished last line was never shown: not a record)
                    doc = json.loads(line)
                    if doc.get("id") == suggestion_id and "prompt" in doc:
                        return dict(doc)
        except OSError as exc:
            raise AirgapError(f"Cannot read the audit log {file} ({exc.strerror}).") from exc
        except ValueError as exc:  # not JSON, or not UTF-8
            raise AirgapError(
                f"The audit log {file} holds a line that is not a JSON audit record ({exc}): "
                "run `airgap-lsp audit verify` on it."
            ) from exc
    raise AirgapError(f"No suggestion with id {suggestion_id} in {log} or its rotated files.")


def _backend(steps: str) -> str:
    """The compile backend named in an audit line's `steps`: "static cache, compiled (X)"."""
    head, _, tail = steps.partition("compiled (")
    return tail.rstrip(")") if tail else ""


def replay(record: dict[str, Any], store: ModelStore) -> ReplayResult:
    from inference.engine import GenerationRequest, LocalEngine

    model = record["model"]
    ref = f"{model['name']}@{model['version']}"
    device = "cpu" if record["device"] == "cpu" else "auto"
    with store.held(ref) as stored:
        if stored.manifest_sha256 != model["manifest_sha256"]:
            raise ModelRefused(
                f"{ref} in the store has manifest sha256 {stored.manifest_sha256}, but the "
                f"suggestion was made by {model['manifest_sha256']}: this is not the same model, "
                "so a replay would prove nothing. Import the original files under their version "
                "again."
            )
        decoding = record["decoding"]
        steps = decoding.get("steps") or None  # lines before it, or a team server's: as here now
        engine = LocalEngine(
            stored,
            device=device,
            dtype=record["dtype"],
            static_cache=None if steps is None else steps.startswith("static"),
            compile_backend=None if steps is None else _backend(steps),
        )
    max_new_tokens = int(decoding["max_new_tokens"])
    if decoding.get("stop_reason") == "time_budget":
        # Cut by the clock, not by the text: the same number of tokens reproduces it.
        max_new_tokens = int(record.get("timings", {}).get("new_tokens", max_new_tokens))
    request = GenerationRequest(
        prompt=record["prompt"],
        max_new_tokens=max_new_tokens,
        stop=StopRule(
            multiline=bool(decoding["multiline"]),
            base_indent=int(decoding["base_indent"]),
            stop_texts=tuple(decoding.get("stop_texts", ())),
            prose=bool(decoding.get("prose", False)),
        ),
        forced_prefix=str(decoding["forced_prefix"]),
        lookahead=int(decoding.get("prompt_lookup", 0)),  # lines before it decoded without
        threads=int(decoding.get("threads", 0)),  # lines before it: as the load allows now
    )
    generation = engine.generate(request)
    return ReplayResult(
        record=record,
        text=suggestion_text(generation.text, request.forced_prefix),
        device=engine.info.device,
        dtype=engine.info.dtype,
    )
