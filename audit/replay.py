"""`airgap-lsp audit replay ID`: the same locked model, the logged prompt and parameters, again.

Greedy decoding on the same checkpoint, dtype and device gives the same text; replay shows it, or
shows the difference. It refuses a model whose manifest hash is not the one the line records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgap_lsp.errors import AirgapError
from audit.files import log_lines
from context.languages import for_document
from context.prompt import suggestion_text
from inference.errors import ModelRefused
from inference.stops import StopRule
from inference.store import ModelStore


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayResult:
    record: dict[str, Any]
    text: str  # what the model gives now
    device: str
    dtype: str
    steps: str = ""  # how its decoding steps ran (inference.engine.Generation.steps)
    note: str = ""  # what may make the text differ other than the model (a rule changed since)

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
    return _find(log, suggestion_id)[0]


def find_replayable(log: Path, suggestion_id: str) -> dict[str, Any]:
    """`find_record`, refusing a line that lacks what `replay` reads, or holds it as another
    type (an altered line), with a message naming its file and line."""
    record, where = _find(log, suggestion_id)
    if problem := _unreplayable(record):
        raise AirgapError(
            f"{where} holds suggestion {suggestion_id}, but not as a replay needs it "
            f"({problem}): the line was altered; run `airgap-lsp audit verify` on the log."
        )
    return record


def _find(log: Path, suggestion_id: str) -> tuple[dict[str, Any], str]:
    """The record and where it is: "FILE line N"."""
    wanted = suggestion_id.encode()
    for file, number, line in log_lines(log, newest_first=True):
        if wanted not in line:
            continue
        where = f"{file} line {number}"
        doc = _decoded(line, where)
        if doc.get("id") == suggestion_id and "prompt" in doc:
            return dict(doc), where
    raise AirgapError(f"No suggestion with id {suggestion_id} in {log} or its rotated files.")


def _decoded(line: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(line)
    except ValueError as exc:  # not JSON, or not UTF-8
        problem = f"not a JSON audit record ({exc})"
    except RecursionError:
        problem = "not an audit record (JSON nested too deeply to read)"
    else:
        if isinstance(doc, dict):
            return doc
        problem = "not an audit record (JSON, but not an object)"
    raise AirgapError(f"{where} is {problem}: run `airgap-lsp audit verify` on it.")


# What a replay reads from its line: (key, type, required). Lines of older versions lack some.
_NEEDS: tuple[tuple[str, type | tuple[type, ...], bool], ...] = (
    ("prompt", str, True),
    ("text", str, True),
    ("device", str, True),
    ("dtype", str, True),
    ("model", dict, True),
    ("decoding", dict, True),
    ("timings", dict, False),
    ("result", dict, False),
)
_MODEL_NEEDS = (("name", str, True), ("version", str, True), ("manifest_sha256", str, True))
_DECODING_NEEDS = (
    ("max_new_tokens", int, True),
    ("multiline", bool, True),
    ("base_indent", int, True),
    ("forced_prefix", str, True),
    ("line_before", str, False),
    ("refuse_start", str, False),
    ("refuse_first", list, False),
    ("steps", (str, type(None)), False),
    ("stop_texts", list, False),
    ("prompt_lookup", int, False),
    ("drafts_from", list, False),
    ("threads", int, False),
    ("first_statement", bool, False),
    ("statement_rule_sha256", str, False),
    ("piece_repeats", int, False),
)
_TYPE_NAMES: dict[object, str] = {
    str: "a string",
    (str, type(None)): "a string",
    dict: "an object",
    list: "an array",
    int: "a whole number",
    bool: "true or false",
}


# The most suggestions a line can say were refused before it (the server asks again twice), and
# their text: a line holding more was altered.
MAX_REFUSED = 8
MAX_REFUSED_CHARS = 64 * 1024
MAX_REFUSE_START_CHARS = 64  # refuse_start: a few blanks, line breaks and digits
# piece_repeats: 0 (off) or a count in this range (1 would end a line at its first piece)
MIN_PIECE_REPEATS, MAX_PIECE_REPEATS = 2, 64
MAX_DRAFTS_FROM = 4096  # drafts_from: one generation's tokens (the settings allow 4,096 at most)


def _unreplayable(doc: dict[str, Any]) -> str:
    """Why a record cannot be replayed as it stands (a key missing or of another type), or ""."""
    for where, part, needs in (
        ("", doc, _NEEDS),
        ("model.", doc.get("model"), _MODEL_NEEDS),
        ("decoding.", doc.get("decoding"), _DECODING_NEEDS),
    ):
        assert isinstance(part, dict)  # (model and decoding: the first table checked them)
        for key, want, required in needs:
            if key not in part:
                if required:
                    return f"no {where}{key}"
            elif not isinstance(part[key], want):
                return f"{where}{key} is not {_TYPE_NAMES[want]}"
    for key in ("stop_texts", "refuse_first"):
        if not all(isinstance(text, str) for text in doc["decoding"].get(key, [])):
            return f"decoding.{key} holds something that is not a string"
    drafts = doc["decoding"].get("drafts_from", [])
    if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in drafts):
        return "decoding.drafts_from holds something that is not a token id"
    if len(drafts) > MAX_DRAFTS_FROM:
        return f"decoding.drafts_from holds more tokens than a suggestion has ({MAX_DRAFTS_FROM})"
    repeats = doc["decoding"].get("piece_repeats", 0)
    if isinstance(repeats, bool):
        return "decoding.piece_repeats is not a whole number"
    if repeats != 0 and not MIN_PIECE_REPEATS <= repeats <= MAX_PIECE_REPEATS:
        return "decoding.piece_repeats is not a count the server ever writes"
    line_before = doc["decoding"].get("line_before", "")
    if "\n" in line_before or len(line_before) > len(doc["prompt"]) + len(
        doc["decoding"]["forced_prefix"]
    ):  # (the end of the text the prompt holds: read at every step of a replay)
        return "decoding.line_before is longer than the text its prompt holds, or not one line"
    if len(doc["decoding"].get("refuse_start", "")) > MAX_REFUSE_START_CHARS:
        return "decoding.refuse_start is longer than the server ever writes it"
    refused = doc["decoding"].get("refuse_first", [])
    if len(refused) > MAX_REFUSED or sum(map(len, refused)) > MAX_REFUSED_CHARS:
        # (each is matched against the whole vocabulary: an altered line could hold millions)
        return f"decoding.refuse_first holds more than the server ever refuses ({MAX_REFUSED})"
    written = doc.get("timings", {}).get("new_tokens", 0)
    if not isinstance(written, int) or isinstance(written, bool) or written < 0:
        return "timings.new_tokens is not a count of tokens"
    result = doc.get("result", {})
    if not isinstance(result.get("model_text", ""), str):
        return "result.model_text is not a string"
    if "served_from" in result and not isinstance(result["served_from"], str):
        return "result.served_from is not a string"
    return ""


def decoded_as(steps: str) -> tuple[bool, str, bool | str]:
    """What an audit line's `decoding.steps` says of how its steps ran, as LocalEngine takes it:
    a static cache, the compile backend ("" for none), and the attention's packing (True: the
    decoding steps'; PACKED_ONE_TOKEN: one-token steps only, as lines of that version were made).
    A label this version does not know raises ("" too: a line without steps is replayed as this
    machine would, which the caller decides): replayed another way, the arithmetic would not be
    the line's, and a different text would prove nothing."""
    from inference.engine import PACKED_ATTENTION, PACKED_ONE_TOKEN

    packing: dict[str, bool | str] = {"": False, PACKED_ATTENTION: True}
    packing[PACKED_ONE_TOKEN] = PACKED_ONE_TOKEN  # a line of the version that packed no drafts
    cache, _, rest = steps.partition(", ")
    if steps.endswith(", "):  # "dynamic cache, ": no version writes it
        pass
    elif cache == "dynamic cache" and rest in packing:
        return False, "", packing[rest]
    elif cache == "static cache" and not rest:
        return True, "", False
    elif cache == "static cache" and rest.startswith("compiled (") and rest.endswith(")"):
        backend = rest[len("compiled (") : -1]
        if backend:
            return True, backend, False
    raise AirgapError(
        f"The line says its decoding steps ran as {steps[:200]!r} (decoding.steps), which this "
        "version of airgap-lsp does not know, so it cannot decode the same way. Replay it with "
        "the version that wrote the line; if the log may have been altered, run "
        "`airgap-lsp audit verify` on it."
    )


