"""A plain completion reference on the server's model, for bench/quality.py to compare with.

Written apart from the server's code (no context builder, no engine), so that it cannot share a
fault with what it is compared to. The prompt, in the repository format of the model's training:

    <file_sep>other/path\\n<window>\\n     up to 4 windows of 20 lines (stride 10) from other
    ...                                files of the same language in the project, ranked by
                                       identifier Jaccard with the last 15 lines before the
                                       cursor; at most 512 tokens; the best one last
    <file_sep>current/path\\n<prefix>    the last 1,024 tokens of the text before the cursor

Greedy decoding; the answer is the first line. Two forms:
- as written: the prompt ends where the text before the cursor ends;
- healed: the whitespace at the prompt's end is cut (at a line start, the newline and the
  indentation, with any blank lines before them; mid-line, the blanks typed before the cursor)
  and the generation is forced to spell it first: at each step, while some of it is left, only
  the tokens whose text is consistent with what is left (starts with it, or is its start) are
  allowed, and the best-scoring of them is taken. The forced text is taken off the answer.
Identifiers are compared lower-cased in Ada and VHDL (case-insensitive languages); windows that
overlap one already taken from the same file, or share no identifier, are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quality_corpus import CASE_INSENSITIVE, FAMILY, IDENTIFIER, Position

from inference.cpu_load import others_busy, threads_for
from inference.engine import pick_dtype
from inference.offline import set_offline_env
from inference.store import ModelStore

WINDOW_LINES, STRIDE, QUERY_LINES = 20, 10, 15
MAX_WINDOWS, CONTEXT_TOKENS, PREFIX_TOKENS = 4, 512, 1024
FILE_SEP = "<file_sep>"
STOP_TOKENS = ("<file_sep>", "<|endoftext|>")


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    path: Path
    start: int  # first line, from 0
    block: str  # as the prompt holds it: <file_sep>path, the lines
    words: frozenset[str]
    tokens: int  # the block's


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    text: str  # the answer, the forced text taken off; up to its first newline
    latency_ms: float  # the prompt's retrieval and the generation
    prompt_tokens: int
    new_tokens: int
    windows: int
    forced: str


def words(text: str, family: str) -> frozenset[str]:
    found = IDENTIFIER.findall(text)
    return frozenset(w.lower() for w in found) if family in CASE_INSENSITIVE else frozenset(found)


def windows_of(
    root: Path, files: list[Path], family: str, count: Callable[[list[str]], list[int]]
) -> list[Window]:
    found = []
    for path in files:
        relative = path.relative_to(root).as_posix()
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        for start in range(0, max(len(lines) - STRIDE, 1), STRIDE):
            text = "\n".join(lines[start : start + WINDOW_LINES]).rstrip()
            if text.strip():
                found.append((path, start, f"{FILE_SEP}{relative}\n{text}\n", words(text, family)))
    tokens = count([block for _p, _s, block, _w in found])
    return [
        Window(path=path, start=start, block=block, words=ws, tokens=n)
        for (path, start, block, ws), n in zip(found, tokens, strict=True)
    ]


class Reference:
    """The model from the local store, loaded with transformers as the server loads it."""

    def __init__(self, store_root: Path, ref: str, max_new_tokens: int) -> None:
        set_offline_env()  # before transformers is imported: it reads them once
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self._cores = torch.get_num_threads()
        self.dtype = pick_dtype("auto", "cpu")
        with ModelStore(store_root).held(ref) as stored:
            folder = str(stored.path)
            self.tokenizer: Any = AutoTokenizer.from_pretrained(
                folder, local_files_only=True, trust_remote_code=False
            )
            self.model: Any = AutoModelForCausalLM.from_pretrained(
                folder,
                local_files_only=True,
                trust_remote_code=False,
                use_safetensors=True,
                dtype=getattr(torch, self.dtype),
            )
            self.ref = stored.ref
        self.model.eval()
        vocab = self.tokenizer.get_vocab()
        if FILE_SEP not in vocab:
            raise RuntimeError(
                f"the model {self.ref} has no {FILE_SEP} token: the plain reference's prompt is "
                "in the repository format of models that have one"
            )
        self.max_new_tokens = max_new_tokens
        size = int(self.model.get_output_embeddings().weight.shape[0])
        self._pieces: list[str] = self.tokenizer.batch_decode([[i] for i in range(size)])
        self._stop = {vocab[t] for t in STOP_TOKENS if t in vocab}
        if isinstance(self.tokenizer.eos_token_id, int):
            self._stop.add(self.tokenizer.eos_token_id)
        self._allowed: dict[str, Any] = {}
        self._windows: dict[tuple[Path, str], list[Window]] = {}

    def count_each(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False).input_ids]

    def index(self, root: Path, family: str, files: list[Path]) -> None:
        """Cut a project's files of a language into windows, once."""
        if (root, family) not in self._windows:
            self._windows[(root, family)] = windows_of(root, files, family, self.count_each)

    def prompt(self, pos: Position) -> tuple[str, int]:
        """The model text for a position, and how many windows it holds."""
        family = FAMILY[pos.language]
        prefix = pos.prefix
        query = words("\n".join(prefix.split("\n")[-QUERY_LINES:]), family)
        scored = []
        for w in self._windows[(pos.project.root, family)]:
            if w.path == pos.cut.path or not (shared := len(query & w.words)):
                continue
            scored.append((shared / len(query | w.words), w))
        scored.sort(key=lambda s: (-s[0], s[1].path, s[1].start))
        chosen: list[str] = []
        taken: list[Window] = []
        used = 0
        for _score, w in scored:
            if len(chosen) == MAX_WINDOWS:
                break
            if any(t.path == w.path and abs(t.start - w.start) < WINDOW_LINES for t in taken):
                continue
            if used + w.tokens > CONTEXT_TOKENS:
                continue
            chosen.append(w.block)
            taken.append(w)
            used += w.tokens
        enc = self.tokenizer(prefix, add_special_tokens=False, return_offsets_mapping=True)
        if len(enc.input_ids) > PREFIX_TOKENS:
            prefix = prefix[enc.offset_mapping[-PREFIX_TOKENS][0] :]
        return "".join(reversed(chosen)) + f"{FILE_SEP}{pos.relative}\n{prefix}", len(chosen)

    def complete(self, pos: Position) -> tuple[Answer, Answer]:
        """The answer as written and the healed one. Where the prompt ends in no whitespace
        (mid-line after a non-blank) the two prompts are the same, and so is the greedy answer:
        it is generated once and its time given to both."""
        started = time.perf_counter()
        prompt, windows = self.prompt(pos)
        retrieval = time.perf_counter() - started
        kept = prompt.rstrip()
        out: list[Answer] = []
        for healed_prompt, forced in ((prompt, ""), (kept, prompt[len(kept) :])):
            if forced or not out:
                began = time.perf_counter()
                text, n_prompt, n_new = self.generate(healed_prompt, forced)
                out.append(
                    Answer(
                        text=text,
                        latency_ms=(retrieval + time.perf_counter() - began) * 1000,
                        prompt_tokens=n_prompt,
                        new_tokens=n_new,
                        windows=windows,
                        forced=forced,
                    )
                )
            else:
                out.append(out[0])
        return out[0], out[1]

    def _consistent(self, pending: str) -> Any:
        """Ids of the tokens whose text starts `pending` or starts with it (None: none)."""
        if pending not in self._allowed:
            ids = [
                i
                for i, piece in enumerate(self._pieces)
                if piece and (piece.startswith(pending) or pending.startswith(piece))
            ]
            self._allowed[pending] = self._torch.tensor(ids) if ids else None
        return self._allowed[pending]

    def generate(self, prompt: str, forced: str) -> tuple[str, int, int]:
        """Greedy decoding, forced to spell `forced` first, to the first newline after it.
        Returns the text after `forced` up to that newline, and the prompt's and the
        generation's token counts."""
        torch = self._torch
        # As the server decodes: one thread fewer for each core that others keep busy.
        torch.set_num_threads(threads_for(self._cores, others_busy()) if self._cores > 1 else 1)
        ids = self.tokenizer(prompt, add_special_tokens=False).input_ids
        generated: list[int] = []
        pending, text = forced, ""
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=1)
            past, logits = out.past_key_values, out.logits[0, -1]
            while len(generated) < self.max_new_tokens:
                allowed = self._consistent(pending) if pending else None
                if allowed is not None:
                    token = int(allowed[torch.argmax(logits[allowed])])
                    piece = self._pieces[token]
                    pending = pending[len(piece) :] if pending.startswith(piece) else ""
                else:
                    pending = ""
                    token = int(torch.argmax(logits))
                if token in self._stop:
                    break
                generated.append(token)
                text = self.tokenizer.decode(generated, skip_special_tokens=False)
                if not pending and "\n" in text[len(forced) :]:
                    break
                out = self.model(
                    input_ids=torch.tensor([[token]]),
                    past_key_values=past,
                    use_cache=True,
                    logits_to_keep=1,
                )
                past, logits = out.past_key_values, out.logits[0, -1]
        answer = text[len(forced) :] if text.startswith(forced) else ""
        return answer.split("\n")[0], len(ids), len(generated)
