"""Where the model store and the audit log live."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

DEFAULT_MODEL = "smollm2-135m-instruct"


def home() -> Path:
    """`AIRGAP_LSP_HOME`, else the platform's user data folder."""
    env = os.environ.get("AIRGAP_LSP_HOME")
    return Path(env).expanduser() if env else Path(user_data_dir("airgap-lsp", appauthor=False))


def model_store_root() -> Path:
    """`AIRGAP_LSP_MODEL_STORE` (e.g. a shared read-only folder), else `<home>/models`."""
    env = os.environ.get("AIRGAP_LSP_MODEL_STORE")
    return Path(env).expanduser() if env else home() / "models"


def default_audit_path() -> Path:
    return home() / "audit" / "audit.jsonl"
