"""The model engine: a locked checkpoint, greedy decoding, cancellable between two steps."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from airgap_lsp.errors import AirgapError
from inference import cpuinfo
from inference.chat_template import render_chat
from inference.cpu_load import others_busy, threads_for
from inference.errors import GenerationCancelled
from inference.heap import keep_freed_memory
from inference.offline import set_offline_env
from inference.prompt_format import FORMATS
from inference.stops import StopRule, cut_forced
from inference.store import StoredModel

log = logging.getLogger("airgap_lsp.engine")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
# What `steps` adds where the decoding steps' attention was packed (inference.attention): the
# audit line records it, and replay packs where the line says so. PACKED_ONE_TOKEN: what lines
# of the version that packed one-token steps only say (their drafts' steps were not packed).
PACKED_ATTENTION = "decoding steps' attention packed by key/value head"
PACKED_ONE_TOKEN = "one-token attention packed by key/value head"
MIN_REUSE = 16  # a shorter common start is not worth keeping the old key/values for
# Nor is one shorter than this share of the prompt. The rest of a prompt read after a kept start
# carries a mask, and its attention costs its rows times all the keys; a prompt read whole takes
# the causal kernel, which does half of that. Measured on the CPU (2-core AMD EPYC, AVX-512 bf16,
# the default model, a 1,500-token prompt, bench/kept_start.py; docs/benchmarks.md): a kept
# start of 16 to 150 tokens read the rest 16 to 34 % slower than reading everything; 300 tokens
# broke even, 450 saved 10 %, 600 22 % (float32 alike). Shorter prompts break even earlier
# (about a tenth at 600 tokens): there a kept start of 10 to 25 % is read whole at up to a tenth
# more than needed. Read whole, the prompt is also computed as replay computes it.
MIN_REUSE_SHARE = 0.25
DEFAULT_LOOKAHEAD = 8  # the most tokens prompt-lookup decoding drafts at a step
NGRAM = 3  # prompt-lookup matches the last 3 tokens, then 2
# A static key/value cache holds this many tokens (or the model's context, if shorter). Each
# decoding step attends over all of it, masked: a longer one costs more at every step.
STATIC_CACHE_TOKENS = 8192


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineInfo:
    """What an audit line records about the model that answered."""

    name: str
    version: str
    manifest_sha256: str
    family: str
    prompt_format: str
    device: str
    dtype: str
    backend: str = "local"  # local: this machine; remote: a team's inference server
    address: str = ""  # the remote server's API address

    @classmethod
    def of(cls, stored: StoredModel, **where: str) -> EngineInfo:
        """The stored model's identity, and where it runs (device, dtype, backend, address)."""
        m = stored.manifest
        return cls(
            name=m.name,
            version=m.version,
            manifest_sha256=stored.manifest_sha256,
            family=m.family,
            prompt_format=m.prompt_format,
            **where,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRequest:
    prompt: str
    max_new_tokens: int
    stop: StopRule
    # Text the completion must start with, cut from the prompt's end: the prompt's last token
    # and the whitespace the user typed before the cursor (inference.healing). A prompt that
    # ends inside what would be one token (a newline whose indentation was cut, a partial name,
    # trailing spaces) tokenizes unlike any code the model saw. The first tokens are restricted
    # to those that spell it ("token healing"); the stop rules judge what follows it.
    forced_prefix: str = ""
    # The cursor line's text before the cursor, which the generation's first line continues
    # (`forced_prefix`'s part of it included): a loop within the line is judged with it, so a
    # string or a number opened there is seen (inference.stops.PIECE_REPEATS).
    line_before: str = ""
    # Characters the text after `forced_prefix` may not start with; where set, the end of text
    # may not come first either: at a line start blanks and line breaks ("a suggestion, not an
    # empty line"), mid-line line breaks. "": no such rule (hover, code actions).
    refuse_start: str = ""
    # Suggestions the caller refused (a line that broke the parse): the first token past
    # `forced_prefix` may not start one of them (`first_refused`: after `end if;` was refused,
    # no `end` either), so that asking again gives another suggestion, not the same one.
    refuse_first: tuple[str, ...] = ()
    # A time budget in seconds (0: none). Generation stops at the first step past it, with the
    # stop reason "time_budget"; the audit line records how many tokens that was.
    max_seconds: float = 0.0
    # Replay of a line its time budget cut: stop after this many tokens (None: no such stop; 0:
    # before the first, where reading the prompt used the budget up), where the clock stopped it.
    # Drafts are still sized by `max_new_tokens`, as they were.
    stop_after: int | None = None
    # Prompt-lookup decoding: the most tokens drafted from the context at a step (0: none). The
    # drafts are checked against greedy decoding's own choice, so the text does not change (but
    # for a near tie: see `drafts_from`).
    lookahead: int = DEFAULT_LOOKAHEAD
    # CPU threads to decode with (0: as many as the cores other processes leave free). The count
    # changes the arithmetic's order, so it is part of what makes a greedy result repeatable.
    threads: int = 0
    # Tokens prompt lookup may also draft from (None: what the engine's last generation wrote,
    # as the server asks). A step that checks drafts reads several tokens at once, which rounds
    # otherwise than one at a time and can tip a near tie: the drafts are part of what makes a
    # result repeatable, so the audit line records this and replay gives it back.
    drafts_from: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Generation:
    text: str
    # end_of_line, end_of_statement, end_of_block, stop_text, repetition, eos, max_tokens,
    # time_budget
    stop_reason: str
    prompt_tokens: int
    new_tokens: int
    prefill_ms: float
    decode_ms: float
    reused_tokens: int = 0  # prompt tokens whose key/values were kept from the last request
    drafted_tokens: int = 0  # tokens prompt-lookup decoding proposed
    accepted_tokens: int = 0  # of which greedy decoding chose, read ahead at no step of theirs
    threads: int = 0  # CPU threads it decoded with (0: not on this machine's CPU)
    # How the decoding steps ran: "dynamic cache" (with ", " and PACKED_ATTENTION where the
    # steps' attention was packed), "static cache", or "static cache, compiled
    # (BACKEND)"; each orders the arithmetic its own way ("": on a team server).
    steps: str = ""
    drafts_from: tuple[int, ...] = ()  # the tokens drafted from besides the prompt
    # The engine that answered, where it is not the one asked: a local model standing in for a
    # team server that is down (the audit line names the one that answered).
    answered_by: EngineInfo | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / (self.decode_ms / 1000) if self.decode_ms > 0 else 0.0


class Engine(Protocol):
    info: EngineInfo

    def count_tokens(self, text: str) -> int: ...

    def last_token(self, text: str) -> str:
        """The text of the last token of `text` as the model's tokenizer splits it ("" where it
        is a special token or not whole characters): what token healing backs up over."""
        ...

    def chat_prompt(self, messages: Sequence[tuple[str, str]], reply_start: str = "") -> str | None:
        """The model text for a conversation in the model's own chat template, opening the
        assistant's turn with `reply_start`; None for a model without a template."""
        ...

    def generate(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> Generation: ...


def pick_device(preference: str) -> str:
    import torch

    if preference not in DEVICES:
        raise AirgapError(f"Unknown device {preference!r}; choose one of {', '.join(DEVICES)}.")
    has_cuda = torch.cuda.is_available()
    if preference == "cuda" and not has_cuda:
        raise AirgapError(
            "The settings ask for device 'cuda' but torch sees no NVIDIA GPU. Install the CUDA "
            "build of torch and its driver, or set the device to 'auto' or 'cpu'."
        )
    if preference == "auto":
        return "cuda" if has_cuda else "cpu"
    return preference


def cpu_has_bf16() -> bool:
    """Whether the CPU computes bf16 in hardware (AVX512-BF16 or AMX).

    Without it, torch emulates bf16 and reading a prompt is about 3 times slower than in fp32
    (measured on an AVX512 Xeon without the BF16 extension).
    """
    return bool({"avx512_bf16", "amx_bf16"} & cpuinfo.flags())


def pick_dtype(preference: str, device: str) -> str:
    """bf16 where the hardware computes it; never fp16 on a CPU (no fast kernels there)."""
    import torch

    if preference not in DTYPES:
        raise AirgapError(f"Unknown dtype {preference!r}; choose one of {', '.join(DTYPES)}.")
    if preference != "auto":
        return preference
    if device == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if cpu_has_bf16() else "float32"


class Tokenized:
    """What an engine does with the checkpoint's tokenizer, wherever the model runs."""

    _tokenizer: Any

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False).input_ids)

    def last_token(self, text: str) -> str:
        # The last 256 characters hold the last token whole unless it is longer than that.
        ids = self._tokenizer(text[-256:], add_special_tokens=False).input_ids
        # Special and added tokens (`<file_sep>`, FIM markers) spell no code to heal.
        if not ids or ids[-1] in self._tokenizer.added_tokens_decoder:
            return ""
        piece = str(self._tokenizer.decode(ids[-1:], skip_special_tokens=False))
        return piece if piece and text.endswith(piece) else ""

    def ends_inside(self, forced: str) -> bool:
        """Whether the tokenizer, had a word followed `forced` (a line's indentation), would end
        no token where `forced` ends but join its last blank to that word (`"\n      X"` is
        `"\n     "`, `" X"`). Then, where healing spelled `forced` to its very end, the next token
        may not be one the tokenizer joins to a blank (`joined`): after `"\n      "` the model
        would go on with a word without its blank, which it has hardly seen (it wrote `1.`,
        `;` or `@@` there). A digit, never joined, may still start the line where `refuse_start`
        allows it (below a line that starts with one: inference.healing)."""
        if not forced or forced[-1] not in " \t":
            return False
        ids = self._tokenizer(forced[-64:] + "a", add_special_tokens=False).input_ids
        last = str(self._tokenizer.decode(ids[-1:], skip_special_tokens=False)) if ids else ""
        return len(last) > 1 and last.endswith("a") and not last[:-1].strip()

    def chat_prompt(self, messages: Sequence[tuple[str, str]], reply_start: str = "") -> str | None:
        # The template is a file of the checkpoint (hashed in the manifest), so code the model
        # brings: it renders in a Jinja sandbox that bounds its steps and its output, with the
        # variables transformers' `apply_chat_template` gives it. ChatTemplateError if it fails.
        if not getattr(self._tokenizer, "chat_template", None):
            return None
        variables = {
            **self._tokenizer.special_tokens_map,
            "messages": [{"role": role, "content": content} for role, content in messages],
            "tools": None,
            "documents": None,
            "add_generation_prompt": True,
        }
        return render_chat(self._tokenizer.get_chat_template(), variables) + reply_start

    def token_texts(self, vocab: int = 0) -> list[str]:
        """Each token's text, by id (for token healing); "" for a special or added token
        (`<file_sep>`, `<|endoftext|>`), which spells no code: healing never chooses one to
        spell a `<`, and none may start a suggestion."""
        vocab = vocab or len(self._tokenizer)  # the model's rows, where it has more (padding)
        texts = list(self._tokenizer.batch_decode([[i] for i in range(vocab)]))
        for i in self._tokenizer.added_tokens_decoder:
            if i < vocab:
                texts[i] = ""
        return texts


