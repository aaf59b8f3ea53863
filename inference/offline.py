"""The environment that keeps Hugging Face libraries from ever asking a hub.

It must be applied before `transformers` or `huggingface_hub` is imported: both read these
variables once, at import time.
"""

from __future__ import annotations

import os

OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def set_offline_env() -> None:
    """Force the offline variables: a user's environment must not be able to turn them off."""
    os.environ.update(OFFLINE_ENV)
