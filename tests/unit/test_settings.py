"""Settings from the editor: camelCase, an optional `airgap` section, refused whole when wrong."""

from __future__ import annotations

import dataclasses

import pytest

from airgap_lsp.settings import Settings, SettingsError, parse_settings, says_nothing


def test_a_change_without_settings_says_nothing() -> None:
    assert says_nothing(None) and says_nothing({"airgap": None})
    assert not says_nothing({}) and not says_nothing({"airgap": {}})
    assert not says_nothing({"airgap": None, "model": "m"})


def test_defaults_when_the_editor_sends_nothing() -> None:
    assert parse_settings(None) == Settings()
    assert parse_settings({}) == Settings()


def test_camel_case_keys_fill_the_fields() -> None:
    s = parse_settings(
        {
            "model": "qwen2.5-coder-1.5b@2024-11",
            "device": "cuda",
            "dtype": "bfloat16",
            "multiline": "never",
            "maxTokensLine": 32,
            "maxTokensBlock": 256,
            "maxPrefixChars": 4000,
            "maxSuffixChars": 0,
            "auditPath": "/var/log/airgap/audit.jsonl",
        }
    )
    assert s == Settings(
        model="qwen2.5-coder-1.5b@2024-11",
        device="cuda",
        dtype="bfloat16",
        multiline="never",
        max_tokens_line=32,
        max_tokens_block=256,
        max_prefix_chars=4000,
        max_suffix_chars=0,
        audit_path="/var/log/airgap/audit.jsonl",
    )


def test_airgap_section_is_unwrapped() -> None:
    s = parse_settings({"airgap": {"maxTokensLine": 20, "device": "cpu"}})
    assert s.max_tokens_line == 20
    assert s.device == "cpu"


def test_unchanged_fields_come_from_the_base() -> None:
    base = Settings(device="cpu", max_tokens_block=99)
    s = parse_settings({"maxTokensLine": 10}, base)
    assert s.max_tokens_line == 10
    assert s.device == "cpu"
    assert s.max_tokens_block == 99


