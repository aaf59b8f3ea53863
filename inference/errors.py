"""The errors of the model store and the engines, under the project's `AirgapError`."""

from __future__ import annotations

from airgap_lsp.errors import AirgapError


class ModelStoreError(AirgapError):
    """The model store cannot import or find a model."""


class ModelRefused(ModelStoreError):
    """A model failed a check (hash, pickle, remote code) and must not be loaded."""


class ModelNotFound(ModelStoreError):
    """The model named in the settings is not in the store."""


class GenerationCancelled(AirgapError):
    """A newer request or the editor cancelled this generation between two decoding steps."""


class BackendDown(AirgapError):
    """The team's inference server does not answer (refused, unreachable, or it hung up)."""


class BackendRefused(AirgapError):
    """The team's inference server answers, but not with the locked model (its hash differs)."""


class ChatTemplateError(AirgapError):
    """The model's chat template failed, or was stopped at a bound, rendering a prompt."""
