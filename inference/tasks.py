"""What the model is asked for a hover or a code action: explain, refactor, write contracts.

An instruction-tuned model gets a conversation in its own chat template (a file of the locked
checkpoint), with the start of its answer written for it so that the reply has the shape the edit
needs. A model without a template gets a plain code prompt that it continues instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

SYSTEM = (
    "You are a careful senior engineer reviewing safety-critical code in Ada, SPARK, VHDL, "
    "Verilog, C, C++, Python and similar languages. Be brief and exact."
)
FENCE = "```"
# One worked example: small models copy its shape (Global data flow, a Pre, a Post with 'Old).
CONTRACT_EXAMPLE = """procedure Increment (Counter : in out Natural)
  with Global => null,
       Pre    => Counter < Natural'Last,
       Post   => Counter = Counter'Old + 1;"""


class ChatModel(Protocol):
    def chat_prompt(self, messages: list[tuple[str, str]], reply_start: str = "") -> str | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    kind: str  # hover, explain, refactor, spark_contracts
    messages: tuple[tuple[str, str], ...]  # (role, content) for a chat model
    reply_start: str  # the start of the assistant's answer, written for it
    plain: str  # the whole prompt for a model without a chat template
    stop_texts: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedTask:
    prompt: str
    chat: bool  # whether the model's chat template was used
    stop_texts: tuple[str, ...]


def render_task(model: ChatModel, task: Task) -> RenderedTask:
    chat = model.chat_prompt(list(task.messages), task.reply_start)
    if chat is None:
        return RenderedTask(prompt=task.plain, chat=False, stop_texts=task.stop_texts)
    return RenderedTask(prompt=chat, chat=True, stop_texts=(*task.stop_texts, FENCE))


def _fenced(language: str, code: str) -> str:
    return f"{FENCE}{language}\n{code.rstrip()}\n{FENCE}"


def explain_task(
    language: str, code: str, *, comment: str, subject: str = "", context: str = ""
) -> Task:
    """A short explanation of `code` (of `subject` in it, if given) for a reviewer."""
    what = f"`{subject}`" if subject else "this code"
    ask = (
        f"Explain what {what} does and what a caller must know, in at most three sentences. "
        "Do not repeat the code."
    )
    body = f"{context.rstrip()}\n\n" if context.strip() else ""
    plain_comment = comment or "#"
    return Task(
        kind="explain",
        messages=(("system", SYSTEM), ("user", f"{body}{_fenced(language, code)}\n\n{ask}")),
        reply_start="",
        plain=f"{code.rstrip()}\n\n{plain_comment} In short, {what}",
        stop_texts=("\n\n\n",) if not comment else ("\n\n",),
    )


def refactor_task(language: str, code: str, *, comment: str) -> Task:
    """A clearer version of `code` with the same behaviour, as code only."""
    ask = (
        f"Rewrite this {language} code so that it is clearer and simpler, with exactly the same "
        "behaviour and the same names for everything used outside it. Reply with the complete "
        "new code only."
    )
    plain_comment = comment or "#"
    return Task(
        kind="refactor",
        messages=(("system", SYSTEM), ("user", f"{_fenced(language, code)}\n\n{ask}")),
        reply_start=f"{FENCE}{language}\n",
        plain=(
            f"{plain_comment} Before:\n{code.rstrip()}\n\n"
            f"{plain_comment} After, clearer, same behaviour:\n"
        ),
        stop_texts=(FENCE, f"\n{plain_comment} Before:"),
    )


def contracts_task(
    *, unit: str, declaration: str, indent: str, present: tuple[str, ...], surroundings: str
) -> Task:
    """The SPARK aspects `unit` lacks. The answer starts inside the declaration's aspect list,
    with the first missing aspect's name written: the model writes its expression, then any
    further aspects. `first_aspect(task)` tells which name the reply continues."""
    missing = [a for a in ("Global", "Pre", "Post") if not _has(present, a)]
    ask = (
        f"Write the SPARK contract of `{unit}`: the {', '.join(missing)} aspects, each "
        "`Name => expression`, using only names visible at the declaration. For example:\n"
        f"{_fenced('ada', CONTRACT_EXAMPLE)}"
    )
    head = declaration.rstrip().rstrip(";").rstrip()
    start = f"{head},\n{indent}     " if present else f"{head}\n{indent}with "
    # The model starts with a Pre (or Post): a plain Boolean expression is what it writes best.
    first = next((a for a in ("Pre", "Post") if a in missing), missing[0])
    start += f"{first} => "
    return Task(
        kind="spark_contracts",
        messages=(("system", SYSTEM), ("user", f"{_fenced('ada', surroundings)}\n\n{ask}")),
        reply_start=f"{FENCE}ada\n{start}",
        plain=f"{surroundings.rstrip()}\n\n{start}",
        stop_texts=(";", " is\n", "\nis\n"),
    )


def first_aspect(task: Task) -> str:
    """The aspect whose expression a contracts reply starts with."""
    return task.reply_start.rsplit("=>", 1)[0].split()[-1]


def _has(present: tuple[str, ...], aspect: str) -> bool:
    return any(a.partition("=>")[0].strip().lower() == aspect.lower() for a in present)


def reply_code(text: str) -> str:
    """The code of a reply: up to a closing fence, without a stray opening one."""
    text = text.split(FENCE, 1)[0] if not text.lstrip().startswith(FENCE) else text
    if text.lstrip().startswith(FENCE):
        body = text.lstrip()[len(FENCE) :]
        body = body.split("\n", 1)[1] if "\n" in body else ""
        text = body.split(FENCE, 1)[0]
    return text.rstrip() + "\n" if text.strip() else ""
