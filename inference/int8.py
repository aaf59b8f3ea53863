"""Weight-only int8 for the decoding steps on a CPU.

A decoding step reads every weight of the model to write one token; on a CPU that reading is the
step's cost, and a model's weights in bf16 (or float32) are 2 (or 4) bytes each. Here each linear
layer also holds its weight in int8, one scale per output row (symmetric, the row's largest
magnitude is 127), and a decoding step multiplies with those (`torch._weight_int8pack_mm`: the
activations stay in the model's dtype, the weights are widened in the kernel). Reading the
prompt keeps the full weights: it is bound by arithmetic, not by reading, and the int8 kernel
is several times slower there.

So the prompt's key/values are those of the full model, and only what the decoding steps compute
(the generated tokens' key/values and scores) comes from int8 weights. The engine keeps only
the prompt's key/values for the next request, so a later prompt that holds a suggestion reads it
with the full weights, as replay (which reads every prompt whole) does.

The vocabulary projection keeps its full weights: it decides the greedy choice directly, and
measured no faster in int8.

Imported by the engine once torch is needed (it imports torch).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


class Weights:
    """Which weights the model's linear layers multiply with now."""

    __slots__ = ("int8",)

    def __init__(self) -> None:
        self.int8 = False

    @contextmanager
    def decoding(self) -> Iterator[None]:
        """The int8 weights for the steps run inside."""
        self.int8 = True
        try:
            yield
        finally:
            self.int8 = False


class DualLinear(torch.nn.Module):
    """A linear layer with its full weight and an int8 copy; `weights` says which one runs."""

    q: torch.Tensor  # the int8 weight, a row per output
    scale: torch.Tensor  # each row's scale, in the model's dtype

    def __init__(self, linear: torch.nn.Linear, weights: Weights) -> None:
        super().__init__()
        self.full = linear
        self.weights = weights
        with torch.no_grad():
            w = linear.weight.detach().float()
            scale = w.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127.0
            q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
        # Not in the state dict: derived from the weight at each load, never saved.
        self.register_buffer("q", q, persistent=False)
        self.register_buffer("scale", scale.to(linear.weight.dtype), persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.full.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.weights.int8:
            return self.full(x)
        rows = x.reshape(-1, x.shape[-1])
        if rows.dtype != self.scale.dtype:
            rows = rows.to(self.scale.dtype)
        y = torch._weight_int8pack_mm(rows, self.q, self.scale)
        if self.full.bias is not None:
            y = y + self.full.bias
        return y.reshape(*x.shape[:-1], y.shape[-1])


def add_int8(model: Any) -> Weights:
    """Give every linear layer of `model` but its vocabulary projection an int8 copy of its
    weight; the returned switch chooses which weights run. Extra memory: a quarter (bf16: a
    half) of those layers' own."""
    weights = Weights()
    head = model.get_output_embeddings()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear and child is not head:
                setattr(parent, name, DualLinear(child, weights))
    return weights
