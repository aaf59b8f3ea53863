"""Settings: one typed dataclass, filled from `initializationOptions` and re-applied on
`workspace/didChangeConfiguration`. Invalid settings are refused whole, naming every problem.

A setting the editor removed goes back to where it came from. The settings in force are three
layers: the defaults; over them what `initializationOptions` gave (an editor never sends those
again, so no later message can take them back); over both, the last valid change, which says
everything it sets. A key that a change leaves out therefore takes the value
`initializationOptions` gave it, or else its default, never the value an earlier change gave
it. A change of `null`, or of `{"airgap": null}` (what a client that expects the server to pull
sends), says nothing, and the settings in force stay.
The administrator's policy is applied over all of it each time (`Policy.apply`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from airgap_lsp.errors import AirgapError
from airgap_lsp.paths import DEFAULT_MODEL
from inference.engine import DEVICES, DTYPES

MULTILINE = ("auto", "always", "never")


class SettingsError(AirgapError):
    """The settings sent by the editor are not valid; the last good ones stay in force."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    model: str = DEFAULT_MODEL  # NAME or NAME@VERSION in the model store
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    # A team's inference server (`backend` section): its OpenAI-compatible API (…/v1), at an
    # address the administrator's policy allow-lists. Empty: the model runs on this machine.
    backend_url: str = ""
    multiline: str = "auto"  # auto: a block on an empty line, the rest of the line elsewhere
    max_tokens_line: int = 48
    max_tokens_block: int = 160
    max_prefix_chars: int = 3000
    max_suffix_chars: int = 1000
    audit_path: str = ""  # empty: <AIRGAP_LSP_HOME>/audit/audit.jsonl
    # Context from other files (`context` section). Off, the model sees the current file only:
    # the switch that measures what cross-file context is worth.
    context_cross_file: bool = True
    context_max_tokens: int = 1024  # measured with the model's own tokenizer
    # The context chosen for a place is kept while the cursor stays within this many lines of it
    # and its best snippet is still the best (a new line keeps the prompt's start, and its
    # key/values, instead of a cold read); 0: chosen afresh at every request.
    context_keep_lines: int = 8
    context_exclude: tuple[str, ...] = ()  # gitignore-style patterns never read nor sent
    # The policy's patterns (no setting names them): the user's only add to them and to the
    # built-in secret list, never take a path back from either (context.index.Exclusions).
    policy_exclude: tuple[str, ...] = ()
    knowledge_base: tuple[str, ...] = ()  # folders of Markdown / reST / text passages
    # Hover (`hover` section): what the index knows at once, then the model's explanation.
    hover_explain: bool = True
    hover_max_tokens: int = 64
    hover_time_budget_ms: int = 8000  # the explanation stops here, cut where it got to
    # Code actions (`codeActions` section): the most tokens a rewrite may have.
    code_action_max_tokens: int = 400
    # Speed (`decoding`, and `debounceMs`): a completion request that follows the one before it
    # for the same document by less than this (a burst of typing) waits this long for the next
    # keystroke before the model starts (a newer request replaces it); one after a pause starts
    # at once.
    debounce_ms: int = 60
    # Prompt-lookup decoding: the most tokens drafted from the context at a step (0: off). The
    # model checks each draft, so the text is the same as without (but for a near tie, which a
    # batched check can tip; the audit line records what was drafted from, for replay).
    prompt_lookup: int = 8
    # CPU threads to decode with; 0: one per core, less one for each core other processes keep
    # busy (a build beside the editor). Recorded in each audit line, for replay.
    threads: int = 0


_WIRE = {
    "model": "model",
    "device": "device",
    "dtype": "dtype",
    "backend.url": "backend_url",
    "multiline": "multiline",
    "maxTokensLine": "max_tokens_line",
    "maxTokensBlock": "max_tokens_block",
    "maxPrefixChars": "max_prefix_chars",
    "maxSuffixChars": "max_suffix_chars",
    "auditPath": "audit_path",
    "context.crossFile": "context_cross_file",
    "context.maxTokens": "context_max_tokens",
    "context.keepLines": "context_keep_lines",
    "context.exclude": "context_exclude",
    "context.knowledgeBase": "knowledge_base",
    "hover.explain": "hover_explain",
    "hover.maxTokens": "hover_max_tokens",
    "hover.timeBudgetMs": "hover_time_budget_ms",
    "codeActions.maxTokens": "code_action_max_tokens",
    "debounceMs": "debounce_ms",
    "decoding.promptLookup": "prompt_lookup",
    "decoding.threads": "threads",
}


