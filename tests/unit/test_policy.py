"""The administrator's policy: parsed strictly, applied over the user's settings."""

from __future__ import annotations

import getpass
import os
import pwd
from pathlib import Path

import pytest

import airgap_lsp.policy as policy_module
from airgap_lsp.policy import POLICY_ENV, Policy, PolicyError, load_policy, parse_policy
from airgap_lsp.settings import Settings
from audit.record import os_identity
from inference.errors import ModelRefused
from inference.store import Manifest, StoredModel

POLICY = """\
# Site policy for the flight software team
[models]
allowed = [
  { name = "coder", version = "2", sha256 = "%s" },
]

[audit]
path = "/var/log/airgap-lsp/audit.jsonl"
rotate = "monthly"

[context]
exclude = ["secrets/**"]

[users]
allowed = ["%s"]
"""


def stored(name: str, version: str, sha: str) -> StoredModel:
    manifest = Manifest(
        name=name,
        version=version,
        family="llama",
        prompt_format="prefix-only",
        files={},
        source={},
        imported_at="2026-11-28T00:00:00+00:00",
    )
    return StoredModel(path=Path("/nowhere"), manifest=manifest, manifest_sha256=sha)


def test_a_model_outside_the_policy_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    policy = parse_policy(POLICY % ("a" * 64, "nobody"), path)
    policy.check_model(stored("coder", "2", "a" * 64))  # the allowed one passes
    with pytest.raises(ModelRefused, match=rf"policy \({path}:4\) does not allow coder@2"):
        policy.check_model(stored("coder", "2", "b" * 64))  # same name, other files
    with pytest.raises(ModelRefused, match=rf"{path}:3\) does not allow other@1"):
        policy.check_model(stored("other", "1", "a" * 64))


def test_the_policy_wins_over_the_users_settings(tmp_path: Path) -> None:
    policy = parse_policy(POLICY % ("a" * 64, "nobody"), tmp_path / "p.toml")
    user = Settings(audit_path="/tmp/mine.jsonl", context_exclude=("*.log",))
    settings, overridden = policy.apply(user)
    assert settings.audit_path == "/var/log/airgap-lsp/audit.jsonl"
    # The policy's exclusions stand apart from the user's, which cannot take them back.
    assert (settings.policy_exclude, settings.context_exclude) == (("secrets/**",), ("*.log",))
    assert overridden and "auditPath" in overridden[0]
    assert policy.audit_monthly


def test_users_outside_the_policy_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    parse_policy(POLICY % ("a" * 64, getpass.getuser()), path).check_user()
    with pytest.raises(PolicyError, match=rf"{path}:15\) does not allow the user"):
        parse_policy(POLICY % ("a" * 64, "nobody-else"), path).check_user()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[models]\nallowed = [{ name = 'x' }]\n", "needs a name and a sha256"),
        ("[audit]\nrotate = 'weekly'\n", ":2: rotate must be 'monthly'"),
        ("[audit]\npaht = '/x'\n", ":2: unknown key 'paht'"),
        ("[telemetry]\nurl = 'x'\n", "unknown section [telemetry]"),
        ("[models\n", "not valid TOML"),
        ("[network]\nallowed_hosts = ['gpu:http']\n", ":2: 'gpu:http' is not HOST"),
        ("[backend]\nmodel = 'x'\n", "needs url"),
        ("[backend]\nurl = 'ftp://gpu/v1'\n", ":2: 'ftp://gpu/v1' is not an http"),
        ("[backend]\nurl = 'http://u:pw@gpu/v1'\n", ":2: .* no user name, password"),
        ("[backend]\nurl = 'http://gpu/v1'\nfallback = 'cloud'\n", ":3: fallback must be"),
        ("[backend]\nurl = 'http://gpu/v1'\ntimeout_s = 0\n", ":3: timeout_s must be"),
        ("[models]\nallowed = []\n", ":2: .models. allowed is empty"),
        ("[users]\nallowed = []\n", ":2: .users. allowed is empty"),
        ("[audit]\nmax_bytes = true\n", ":2: .audit. max_bytes must be a positive"),
        ("[audit]\npath = 5\n", ":2: path must be a string"),
        ("[audit]\npath = 'logs/audit.jsonl'\n", ":2: 'logs/audit.jsonl' is a relative path"),
        ("[context]\nknowledge_base = ['kb']\n", ":2: 'kb' is a relative path"),
        ("[network]\nallowed_hosts = ['*.internal']\n", ":2: .* takes no wildcards"),
    ],
)
def test_an_invalid_policy_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("[", r"\[")):
        parse_policy(text, tmp_path / "p.toml")