def test_returns_a_new_object_and_leaves_the_base_alone() -> None:
    base = Settings(device="cpu")
    snapshot = dataclasses.asdict(base)
    s = parse_settings({"device": "cuda"}, base)
    assert s is not base
    assert s.device == "cuda"
    assert base.device == "cpu"
    assert dataclasses.asdict(base) == snapshot


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"maxTokensLine": True}, "maxTokensLine"),  # bool is an int in Python, not here
        ({"maxTokensBlock": False}, "maxTokensBlock"),
        ({"maxTokensLine": "48"}, "maxTokensLine"),
        ({"maxPrefixChars": 12.5}, "maxPrefixChars"),
        ({"maxTokensLine": 0}, "maxTokensLine"),
        ({"maxTokensLine": 513}, "maxTokensLine"),
        ({"maxTokensBlock": 2049}, "maxTokensBlock"),
        ({"maxPrefixChars": -1}, "maxPrefixChars"),
        ({"maxSuffixChars": 200_001}, "maxSuffixChars"),
        ({"device": "tpu"}, "device"),
        ({"dtype": "int8"}, "dtype"),
        ({"multiline": "sometimes"}, "multiline"),
        ({"model": 7}, "model"),
        ({"model": "   "}, "model"),
        ({"auditPath": None}, "auditPath"),
        ({"max_tokens_line": 10}, "max_tokens_line"),  # snake_case is not the wire name
        ({"temperature": 0.7}, "temperature"),
        ({"decoding": {"threads": -1}}, "decoding.threads"),
        ({"decoding": {"threads": "auto"}}, "decoding.threads"),
        ({"context": {"keepLines": -1}}, "context.keepLines"),
        ({"context": {"keepLines": 10_001}}, "context.keepLines"),
        ({"context": {"keepLines": 2.5}}, "context.keepLines"),
    ],
)
def test_bad_values_are_refused_naming_the_key(raw: dict, key: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_settings(raw)
    assert key in str(err.value)


@pytest.mark.parametrize(
    ("key", "low", "high"),
    [("maxTokensLine", 1, 512), ("maxTokensBlock", 1, 2048), ("maxPrefixChars", 0, 200_000)],
)
def test_range_ends_are_accepted(key: str, low: int, high: int) -> None:
    parse_settings({key: low})
    parse_settings({key: high})


def test_decoding_threads_is_a_count_or_zero_for_the_load_to_decide() -> None:
    assert parse_settings({"decoding": {"threads": 3}}).threads == 3
    assert parse_settings({}).threads == 0


def test_every_problem_is_named_and_nothing_is_applied() -> None:
    base = Settings(device="cpu")
    raw = {
        "device": "cuda",  # valid, but the whole change is refused
        "maxTokensLine": True,
        "dtype": "fp8",
        "colour": "red",
    }
    with pytest.raises(SettingsError) as err:
        parse_settings(raw, base)
    msg = str(err.value)
    for key in ("maxTokensLine", "dtype", "colour"):
        assert key in msg
    assert "device must" not in msg  # the valid key is not reported as a problem
    assert base.device == "cpu"


def test_airgap_section_errors_name_the_inner_key() -> None:
    with pytest.raises(SettingsError) as err:
        parse_settings({"airgap": {"maxSuffixChars": "lots"}})
    assert "maxSuffixChars" in str(err.value)


@pytest.mark.parametrize("raw", [[], "cpu", 3])
def test_settings_must_be_an_object(raw: object) -> None:
    with pytest.raises(SettingsError):
        parse_settings(raw)


def test_choices_accept_every_documented_value() -> None:
    for device in ("auto", "cpu", "cuda"):
        assert parse_settings({"device": device}).device == device
    for dtype in ("auto", "float32", "bfloat16", "float16"):
        assert parse_settings({"dtype": dtype}).dtype == dtype
    for mode in ("auto", "always", "never"):
        assert parse_settings({"multiline": mode}).multiline == mode


def test_a_relative_knowledge_base_folder_is_refused_naming_it() -> None:
    """It would be read from wherever the server was started."""
    with pytest.raises(SettingsError) as err:
        parse_settings({"context": {"knowledgeBase": ["/srv/standards", "kb", "../notes"]}})
    message = str(err.value)
    assert "context.knowledgeBase" in message and "absolute" in message
    assert "'kb'" in message and "'../notes'" in message and "/srv/standards" not in message
    folders = ["/srv/standards", "~/notes"]
    assert parse_settings({"context": {"knowledgeBase": folders}}).knowledge_base == tuple(folders)


def test_path_settings_from_a_tcp_client_are_refused_naming_each() -> None:
    base = Settings(audit_path="/home/me/audit.jsonl")
    raw = {"auditPath": "/home/victim/.bashrc", "context": {"knowledgeBase": ["/home/victim"]}}
    with pytest.raises(SettingsError) as refused:
        parse_settings(raw, base, paths_allowed=False)
    assert "auditPath is not accepted from an editor connected over TCP" in str(refused.value)
    assert "context.knowledgeBase is not accepted" in str(refused.value)
    # The values in force may be sent again (an editor repeats all its settings on a change).
    same = {"auditPath": "/home/me/audit.jsonl", "maxTokensLine": 20}
    assert parse_settings(same, base, paths_allowed=False).max_tokens_line == 20
    assert parse_settings(raw, base).audit_path == "/home/victim/.bashrc"  # over stdio
    # The empty values an editor sends by default ask for nothing, whatever the policy fixed.
    empty = {"auditPath": "", "context": {"knowledgeBase": []}}
    assert parse_settings(empty, base, paths_allowed=False).knowledge_base == ()


def test_a_key_a_change_leaves_out_takes_the_base_not_the_value_in_force() -> None:
    """The server parses each change over the defaults with what initializationOptions gave:
    a setting an earlier change gave and this one leaves out was removed by the editor."""
    given = parse_settings({"auditPath": "/srv/audit.jsonl", "maxTokensLine": 20})
    first = parse_settings({"device": "cpu", "maxPrefixChars": 10}, given, in_force=given)
    assert (first.device, first.max_prefix_chars, first.max_tokens_line) == ("cpu", 10, 20)

    second = parse_settings({"multiline": "never"}, given, in_force=first)

    assert second.device == "auto" and second.max_prefix_chars == 3000  # back to the defaults
    assert second.audit_path == "/srv/audit.jsonl" and second.max_tokens_line == 20  # as given
    assert second.multiline == "never"
    assert parse_settings({}, given, in_force=second) == given  # an empty change: all removed


def test_a_tcp_clients_path_settings_are_judged_against_those_in_force() -> None:
    """Over TCP the base of a change (the defaults) need not hold the paths in force (the
    policy's, or those initializationOptions gave): those may be sent again, no other."""
    in_force = Settings(audit_path="/var/log/airgap/audit.jsonl", knowledge_base=("/srv/kb",))
    again = {"auditPath": "/var/log/airgap/audit.jsonl", "context": {"knowledgeBase": ["/srv/kb"]}}
    s = parse_settings(again, Settings(), in_force=in_force, paths_allowed=False)
    assert (s.audit_path, s.knowledge_base) == (in_force.audit_path, in_force.knowledge_base)
    with pytest.raises(SettingsError, match="auditPath is not accepted"):
        parse_settings(
            {"auditPath": "/home/victim/.bashrc"},
            Settings(),
            in_force=in_force,
            paths_allowed=False,
        )
    # Left out: the base's value, whatever is in force (not a path the client chose).
    assert parse_settings({}, Settings(), in_force=in_force, paths_allowed=False).audit_path == ""


def test_the_kept_context_is_on_by_default_and_can_be_switched_off() -> None:
    assert Settings().context_keep_lines == 8
    assert parse_settings({"context": {"keepLines": 0}}).context_keep_lines == 0
    assert parse_settings({"context": {"keepLines": 3}}).context_keep_lines == 3