def spelling(token_texts: list[str], text: str, refuse: str = "") -> list[int]:
    """Ids of the tokens that spell the start of `text`, or all of it and more; where the more
    would start with a character of `refuse` (a blank line where a line of code is due), not
    those, unless no other token spells it."""
    ids = [
        i
        for i, piece in enumerate(token_texts)
        if piece and (piece.startswith(text) or text.startswith(piece))
    ]
    if refuse:
        n = len(text)
        kept = [i for i in ids if len(p := token_texts[i]) <= n or p[n] not in refuse]
        ids = kept or ids
    return ids


def joined(token_texts: list[str], blank: str) -> list[int]:
    """Ids of the tokens the tokenizer joins to a `blank` before them: those whose text, the
    blank put before it, is a token too (`" X"`, `" begin"`; not `"1"`, where no `" 1"` is)."""
    texts = set(token_texts)
    return [i for i, t in enumerate(token_texts) if t and blank + t in texts]


def first_refused(token_texts: list[str], pending: str, refused: tuple[str, ...]) -> list[int]:
    """Ids of the tokens that, spelling what is `pending` of the forced text and more, would
    start the suggestion like one of the `refused` ones: their text past `pending` starts one
    of them, or one of them starts it."""
    out = []
    n = len(pending)
    for i, piece in enumerate(token_texts):
        if len(piece) > n and piece.startswith(pending):
            more = piece[n:]
            if any(r.startswith(more) or more.startswith(r) for r in refused if r):
                out.append(i)
    return out