def statement_rule(decoding: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """A block that ended with its first statement: the rule, with the patterns of the line's
    language as this version has them (lines before it: no such rule)."""
    if not decoding.get("first_statement"):
        return {}
    lang = for_document("", str(record.get("language", "")))
    return lang.statement_rule() if lang else {"statement": True}


def replay(record: dict[str, Any], store: ModelStore) -> ReplayResult:
    from inference.engine import GenerationRequest, LocalEngine

    decoding = record["decoding"]
    steps = decoding.get("steps") or None  # lines before it, or a team server's: as here now
    static, backend, packed = (None, None, None) if steps is None else decoded_as(steps)
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
        engine = LocalEngine(
            stored,
            device=device,
            dtype=record["dtype"],
            static_cache=static,  # None, here and below: as this machine would
            compile_backend=backend,
            packed_attention=packed,
        )
    max_new_tokens = int(decoding["max_new_tokens"])
    stop_after = None
    if decoding.get("stop_reason") == "time_budget":
        # Cut by the clock, not by the text: the same number of tokens reproduces it.
        stop_after = int(record.get("timings", {}).get("new_tokens", max_new_tokens))
    drafts_from = tuple(decoding.get("drafts_from", ()))
    if drafts_from and max(drafts_from) >= engine.vocab_size:
        raise AirgapError(
            f"Suggestion {record.get('id')} drafted from a token id past the model's vocabulary "
            f"({engine.vocab_size} tokens): the line was altered; run `airgap-lsp audit verify` "
            "on the log."
        )
    request = GenerationRequest(
        prompt=record["prompt"],
        max_new_tokens=max_new_tokens,
        stop_after=stop_after,
        stop=StopRule(
            multiline=bool(decoding["multiline"]),
            base_indent=int(decoding["base_indent"]),
            stop_texts=tuple(decoding.get("stop_texts", ())),
            prose=bool(decoding.get("prose", False)),
            piece_repeats=int(decoding.get("piece_repeats", 0)),  # lines before it: no such rule
            **statement_rule(decoding, record),
        ),
        forced_prefix=str(decoding["forced_prefix"]),
        line_before=str(decoding.get("line_before", "")),  # (lines before it: no loop rule)
        refuse_start=str(decoding.get("refuse_start", "")),  # lines before it refused nothing
        # The suggestions the parse check withheld before this one (lines before it: none)
        refuse_first=tuple(decoding.get("refuse_first", ())),
        lookahead=int(decoding.get("prompt_lookup", 0)),  # lines before it decoded without
        threads=int(decoding.get("threads", 0)),  # lines before it: as the load allows now
        # Lines before it drafted from the last suggestion too, which they did not record.
        drafts_from=drafts_from,
    )
    generation = engine.generate(request)
    return ReplayResult(
        record=record,
        text=suggestion_text(generation.text, request.forced_prefix),
        device=engine.info.device,
        dtype=engine.info.dtype,
        steps=generation.steps,
        note=rule_changed(decoding, record),
    )


def rule_changed(decoding: dict[str, Any], record: dict[str, Any]) -> str:
    """Where the block ended with its first statement: whether this version's patterns for the
    line's language are not those the line was made with ("": they are, or it did not say)."""
    made = decoding.get("statement_rule_sha256")
    if not decoding.get("first_statement") or not made:
        return ""
    lang = for_document("", str(record.get("language", "")))
    if lang is not None and lang.statement_rule_sha256() == made:
        return ""
    return (
        "the patterns that end a block with its first statement are not those this line was "
        "made with (another version): where the block ends may differ for that reason alone"
    )
