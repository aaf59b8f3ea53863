"""A model's chat template, rendered in a Jinja sandbox that bounds its work and its output.

The template is a file of the checkpoint, so a model brings code of its own. Jinja's sandbox keeps
it from reaching out of the render, not from running for hours (nested `range` loops) or writing
gigabytes. Here each loop step, call, attribute or item read, filter, test, operator and
comparison costs steps, more for the larger values it reads or makes; the render stops past
`max_steps`, once its output or any value it makes is longer than `max_chars`, or when an argument
asks for more than that (a width, a count, an exponent). A runaway render so ends by itself and
frees its thread. The options, globals and filters are those of transformers' sandbox, so a sane
template renders the text `apply_chat_template` would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, wraps
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from inference.errors import ChatTemplateError

MAX_STEPS = 1_000_000  # a sane template renders a conversation in a few thousand
MAX_CHARS = 1_000_000  # the longest prompt, or value inside the render, a template may make
MAX_TEMPLATE_CHARS = 256 * 1024  # the largest template compiled (the biggest known are ~20 KB)
MAX_INT_BITS = 10_000  # the largest integer a product or a power may make
CHARS_PER_STEP = 16  # reading, making or writing text costs a step per 16 characters
CALL_STEPS = 10  # a call or a filter: Jinja's machinery around it costs about ten loop steps
FIX = (
    "Import a model whose chat template renders a conversation plainly (`airgap-lsp model "
    "import`) and name it in the settings."
)
# printf-style fields (`%9d`, `%.3f`) and str.format fields (`{:>9}`), whose numbers are widths
FIELDS = re.compile(r"%[#0 +-]*[\d.]*|\{[^{}]*\}")
LOOP, CONCAT, READ, WRITE = "bounded_loop", "bounded_concat", "bounded_read", "bounded_write"


class TemplateTooExpensive(ChatTemplateError):
    """The render went past one of its bounds and was stopped."""


@dataclass(slots=True)
class _Budget:
    max_steps: int = MAX_STEPS
    max_chars: int = MAX_CHARS
    steps: int = 0


# The render in progress on this thread (none while a template compiles: Jinja folds constant
# expressions then, which only the size bounds apply to).
_budget: ContextVar[_Budget | None] = ContextVar("chat_template_budget", default=None)


def render_chat(
    template: str,
    variables: Mapping[str, Any],
    *,
    max_steps: int = MAX_STEPS,
    max_chars: int = MAX_CHARS,
) -> str:
    """The template's text for `variables` (messages, add_generation_prompt, special tokens).

    Raises ChatTemplateError, with what to do, for a template that fails, and its subclass
    TemplateTooExpensive for one stopped at a bound.
    """
    budget = _Budget(max_steps=max_steps, max_chars=max_chars)
    token = _budget.set(budget)
    try:
        if len(template) > MAX_TEMPLATE_CHARS:
            raise TemplateTooExpensive(
                f"The model's chat template is {len(template):,} characters long, over "
                f"{MAX_TEMPLATE_CHARS:,}. {FIX}"
            )
        out: list[str] = []
        written = 0
        for chunk in _compiled(template).generate(**variables):
            written += len(chunk)
            if written > max_chars:
                raise TemplateTooExpensive(
                    f"The model's chat template wrote more than {max_chars:,} characters for "
                    f"one prompt and was stopped. {FIX}"
                )
            _spend(1 + len(chunk) // CHARS_PER_STEP)
            out.append(chunk)
        return "".join(out)
    except ChatTemplateError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise TemplateTooExpensive(
            f"The model's chat template is too expensive to render ({type(exc).__name__}) and "
            f"was stopped. {FIX}"
        ) from exc
    except TemplateSyntaxError as exc:
        raise ChatTemplateError(
            f"The model's chat template does not parse (line {exc.lineno}: {_short(exc)}). {FIX}"
        ) from exc
    except Exception as exc:  # the template's own code failed: TypeError, its raise_exception
        raise ChatTemplateError(
            f"The model's chat template failed ({type(exc).__name__}: {_short(exc)}). {FIX}"
        ) from exc
    finally:
        _budget.reset(token)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


# -- the bounds --------------------------------------------------------------------------------
def _limits() -> _Budget:
    return _budget.get() or _Budget()


def _spend(steps: int) -> None:
    budget = _budget.get()
    if budget is None:
        return
    budget.steps += steps
    if budget.steps > budget.max_steps:
        raise TemplateTooExpensive(
            f"The model's chat template is too expensive: rendering one prompt went past "
            f"{budget.max_steps:,} steps (loops within loops?) and was stopped. {FIX}"
        )


def _size(value: Any) -> int:
    """What reading `value` costs, in steps."""
    if isinstance(value, str | bytes):
        return len(value) // CHARS_PER_STEP
    if isinstance(value, list | tuple | dict | set | frozenset | range):
        return len(value)
    return 0


def _too_large(what: str) -> TemplateTooExpensive:
    return TemplateTooExpensive(
        f"The model's chat template made {what} larger than {_limits().max_chars:,} characters "
        f"or items and was stopped. {FIX}"
    )


def _made(value: Any) -> Any:
    """A value an operation made: its size bounded and charged; an iterator counted as read."""
    if isinstance(value, Iterator):
        return _Counted(value)
    sized = isinstance(value, str | bytes | list | tuple | dict | set | frozenset)
    if sized and len(value) > _limits().max_chars:
        raise _too_large("a value")
    _spend(1 + _size(value))
    return value


def _read(value: Any) -> Any:
    """A comparison's operand: `x in items` or `a == b` reads all of it."""
    _spend(1 + _size(value))
    return value