class LocalEngine(Tokenized):
    """A stored model loaded with transformers on this machine's GPU or CPU."""

    def __init__(
        self,
        stored: StoredModel,
        *,
        device: str = "auto",
        dtype: str = "auto",
        reuse_cache: bool = True,
        static_cache: bool | None = None,
        compile_backend: str | None = None,
        packed_attention: bool | str | None = None,
    ) -> None:
        """`reuse_cache`: keep the key/value state of the last prompt, and read only what a new
        prompt adds to their common start (the user typed on), where that start is long enough
        to pay (MIN_REUSE, MIN_REUSE_SHARE).

        `static_cache`: key/values in tensors of a fixed size, allocated once (None: on a GPU).
        `compile_backend`: torch.compile's backend for the decoding step, which needs the static
        cache ("": none; None: inductor with CUDA graphs on a GPU, none on the CPU, where it was
        measured no faster). Reading the prompt is never compiled: its length varies.
        `packed_attention`: on the CPU with the dynamic cache and a model that runs SDPA, the
        attention of a one-token step, and of a masked step of a few tokens (drafts to check, a
        keystroke's tokens after the kept start), read as several rows of each key/value head
        (inference.attention; None: where bf16's one-row kernel is slow on this CPU;
        PACKED_ONE_TOKEN: one-token steps only, as lines that say so were made).
        """
        set_offline_env()
        import torch
        from safetensors import SafetensorError
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        dev = pick_device(device)
        dt = pick_dtype(dtype, dev)
        folder = str(stored.path)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(
                folder, local_files_only=True, trust_remote_code=False
            )
            model: Any = AutoModelForCausalLM.from_pretrained(
                folder,
                local_files_only=True,
                trust_remote_code=False,
                use_safetensors=True,
                dtype=getattr(torch, dt),
            )
            self._model: Any = model.to(dev)
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
            raise AirgapError(
                f"transformers could not load {stored.ref} from {folder} ({exc}). The files passed "
                "their hash check, so the checkpoint itself is damaged (a file cut short before "
                "import: re-import it from complete files) or not one this version of "
                "transformers can run (import a supported model)."
            ) from exc
        self._model.eval()
        self._fmt = FORMATS[stored.manifest.prompt_format]
        eos = self._tokenizer.eos_token_id
        self._eos_ids = {eos} if isinstance(eos, int) else set(eos or ())
        self._eos_ids.update(
            i
            for t in self._fmt.stop
            if isinstance(i := self._tokenizer.convert_tokens_to_ids(t), int)
            and i != self._tokenizer.unk_token_id
        )
        self._n_ctx = int(getattr(self._model.config, "max_position_embeddings", 2048))
        vocab = int(self._model.get_output_embeddings().weight.shape[0])
        self.vocab_size = vocab
        self._token_text = self.token_texts(vocab)
        self._healing: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()  # one generation at a time: the model is not re-entrant
        self._reuse = reuse_cache
        self._cache: tuple[list[int], Any] | None = None  # tokens held, and their key/values
        # The last prompt read, and the scores after it: the same prompt again is not read again.
        self._read: tuple[list[int], Any] | None = None
        # The tokens the last generation wrote: after a keystroke the suggestion it made is no
        # longer in the prompt, but the new one often ends as it did (a draft source).
        self._last_written: list[int] = []
        self._cores = _cores(torch)
        self._on_cpu = dev == "cpu"
        if self._on_cpu:
            keep_freed_memory()  # a prompt's buffers reused, not paged in afresh (inference.heap)
        on_gpu = dev == "cuda"
        self._static: Any = None  # the static cache, allocated once: its addresses stay put
        self._static_len = min(self._n_ctx, STATIC_CACHE_TOKENS)
        self._step: Any = self._model  # the decoding step's function
        self._dynamic_steps = self.steps = "dynamic cache"
        sliding = getattr(self._model.config, "use_sliding_window", False) or any(
            t != "full_attention" for t in getattr(self._model.config, "layer_types", None) or ()
        )
        if (on_gpu if static_cache is None else static_cache) and not sliding:
            from transformers import StaticCache

            self._static = StaticCache(config=self._model.config, max_cache_len=self._static_len)
            self.steps = "static cache"
            backend = ("inductor" if on_gpu else "") if compile_backend is None else compile_backend
            if backend:
                graphs = on_gpu and backend == "inductor"
                # Each model loaded in this process adds its step's graphs to the same
                # transformers function; past the limit, fullgraph would make that an error.
                limits = torch._dynamo.config
                name = (
                    "recompile_limit" if hasattr(limits, "recompile_limit") else "cache_size_limit"
                )
                setattr(limits, name, max(getattr(limits, name), 64))
                self._step = torch.compile(
                    self._model.forward,
                    backend=backend,
                    fullgraph=True,
                    mode="reduce-overhead" if graphs else None,
                )
                self.steps = f"static cache, compiled ({backend})"
        elif self._on_cpu and self._model.config._attn_implementation == "sdpa":
            # (A static cache's steps carry a mask, which transformers packs itself.)
            self._pack_attention(packed_attention)
        self.info = EngineInfo.of(
            stored,
            device=dev if dev == "cpu" else f"cuda ({torch.cuda.get_device_name(0)})",
            dtype=dt,
        )

    def _pack_attention(self, wanted: bool | str | None) -> None:
        """The decoding steps' attention packed by key/value head (inference.attention), where
        `wanted` (None: where this CPU's bf16 one-row kernel is slow; PACKED_ONE_TOKEN: one-token
        steps only); `steps` says so only where the model took it."""
        from inference import attention

        if not (attention.one_row_is_slow(self._model.dtype) if wanted is None else wanted):
            return
        name, label = (
            (attention.NAME, PACKED_ONE_TOKEN)
            if wanted == PACKED_ONE_TOKEN
            else (attention.STEPS_NAME, PACKED_ATTENTION)
        )
        try:
            self._model.set_attn_implementation(name)
        except (ValueError, KeyError) as exc:
            log.warning("attention stays the model's own (SDPA, one row a step): %s", exc)
            return
        if self._model.config._attn_implementation == name:
            self._dynamic_steps = self.steps = f"dynamic cache, {label}"
        else:  # transformers refused the switch for this model class, with a warning of its own
            log.warning("attention stays the model's own (SDPA, one row a step)")

    def _spelling(self, text: str, refuse: str = "") -> Any:
        """Ids of the tokens that spell the start of `text` or all of it and more, none of whose
        more starts with a character of `refuse` (unless that leaves none); None if none."""
        key = (text, refuse)
        if key not in self._healing:
            ids = spelling(self._token_text, text, refuse)
            self._healing[key] = self._torch.tensor(ids, device=self._model.device) if ids else None
        return self._healing[key]

    def _joined(self, blank: str) -> Any:
        key = ("joined", blank)
        if key not in self._healing:
            ids = joined(self._token_text, blank)
            self._healing[key] = self._torch.tensor(
                ids, device=self._model.device, dtype=self._torch.long
            )
        return self._healing[key]

    def _refused(self, refuse: str) -> Any:
        """Ids of the tokens that may not come first after the forced text: the end of text, the
        special tokens (a file separator ends a suggestion as surely), and the tokens that start
        with a character of `refuse` (or spell nothing)."""
        key = ("refused", refuse)
        if key not in self._healing:
            ids = [i for i, p in enumerate(self._token_text) if not p or p[0] in refuse]
            ids += [i for i in self._eos_ids if i < len(self._token_text)]
            ids += [i for i in self._tokenizer.added_tokens_decoder if i < len(self._token_text)]
            self._healing[key] = self._torch.tensor(sorted(set(ids)), device=self._model.device)
        return self._healing[key]

    def generate(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> Generation:
        with self._lock:
            return self._generate(request, cancel or threading.Event())

    def warm_up(self, lookahead: int = DEFAULT_LOOKAHEAD) -> float:
        """One short generation, so that the first request does not pay for what a first run
        costs (kernel selection, allocation; on a GPU, its libraries' start-up). A compiled
        decoding step is compiled here, for both of its shapes: one token, and one token with
        `lookahead` drafts. If compiling fails, the steps run uncompiled and the log says why.
        Seconds."""
        started = time.perf_counter()
        request = GenerationRequest(
            prompt="def f(x):\n    return x\n", max_new_tokens=2, stop=StopRule(multiline=True)
        )
        try:
            self.generate(request)  # compiles the one-token step
        except Exception as exc:  # noqa: BLE001 - any failure: run uncompiled, say so
            if self._step is self._model:
                raise
            self._uncompiled(exc)
            self.generate(request)
        with self._lock:
            self._cache = None  # not a prompt the user wrote
            self._last_written = []  # nor a suggestion to draft from
            if self._step is not self._model:
                try:
                    self._compile(lookahead)
                except Exception as exc:  # noqa: BLE001 - any failure: run uncompiled, say so
                    self._uncompiled(exc)
        return time.perf_counter() - started

    def _uncompiled(self, exc: BaseException) -> None:
        log.error("compiling the decoding step failed; it runs uncompiled: %r", exc)
        self._step = self._model
        self.steps = "static cache"

    def _compile(self, lookahead: int) -> None:
        """Run the compiled step at each of its shapes, 3 times (CUDA graphs are recorded on
        the third), over positions no prompt holds afterwards."""
        torch = self._torch
        with torch.inference_mode():
            for width in sorted({1, 1 + lookahead}):
                for _ in range(3):
                    _trim(self._static, 1)
                    self._step(
                        input_ids=torch.zeros(
                            (1, width), dtype=torch.long, device=self._model.device
                        ),
                        past_key_values=self._static,
                        use_cache=True,
                        logits_to_keep=width,
                    )
        _trim(self._static, 0)

    def _cached(self, ids: list[int], static: bool) -> tuple[Any, int]:
        """The kept key/value state cut to its common start with `ids`, and that length; or a
        fresh state and 0. At least the last token is always read again, for its scores."""
        kept, self._cache = self._cache, None
        if static:
            fresh = self._static
            _trim(fresh, 0)
        else:
            from inference.kv import growing_cache

            fresh = growing_cache(self._model.config)
        if not self._reuse or kept is None or (kept[1] is self._static) != static:
            return fresh, 0
        held, cache = kept
        if self._read is not None and self._read[0] == ids and held[: len(ids)] == ids:
            # The same prompt again: its last token's scores as they were read the first time,
            # not read again in another split of the arithmetic (which can tip a near tie).
            _trim(cache, len(ids))
            return cache, len(ids)
        n = 0
        for a, b in zip(held, ids[:-1], strict=False):
            if a != b:
                break
            n += 1
        if n < max(MIN_REUSE, MIN_REUSE_SHARE * len(ids)):
            return fresh, 0
        _trim(cache, n)
        return cache, n

    def _generate(self, request: GenerationRequest, cancel: threading.Event) -> Generation:
        torch = self._torch
        dev = self._model.device
        ids: list[int] = list(self._tokenizer(request.prompt, add_special_tokens=False).input_ids)
        n_prompt = len(ids)
        if n_prompt == 0:
            raise AirgapError("The prompt is empty: there is nothing to generate from.")
        if n_prompt + request.max_new_tokens > self._n_ctx:
            raise AirgapError(
                f"The prompt has {n_prompt} tokens and the model's context holds {self._n_ctx}: "
                "lower the context size in the settings."
            )
        stop = replace(request.stop, stop_texts=request.stop.stop_texts + self._fmt.stop)
        if cancel.is_set():
            raise GenerationCancelled("cancelled before it started")
        threads = 0
        if self._on_cpu:
            threads = request.threads or (
                threads_for(self._cores, others_busy()) if self._cores > 1 else 1
            )
            torch.set_num_threads(threads)
        # The static cache, unless this prompt and its completion would overflow it.
        static = self._static is not None and (
            n_prompt + request.max_new_tokens + request.lookahead + 1 <= self._static_len
        )
        step: Any = self._step if static else self._model
        compiled = step is not self._model
        pending = request.forced_prefix
        # Where a line of code is due after the forced text, a word after its last blank is
        # spelled with that blank, as the tokenizer would have split them (`ends_inside`).
        inside = bool(request.refuse_start) and self.ends_inside(pending)
        refuse, refused = request.refuse_start, request.refuse_first
        generated: list[int] = []
        text, reason = "", "max_tokens"
        drafted = accepted = 0
        earlier = tuple(self._last_written) if request.drafts_from is None else request.drafts_from
        t0 = time.perf_counter()
        past, reused = self._cached(ids, static)
        fed = ids[:reused]  # the tokens whose key/values `past` holds
        ok = False
        try:
            with torch.inference_mode():
                # Only the last position's scores are read: computing them for every prompt token
                # costs a quarter of the prefill and a prompt x vocabulary tensor (200 MB at 1,024).
                if self._read is not None and reused == len(ids):
                    logits = self._read[1]
                else:
                    out = self._model(
                        input_ids=torch.tensor([ids[reused:]], device=dev),
                        past_key_values=past,
                        use_cache=True,
                        logits_to_keep=1,
                    )
                    past, logits = out.past_key_values, out.logits[0, -1].clone()
                    self._read = (list(ids), logits)
                fed = list(ids)
                t1 = time.perf_counter()
                deadline = t0 + request.max_seconds if request.max_seconds > 0 else None
                # Drafted tokens already read, each with the scores that follow it: used while
                # greedy decoding chooses the same tokens, dropped at the first it does not.
                ahead: list[tuple[int, Any]] = []
                while len(generated) < request.max_new_tokens:
                    if cancel.is_set():
                        raise GenerationCancelled(f"cancelled after {len(generated)} tokens")
                    if (deadline is not None and time.perf_counter() > deadline) or (
                        request.stop_after is not None and len(generated) >= request.stop_after
                    ):
                        reason = "time_budget"
                        break
                    if pending and (allowed := self._spelling(pending, refuse)) is not None:
                        scores = logits[allowed]
                        if refused:
                            banned = set(first_refused(self._token_text, pending, refused))
                            keep = [k for k, i in enumerate(allowed.tolist()) if i not in banned]
                            if keep:  # (else: refused all, which asking again cannot avoid)
                                scores = torch.full_like(scores, -float("inf"))
                                scores[keep] = logits[allowed[keep]]
                        token = int(allowed[torch.argmax(scores)])
                        piece = self._token_text[token]
                        pending = pending[len(piece) :] if pending.startswith(piece) else ""
                    elif (refuse or refused) and len(text) <= len(request.forced_prefix):
                        # The first token of the suggestion proper: not a blank start, not EOS,
                        # not the start of a suggestion refused before.
                        pending = ""
                        scores = logits.clone()
                        if refuse:
                            scores[self._refused(refuse)] = -float("inf")
                        if inside and text == request.forced_prefix:
                            scores[self._joined(text[-1])] = -float("inf")
                        if refused:
                            scores[first_refused(self._token_text, "", refused)] = -float("inf")
                        token = int(torch.argmax(scores))
                    else:
                        pending = ""
                        token = int(torch.argmax(logits))
                    if token in self._eos_ids:
                        reason = "eos"
                        break
                    generated.append(token)
                    text = str(self._tokenizer.decode(generated, skip_special_tokens=False))
                    kept, why = cut_forced(text, request.forced_prefix, stop, request.line_before)
                    if why is not None:
                        text, reason = kept, why
                        break
                    if len(generated) >= request.max_new_tokens:
                        break
                    if ahead and ahead[0][0] == token:  # the draft was right: already read
                        fed.append(token)
                        logits = ahead.pop(0)[1]
                        accepted += 1
                        continue
                    if ahead:  # wrong from here: forget what was read past the last right one
                        _trim(past, len(fed))
                        ahead = []
                    draft = (
                        [] if pending else self._draft(fed + [token], request, generated, earlier)
                    )
                    drafted += len(draft)
                    fill: list[int] = []
                    if compiled and draft:  # one shape for every draft: padded to its longest
                        fill = [draft[-1]] * (request.lookahead - len(draft))
                    out = step(
                        input_ids=torch.tensor([[token, *draft, *fill]], device=dev),
                        past_key_values=past,
                        use_cache=True,
                        logits_to_keep=1 + len(draft) + len(fill),
                    )
                    past = out.past_key_values
                    # A copy: a CUDA graph's next run writes over its outputs.
                    rows = out.logits[0].clone() if compiled else out.logits[0]
                    fed.append(token)
                    if fill:
                        _trim(past, len(fed) + len(draft))  # the padding is not text
                    logits = rows[0]
                    ahead = [(d, rows[i + 1]) for i, d in enumerate(draft)]
                t2 = time.perf_counter()
            ok = True
        except GenerationCancelled:
            ok = True  # what was read is sound: the next keystroke's prompt may start with it
            raise
        finally:
            if ok and self._reuse and past is not None:
                _trim(past, len(fed))
                self._cache = (fed, past)
            if ok and generated:
                self._last_written = generated
        if reason in ("max_tokens", "eos", "time_budget"):
            text = cut_forced(text, request.forced_prefix, stop, request.line_before)[0]
        return Generation(
            text=text.rstrip("\ufffd"),
            stop_reason=reason,
            prompt_tokens=n_prompt,
            new_tokens=len(generated),
            prefill_ms=(t1 - t0) * 1000,
            decode_ms=(t2 - t1) * 1000,
            reused_tokens=reused,
            drafted_tokens=drafted,
            accepted_tokens=accepted,
            threads=threads,
            steps=self.steps if static else self._dynamic_steps,
            drafts_from=earlier if request.lookahead else (),
        )

    def _draft(
        self,
        seq: list[int],
        request: GenerationRequest,
        generated: list[int],
        earlier: Sequence[int],
    ) -> list[int]:
        """Prompt-lookup decoding: where the last tokens appeared before in the prompt or the
        text so far (or in `earlier`), what followed them there (code often repeats nearby
        text)."""
        room = min(request.lookahead, request.max_new_tokens - len(generated) - 1)
        if room <= 0:
            return []
        return lookup(seq, room, earlier)


def lookup(seq: list[int], room: int, earlier: Sequence[int] = ()) -> list[int]:
    """What followed the latest earlier occurrence of the sequence's last NGRAM (then fewer)
    tokens, at most `room` tokens: in `earlier` first (what the last generation wrote, from a
    prompt one keystroke away), then in the sequence itself."""
    end = len(seq)
    for n in range(NGRAM, 1, -1):
        if end <= n:
            continue
        tail = seq[end - n :]
        if follow := _follows(earlier, len(earlier), tail, room):
            return follow
        if follow := _follows(seq, end - 1, tail, room):
            return follow
    return []


def _follows(seq: Sequence[int], before: int, tail: list[int], room: int) -> list[int]:
    """What follows the latest occurrence of `tail` that starts before `before` in `seq`, at
    most `room` tokens ([]: none, or nothing after it)."""
    n, first = len(tail), tail[0]
    for i in range(min(before, len(seq)) - n, -1, -1):  # latest occurrence first
        if (
            seq[i] == first
            and list(seq[i : i + n]) == tail
            and (follow := seq[i + n : i + n + room])
        ):
            return list(follow)
    return []


_CORES: list[int] = []


def _cores(torch: Any) -> int:
    """torch's own thread count before any generation changed it: one per physical core."""
    if not _CORES:
        _CORES.append(torch.get_num_threads())
    return _CORES[0]


def _length(cache: Any, default: int) -> int:
    try:
        return int(cache.get_seq_length())
    except (AttributeError, TypeError):
        return default


def _trim(cache: Any, keep: int) -> None:
    """Cut a key/value cache to its first `keep` tokens."""
    from transformers import StaticCache

    if isinstance(cache, StaticCache):
        # A static cache: its tensors keep their size and address; the next token is written at
        # the length, and what lies past it is masked out until written over. On a GPU the
        # length is a copy made in the first prefill, under inference mode: only there may it
        # change in place.
        import torch

        layers: list[Any] = list(cache.layers)
        with torch.inference_mode():
            for layer in layers:
                layer.cumulative_length.fill_(keep)
        return
    extra = _length(cache, keep) - keep
    if extra > 0:
        cache.crop(-extra)
