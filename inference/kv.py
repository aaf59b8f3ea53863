"""A key/value cache that grows in place.

transformers' dynamic cache appends each step's key/values with `torch.cat`, which copies the
whole cache at every decoding step: with a 1,200-token prompt, 30 layers of keys and values
(27 MB for the default model) for each token written. Here each layer keeps a buffer with room to
spare and writes the new key/values into it; the keys and values the model attends over are a
view of its first tokens. The numbers are the same as the dynamic cache's (tested), so the text
is too. Cutting it (`crop`) only shortens the view; the next step writes over what was cut. The
cost: the spare room (256 tokens past a prompt; as much again as it held, once outgrown), kept
with the cache for the next request.

Imported by the engine once torch is needed (it imports torch).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

SPARE_TOKENS = 256  # the least room past what is needed, whenever a buffer is made


class GrowingLayer(DynamicLayer):
    """A dynamic cache layer whose keys and values are views of a buffer with room to spare."""

    _keys_buffer: torch.Tensor | None = None
    _values_buffer: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._keys_buffer = self._values_buffer = None
        held = self.get_seq_length()
        need = held + key_states.shape[-2]
        keys, values = self._keys_buffer, self._values_buffer
        if keys is None or values is None or need > keys.shape[-2]:
            # The first read (the prompt) gets a little room: a line's generation and the next
            # keystrokes fit. A buffer outgrown is replaced by one with as much room again as it
            # held, so a long generation replaces it a few times, not at every step.
            room = need + max(SPARE_TOKENS, held)
            keys = key_states.new_empty((*key_states.shape[:-2], room, key_states.shape[-1]))
            values = value_states.new_empty(
                (*value_states.shape[:-2], room, value_states.shape[-1])
            )
            if held and self.keys is not None and self.values is not None:
                keys[..., :held, :].copy_(self.keys)
                values[..., :held, :].copy_(self.values)
            self._keys_buffer, self._values_buffer = keys, values
        keys[..., held:need, :] = key_states
        values[..., held:need, :] = value_states
        self.keys = keys[..., :need, :]
        self.values = values[..., :need, :]
        return self.keys, self.values

    def reset(self) -> None:
        self._keys_buffer = self._values_buffer = None
        super().reset()


def growing_cache(config: Any) -> Any:
    """A dynamic cache for `config`'s model whose full-attention layers grow in place (a sliding
    window's layers are transformers' own: they cut as they go)."""
    cache = DynamicCache(config=config)
    cache.layers = [
        GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers
    ]
    return cache