def test_a_named_policy_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POLICY_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(PolicyError, match="does not run without"):
        load_policy()
    monkeypatch.delenv(POLICY_ENV)
    assert load_policy() == Policy() or load_policy().path == Path("/etc/airgap-lsp/policy.toml")


def test_the_policys_team_server_and_model_win_over_the_settings(tmp_path: Path) -> None:
    text = "[backend]\nurl = 'http://gpu.internal:8000/v1/'\nmodel = 'coder@2'\n"
    policy = parse_policy(text, tmp_path / "p.toml")
    user = Settings(model="mine@1", backend_url="http://elsewhere.internal/v1")
    settings, overridden = policy.apply(user)
    assert (settings.backend_url, settings.model) == ("http://gpu.internal:8000/v1", "coder@2")
    assert [m.split(" ")[0] for m in overridden] == ["backend.url", "model"]
    assert policy.remote_backend(settings.backend_url).fallback == "none"


def test_a_team_server_the_settings_name_must_be_allow_listed(tmp_path: Path) -> None:
    text = "[network]\nallowed_hosts = ['gpu.internal:8000']\n"
    policy = parse_policy(text, tmp_path / "p.toml")
    assert policy.remote_backend("http://gpu.internal:8000/v1").url.endswith(":8000/v1")
    for url in ("http://gpu.internal:8001/v1", "http://other.internal:8000/v1"):
        with pytest.raises(PolicyError, match="does not allow-list"):
            policy.remote_backend(url)
    with pytest.raises(PolicyError, match=r"policy \(none\) does not allow-list 127.0.0.1:80"):
        Policy().remote_backend("http://127.0.0.1/v1")


def test_the_administrators_policy_cannot_be_replaced_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "etc" / "policy.toml"
    system.parent.mkdir()
    system.write_text('[audit]\npath = "/var/log/airgap/audit.jsonl"\n')
    monkeypatch.setattr(policy_module, "SYSTEM_POLICY", system)
    mine = tmp_path / "mine.toml"
    mine.write_text("")
    monkeypatch.setenv(POLICY_ENV, str(mine))
    with pytest.raises(PolicyError, match="cannot be replaced"):
        load_policy()
    monkeypatch.setenv(POLICY_ENV, str(system))  # naming the administrator's own file is fine
    assert load_policy().audit_path == "/var/log/airgap/audit.jsonl"
    monkeypatch.delenv(POLICY_ENV)
    assert load_policy().audit_path == "/var/log/airgap/audit.jsonl"


def test_the_user_is_who_the_process_runs_as_not_who_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    monkeypatch.setenv("USER", "alice-" + me)
    monkeypatch.setenv("LOGNAME", "alice-" + me)
    allowed_alice = parse_policy(POLICY % ("a" * 64, "alice-" + me), tmp_path / "p.toml")
    with pytest.raises(PolicyError, match=f"does not allow the user '{me}'"):
        allowed_alice.check_user()
    assert os_identity()[0]["name"] == me


def test_a_policy_can_forbid_the_users_knowledge_base_folders(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    text = '[context]\nknowledge_base = ["/srv/standards"]\nuser_knowledge_base = %s\n'
    user = Settings(knowledge_base=("/home/u/kb",))

    fixed, overridden = parse_policy(text % "false", path).apply(user)
    assert fixed.knowledge_base == ("/srv/standards",)
    assert overridden == [f"context.knowledgeBase is fixed to /srv/standards by {path}"]
    assert parse_policy(text % "false", path).apply(fixed) == (fixed, [])  # applied again

    added, overridden = parse_policy(text % "true", path).apply(user)
    assert added.knowledge_base == ("/srv/standards", "/home/u/kb") and overridden == []
    assert parse_policy(text.split("user_")[0], path).user_knowledge_base

    with pytest.raises(PolicyError, match=":3: user_knowledge_base must be true or false"):
        parse_policy(text % '"no"', path)