def setting_defaults() -> dict[str, object]:
    """Every setting an editor may send, by its wire name (`context.maxTokens` is sent nested),
    with its default as JSON carries it. A client that sends its settings on every change must
    send each of them (editors/README.md)."""
    given = Settings()
    return {
        wire: list(value) if isinstance(value := getattr(given, attr), tuple) else value
        for wire, attr in _WIRE.items()
    }


_SECTIONS = ("context", "hover", "codeActions", "backend", "decoding")
_CHOICES = {"device": DEVICES, "dtype": DTYPES, "multiline": MULTILINE}
_RANGES = {
    "max_tokens_line": (1, 512),
    "max_tokens_block": (1, 2048),
    "max_prefix_chars": (0, 200_000),
    "max_suffix_chars": (0, 200_000),
    "context_max_tokens": (0, 32_000),
    "context_keep_lines": (0, 10_000),
    "hover_max_tokens": (1, 1024),
    "hover_time_budget_ms": (100, 120_000),
    "code_action_max_tokens": (16, 4096),
    "debounce_ms": (0, 2000),
    "prompt_lookup": (0, 32),
    "threads": (0, 256),
}


# Settings that name paths the server writes or reads: from a TCP client, refused unless the
# policy allows them (`[network] tcp_path_settings`), since any local process can connect.
PATH_SETTINGS = ("audit_path", "knowledge_base")


def says_nothing(raw: Any) -> bool:
    """Whether a settings change is empty of settings: `null`, or `{"airgap": null}`."""
    return raw is None or (
        isinstance(raw, dict) and raw.keys() == {"airgap"} and raw["airgap"] is None
    )


def parse_settings(
    raw: Any,
    base: Settings | None = None,
    *,
    in_force: Settings | None = None,
    paths_allowed: bool = True,
) -> Settings:
    """Settings from the editor's JSON (camelCase keys, optionally under an `airgap` section),
    over `base`: a key that `raw` leaves out takes `base`'s value (for a change, `base` is the
    defaults with what `initializationOptions` gave; see the module's docstring).
    `paths_allowed` False: a path setting other than the one `in_force` (default: `base`) is
    refused (the client came over TCP)."""
    base = base or Settings()
    in_force = in_force or base
    if raw is None:
        return base
    if isinstance(raw, dict) and isinstance(raw.get("airgap"), dict):
        raw = raw["airgap"]
    if not isinstance(raw, dict):
        raise SettingsError(f"airgap-lsp settings must be an object, not {type(raw).__name__}.")
    types = {f.name: f.type for f in fields(Settings)}
    changes: dict[str, Any] = {}
    problems: list[str] = []
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _SECTIONS and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    for key, value in flat.items():
        name = _WIRE.get(key)
        if name is None:
            problems.append(f"unknown setting {key!r} (known: {', '.join(_WIRE)})")
            continue
        want = types[name]
        if want == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{key} must be a whole number, not {value!r}")
                continue
            low, high = _RANGES[name]
            if not low <= value <= high:
                problems.append(f"{key} must be between {low} and {high}, not {value}")
                continue
        elif want == "bool":
            if not isinstance(value, bool):
                problems.append(f"{key} must be true or false, not {value!r}")
                continue
        elif want == "tuple[str, ...]":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{key} must be a list of strings, not {value!r}")
                continue
            # A relative folder would be read from wherever the server happened to start.
            if name == "knowledge_base" and (
                relative := [v for v in value if not os.path.isabs(os.path.expanduser(v))]
            ):
                problems.append(
                    f"{key} takes absolute folders (or ~/...), not the relative "
                    + ", ".join(repr(v) for v in relative)
                )
                continue
            value = tuple(value)
        elif not isinstance(value, str):
            problems.append(f"{key} must be a string, not {value!r}")
            continue
        elif name in _CHOICES and value not in _CHOICES[name]:
            problems.append(f"{key} must be one of {', '.join(_CHOICES[name])}, not {value!r}")
            continue
        elif name == "model" and not value.strip():
            problems.append("model must name a stored model (NAME or NAME@VERSION)")
            continue
        elif name == "backend_url" and value and not value.startswith(("http://", "https://")):
            problems.append(f"backend.url must be an http:// or https:// URL, not {value!r}")
            continue
        # An empty value asks for nothing (the default, or the policy's): editors send them.
        if (
            name in PATH_SETTINGS
            and not paths_allowed
            and value
            and value != getattr(in_force, name)
        ):
            problems.append(
                f"{key} is not accepted from an editor connected over TCP (any local program "
                "can connect to a port): start the server over stdio, or ask the administrator "
                "to set it in the policy"
            )
            continue
        changes[name] = value
    if problems:
        raise SettingsError(
            "airgap-lsp kept its previous settings because: " + "; ".join(problems) + "."
        )
    return replace(base, **changes)
