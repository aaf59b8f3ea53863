"""A model's chat template renders within bounds: a template that loops for ever or writes too much
is stopped by its own render with a message that says what to do, and a plain one renders the
text transformers' `apply_chat_template` renders."""

from __future__ import annotations

from typing import Any

import pytest

from airgap_lsp.errors import AirgapError
from inference.engine import Tokenized

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Templates of the kind transformers' documentation shows: namespace, loop variables, tojson,
# whitespace control, special tokens, raise_exception on what they refuse.
RICH = """{{- bos_token }}
{%- set ns = namespace(system='') %}
{%- for m in messages if m.role == 'system' %}{% set ns.system = m.content|trim %}{% endfor %}
{%- if ns.system %}[SYS]{{ ns.system }}[/SYS]{% endif %}
{%- for m in messages %}
  {%- if m.role not in ['system', 'user', 'assistant'] %}{{ raise_exception('bad role') }}
  {%- endif %}
  {%- if m.role != 'system' %}
{{ loop.index }}/{{ loop.length }} {{ m.role|upper }}: {{ m.content }}{{ eos_token if loop.last }}
  {%- endif %}
{%- endfor %}
{{ {'roles': messages|map(attribute='role')|list, 'n': messages|length}|tojson }}
{%- if add_generation_prompt %}{{ '\nASSISTANT:' }}{% endif %}"""
NESTED_RANGES = (
    "{% for i in range(4000) %}{% for j in range(4000) %}{% endfor %}{% endfor %}" + CHATML
)
WRITES_TEN_MB = "{% for i in range(99999) %}{{ 'x' * 100 }}{% endfor %}" + CHATML
MAKES_TWO_MB = "{% set s = 'x' * 2000000 %}{{ s|length }}" + CHATML
MESSAGES = [("system", " Be brief. "), ("user", "Explain `Clamp`.")]


class Templated(Tokenized):
    """The chat side of an engine: a tokenizer with the chat template under test."""

    def __init__(self, template: str) -> None:
        from tokenizers import Tokenizer, models
        from transformers import PreTrainedTokenizerFast

        vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
        self._tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
            bos_token="<s>",
            eos_token="</s>",
            unk_token="<unk>",
        )
        self._tokenizer.chat_template = template

    def as_transformers_renders_it(self) -> Any:
        conversation = [{"role": role, "content": content} for role, content in MESSAGES]
        return self._tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True
        )


@pytest.mark.parametrize("template", [CHATML, RICH], ids=["chatml", "rich"])
def test_a_plain_chat_template_renders_as_transformers_renders_it(template: str) -> None:
    model = Templated(template)

    prompt = model.chat_prompt(MESSAGES, reply_start="```ada\n")

    assert prompt == model.as_transformers_renders_it() + "```ada\n"


def test_nested_range_loops_are_stopped_at_the_step_bound() -> None:
    # 16 million loop steps: seconds of the server's time before, one million steps now.
    with pytest.raises(AirgapError, match="too expensive: rendering one prompt went past") as e:
        Templated(NESTED_RANGES).chat_prompt(MESSAGES)

    assert "airgap-lsp model import" in str(e.value)


def test_a_chat_template_that_writes_ten_megabytes_is_stopped_at_the_size_bound() -> None:
    with pytest.raises(AirgapError, match="wrote more than 1,000,000 characters") as e:
        Templated(WRITES_TEN_MB).chat_prompt(MESSAGES)

    assert "airgap-lsp model import" in str(e.value)


def test_a_value_larger_than_the_bound_is_stopped_inside_the_render() -> None:
    with pytest.raises(AirgapError, match="made a value larger than 1,000,000 characters"):
        Templated(MAKES_TWO_MB).chat_prompt(MESSAGES)


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x'|center(10**9) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{% set s = 'x' * 999999 %}{{ s.replace('', s) }}",
        "{% set s = 'x' * 999999 %}{{ range(999)|map('string')|join(s) }}",
        "{% set s = 'x' * 999999 %}{{ s.join(range(999)|map('string')) }}",
        "{% set s = 'x' * 999999 %}{{ s ~ s ~ s }}",
        "{{ (range(99999)|list)|tojson(indent=999999) }}",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        # Lists of lists: a thousand items a level to make, a billion to write out.
        "{% set x = [0] * 1000 %}{% set y = [x] * 1000 %}{% set z = [y] * 1000 %}{{ z }}",
        "{% set x = [0] * 100 %}{% set y = [x] * 100 %}{% set z = [y] * 100 %}"
        "{% set w = [z] * 100 %}{{ w|join }}",
    ],
    ids=[
        "width",
        "printf",
        "format",
        "replace",
        "join",
        "str.join",
        "concat",
        "tojson",
        "doubling",
        "nested-lists",
        "nested-join",
    ],
)
def test_one_operation_that_would_make_gigabytes_is_refused_before_it_runs(
    template: str,
) -> None:
    with pytest.raises(AirgapError, match="larger than 1,000,000 characters or items"):
        Templated(template).chat_prompt(MESSAGES)


@pytest.mark.parametrize(
    "template",
    [
        "{% set L = range(99999)|list %}{% for a in L %}{% for b in L %}{% endfor %}{% endfor %}",
        "{% set L = range(99999)|list %}{% for i in L %}{% if -1 in L %}{% endif %}{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(40) }}",
        "{% set s = 'x' * 999999 %}{% set b %}{% for i in range(99999) %}{{ s }}{% endfor %}"
        "{% endset %}",
    ],
    ids=["lists", "membership", "macros", "set-block"],
)
def test_loops_the_sandbox_hooks_do_not_see_are_counted(template: str) -> None:
    with pytest.raises(AirgapError, match="went past 1,000,000 steps"):
        Templated(template).chat_prompt(MESSAGES)


def test_a_failing_template_is_an_error_that_says_what_to_do() -> None:
    with pytest.raises(AirgapError, match=r"failed \(TemplateError: bad role\)") as e:
        Templated(RICH).chat_prompt([("tool", "{}")])

    assert "airgap-lsp model import" in str(e.value)