def _write(value: Any) -> str:
    """What `{{ ... }}` writes, as Jinja would write it; inside a macro, a `set` block or a
    `call` block too, where it is kept until the block ends."""
    _check_total(_length(value))  # before str() makes it
    text = str(value)
    if len(text) > _limits().max_chars:
        raise _too_large("an output")
    _spend(1 + len(text) // CHARS_PER_STEP)
    return text


def _concat(parts: list[Any]) -> str:
    """`a ~ b ~ c`, its length known before it is made."""
    _check_total(sum(map(_length, parts)))
    texts = [str(part) for part in parts]
    _spend(1 + len(texts))
    _check_total(sum(len(t) for t in texts))
    return "".join(texts)


def _check_total(length: int) -> None:
    if length > _limits().max_chars:
        raise _too_large("a value")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _length(value: Any) -> int:
    """How much a value writes out, at least: its items, and those of the containers it holds,
    each time it holds them (`[[x] * 1000] * 1000` is short to make and a million items to
    write). Past the bound, the bound and one."""
    cap = _limits().max_chars
    sizes: dict[int, int] = {}

    def size(v: Any, depth: int) -> int:
        if isinstance(v, str | bytes):
            return len(v)
        if not isinstance(v, list | tuple | dict | set | frozenset):
            return 0
        if id(v) in sizes:
            return sizes[id(v)]
        if depth > 64:
            return cap + 1
        total = len(v)
        for item in v.items() if isinstance(v, dict) else v:
            total += size(item, depth + 1)
            if total > cap:
                break
        sizes[id(v)] = min(total, cap + 1)
        return sizes[id(v)]

    return size(value, 0)


def _check_counts(values: Iterable[Any]) -> None:
    """An integer argument is a width, a count or a repetition: none may exceed the bound."""
    cap = _limits().max_chars
    for value in values:
        if _is_int(value) and abs(value) > cap:
            raise _too_large("a width or count")


def _check_format(text: Any, args: Iterable[Any]) -> None:
    """A format string's widths and precisions (`%999999999d`, `{:>999999999}`), and its fields
    times the longest value one of them may repeat."""
    if not isinstance(text, str | bytes):
        return
    cap = _limits().max_chars
    fields = FIELDS.findall(text if isinstance(text, str) else text.decode("latin-1"))
    for field in fields:
        for number in re.findall(r"\d+", field):
            if len(number) > 9 or int(number) > cap:
                raise _too_large("a formatted field")
    values = [v for a in args for v in (a.values() if isinstance(a, dict) else (a,))]
    _spend(len(values))
    _check_total(len(text) + len(fields) * max(map(_length, values), default=0))


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """What an operator would make, before it makes it."""
    ints = _is_int(left) and _is_int(right)
    if operator == "**" and ints and right > 0:
        _check_bits(max(abs(left).bit_length() - 1, 0) * right)
    if operator == "*":
        if ints:
            _check_bits(left.bit_length() + right.bit_length())
        for count, seq in ((left, right), (right, left)):
            if _is_int(count) and isinstance(seq, str | bytes | list | tuple):
                _check_total(count * _length(seq))
    if operator == "+":
        _check_total(_length(left) + _length(right))
    if operator == "%":
        values = right if isinstance(right, tuple) else (right,)
        _check_counts(values)
        _check_format(left, values)


def _check_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise _too_large("a number")


def _all(items: Any) -> list[Any]:
    """An iterable argument, read once (and counted) so that its size is known beforehand."""
    listed = list(items)
    _spend(len(listed))
    return listed


def _joined(sep: Any, items: list[Any]) -> None:
    _check_total(_length(sep) * max(len(items) - 1, 0) + sum(map(_length, items)))


def _method_args(
    receiver: str | bytes, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """A text method's arguments, checked against what the method would make."""
    if name in ("format", "format_map"):
        _check_format(receiver, (*args, kwargs))
    elif name == "join" and args:
        args = (_all(args[0]), *args[1:])
        _joined(receiver, args[0])
    elif name == "replace" and len(args) >= 2:
        _check_replace(receiver, args[0], args[1])
    elif name == "expandtabs":
        tab = args[0] if args and _is_int(args[0]) else 8
        tabs = receiver.count("\t") if isinstance(receiver, str) else receiver.count(b"\t")
        _check_total(len(receiver) + tabs * tab)
    elif name == "translate" and args and isinstance(args[0], dict):
        _check_total(len(receiver) * max(map(_length, args[0].values()), default=1))
    return args


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str | bytes) and isinstance(old, str | bytes):
        hits = len(text) + 1 if not old else len(text) // len(old)
        _check_total(len(text) + hits * _length(new))


def _filter_args(name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    """A filter's arguments (its value first), checked against what it would make; an iterable
    it joins or sums is read beforehand. Edits `args` in place."""
    if not args:
        return
    value = args[0]
    if name == "format":
        _check_format(value, [*args[1:], kwargs])
    elif name == "replace" and len(args) >= 3:
        _check_replace(str(value), args[1], args[2])
    elif name == "join":
        args[0] = _all(value)
        _joined(args[1] if len(args) > 1 else kwargs.get("d", ""), args[0])
    elif name == "indent":
        width = args[1] if len(args) > 1 else kwargs.get("width", 4)
        lines = str(value).count("\n") + 1
        _check_total(len(str(value)) + lines * (width if _is_int(width) else _length(width)))
    elif name == "wordwrap":
        width = args[1] if len(args) > 1 else kwargs.get("width", 79)
        wrap = args[3] if len(args) > 3 else kwargs.get("wrapstring")
        lines = len(str(value)) // max(width if _is_int(width) else 1, 1) + 1
        _check_total(len(str(value)) + lines * max(_length(wrap), 1))
    elif name == "sum":
        args[0] = _all(value)
        start = args[3] if len(args) > 3 else kwargs.get("start", 0)
        if isinstance(start, list | tuple):  # each addition copies the sum so far
            total = len(start) + sum(map(_length, args[0]))
            _check_total(total)
            _spend(len(args[0]) * total // 2)


class _Counted:
    """A loop's items, each one a step as it is read."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = items

    def __len__(self) -> int:  # `loop.length` and `loop.last` without reading ahead
        return len(self._items)  # type: ignore[arg-type]  # TypeError: Jinja reads ahead

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            _spend(1)
            yield item


def _bounded_filter(func: Callable[..., Any], steps: int, name: str = "") -> Callable[..., Any]:
    """A filter (`name`) or test that charges what it reads and makes, and whose arguments
    after the value must not ask for more than the bounds allow (`center(10**9)`, `join` of a
    million copies of a long text)."""
    first = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # context, env

    @wraps(func)  # keeps `jinja_pass_arg`: Jinja still passes what the filter asks for
    def bounded(*args: Any, **kwargs: Any) -> Any:
        passed, rest = args[:first], list(args[first:])
        _check_counts((*rest[1:], *kwargs.values()))
        _filter_args(name, rest, kwargs)
        _spend(steps + sum(_size(a) for a in rest))
        return _made(func(*passed, *rest, **kwargs))

    return bounded


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """transformers' `tojson` (no HTML escapes), written piece by piece within the bound."""
    encoder = json.JSONEncoder(
        ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )
    out: list[str] = []
    written = 0
    for piece in encoder.iterencode(x):
        written += len(piece)
        _check_total(written)
        out.append(piece)
    _spend(written // CHARS_PER_STEP)
    return "".join(out)


# -- the environment ---------------------------------------------------------------------------
class _Generation(Extension):
    """`{% generation %}...{% endgeneration %}`, which transformers' templates may mark the
    assistant's turns with: only its body is rendered here."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


class _Dict:
    """`dict(...)` and `dict.fromkeys(...)`, without handing the template the type itself."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


class _Namespace(Namespace):
    """Jinja's `namespace`, refusing attributes that start with an underscore."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # type: ignore[misc]  # Jinja's signature
        self, rest = args[0], args[1:]  # so that `namespace(self=...)` works
        attrs = dict(*rest, **kwargs)
        for name in attrs:
            _check_name(name)
        Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _check_name(name)
        Namespace.__setitem__(self, name, value)


def _check_name(name: Any) -> None:
    if isinstance(name, str) and name.startswith("_"):
        raise SecurityError(f"a chat template may not set {name!r} on a namespace")


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """transformers' chat-template sandbox, whose hooks also count and bound."""

    intercepted_binops = frozenset(("+", "*", "**", "%"))  # also kept from constant folding

    def __init__(self) -> None:
        super().__init__(
            trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, loopcontrols]
        )
        self.filters["tojson"] = _tojson
        filters: dict[str, Any] = self.filters
        tests: dict[str, Any] = self.tests
        self.filters = {n: _bounded_filter(f, CALL_STEPS, n) for n, f in filters.items()}
        self.tests = {n: _bounded_filter(f, 1) for n, f in tests.items()}
        self.filters.update({LOOP: _Counted, CONCAT: _concat, READ: _read, WRITE: _write})
        self.globals.update(
            raise_exception=_raise_exception,
            strftime_now=_strftime_now,
            dict=_Dict(),
            namespace=_Namespace,
        )

    def call(
        __self,  # noqa: N805 - as Jinja names it: a keyword argument may be called `self`
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _check_counts((*args, *kwargs.values()))
        method = getattr(__obj, "__wrapped__", __obj)  # str.format comes wrapped by the sandbox
        receiver = getattr(method, "__self__", None)  # a method reads its object
        if isinstance(receiver, str | bytes):
            args = _method_args(receiver, getattr(method, "__name__", ""), args, kwargs)
        cost = _size(receiver) + sum(_size(a) for a in (*args, *kwargs.values()))
        _spend(CALL_STEPS + cost)
        return _made(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _spend(1)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _spend(1)
        value = super().getitem(obj, argument)
        return _made(value) if isinstance(argument, slice) else value  # a slice is a copy

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _spend(1 + _size(left) + _size(right))
        _check_binop(operator, left, right)
        return _made(super().call_binop(context, operator, left, right))


class _Metered(NodeTransformer):
    """What the sandbox's hooks never see, routed through filters that count: each loop's
    items, each `~` concatenation, each comparison's operands, each `{{ ... }}` written."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _through(LOOP, node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _through(CONCAT, nodes.List(node.nodes, lineno=node.lineno))

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [
            n if isinstance(n, nodes.TemplateData) else _through(WRITE, n) for n in node.nodes
        ]
        return node

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = _through(READ, node.expr)
        for operand in node.ops:
            operand.expr = _through(READ, operand.expr)
        return node


def _through(name: str, node: nodes.Node) -> nodes.Expr:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


_environment = _BoundedSandbox()


@lru_cache(maxsize=8)
def _compiled(source: str) -> Any:
    tree = _Metered().visit(_environment.parse(source))
    tree.set_environment(_environment)
    return _environment.from_string(tree)
