"""What hover and code actions ask of the model, with and without a chat template."""

from __future__ import annotations

from collections.abc import Sequence

from inference.tasks import (
    contracts_task,
    explain_task,
    first_aspect,
    refactor_task,
    render_task,
    reply_code,
)


class Chat:
    """A model with a chat template of its own (a recognisable one)."""

    def chat_prompt(self, messages: Sequence[tuple[str, str]], reply_start: str = "") -> str:
        turns = "".join(f"<{role}>{text}</{role}>" for role, text in messages)
        return f"{turns}<assistant>{reply_start}"


class Plain:
    def chat_prompt(self, messages: Sequence[tuple[str, str]], reply_start: str = "") -> None:
        return None


CODE = "def clamp(v, lo, hi):\n    return max(lo, min(v, hi))\n"


def test_a_chat_model_gets_its_template_and_the_start_of_its_answer() -> None:
    rendered = render_task(Chat(), refactor_task("python", CODE, comment="#"))
    assert rendered.chat and rendered.prompt.startswith("<system>")
    assert "```python\ndef clamp(v, lo, hi):" in rendered.prompt
    assert rendered.prompt.endswith("<assistant>```python\n")
    assert "```" in rendered.stop_texts


def test_a_model_without_a_template_continues_plain_code() -> None:
    rendered = render_task(Plain(), explain_task("ada", "X : Integer;", comment="--"))
    assert not rendered.chat
    assert rendered.prompt == "X : Integer;\n\n-- In short, this code"


def test_contracts_start_inside_the_declaration_with_a_boolean_aspect() -> None:
    task = contracts_task(
        unit="Climb",
        declaration="procedure Climb (C : in out Feet);",
        indent="     ",
        present=(),
        surroundings="package Altitude with SPARK_Mode is",
    )
    assert task.reply_start.endswith("procedure Climb (C : in out Feet)\n     with Pre => ")
    assert first_aspect(task) == "Pre"
    held = contracts_task(
        unit="Clamp",
        declaration="function Clamp (F : Feet) return Feet\n     with Pre => F > 0;",
        indent="     ",
        present=("Pre => F > 0",),
        surroundings="",
    )
    assert held.reply_start.endswith("with Pre => F > 0,\n          Post => ")
    assert first_aspect(held) == "Post"


def test_reply_code_takes_the_code_up_to_the_closing_fence() -> None:
    assert reply_code("x = 1\n```\nThis is better because") == "x = 1\n"
    assert reply_code("```python\nx = 1\n```") == "x = 1\n"
    assert reply_code("   \n") == ""
