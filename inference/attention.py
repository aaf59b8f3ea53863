"""A decoding step's attention, packed by key/value head, where bf16's one-row kernel is slow.

A decoding step reads one token: transformers hands torch's SDPA a query of one row per head and
the cached keys and values of the fewer key/value heads (`enable_gqa`). On a CPU that computes
bf16 with AVX-512 but has no AMX, torch takes a slow path for that one row: measured on a 2-core
AMD EPYC (avx512_bf16, no AMX), torch 2.13, the default model's shapes (9 query heads on 3
key/value heads, 64 wide), 1,500 cached tokens: 0.84 ms a layer, against 0.15 ms for the same
queries packed as 3 rows on each key/value head (what transformers itself does when the step has
a mask), and 0.11 ms in float32. The default model's 30 layers make that some 20 ms of a 70 ms
step. On the AMX Xeons measured before, attention was 5 % of a 31 ms step, and in float32 the
one-row path is the fast one: there the model's own attention runs.

Packed, each query row is computed as the kernel computes several: the same arithmetic, rounded
in another order, so the text can differ at a near tie. The engine says so in `steps`
(inference.engine.PACKED_ATTENTION; the audit line records it) and replay packs as the line says.

Imported by the engine once torch is needed (it imports torch and transformers).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

# The attention's name in transformers' registry. Some model classes test for the name "sdpa"
# itself (Falcon, which refuses the switch and keeps its own attention; Gemma 4's shared
# key/values): the packed path was measured and tested on the default model's architecture only.
NAME = "airgap_packed_sdpa"
# What transformers may pass that the packed path does not handle: the model's own runs then.
_DELEGATED = ("softcap", "position_bias", "s_aux", "sinks", "cache")


def packed_sdpa(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, but a one-token step without a mask on a model whose query
    heads share key/value heads reads its queries as `groups` rows of each key/value head."""
    groups = int(getattr(module, "num_key_value_groups", 1))
    batch, heads, rows, width = query.shape
    if (
        rows != 1
        or groups <= 1
        or attention_mask is not None
        or key.shape[1] * groups != heads
        or kwargs.get("output_attentions")
        or any(kwargs.get(k) is not None for k in _DELEGATED)
    ):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    out = torch.nn.functional.scaled_dot_product_attention(
        query.reshape(batch, heads // groups, groups, width),  # head h reads key/value h // groups
        key,
        value,
        dropout_p=dropout,
        scale=scaling,
    )
    return out.reshape(batch, heads, 1, value.shape[-1]).transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, packed_sdpa)
# The masks SDPA takes: a name transformers does not know gets none, and a step that reads drafts
# after the prompt would then attend as if it were the text's start.
AttentionMaskInterface.register(NAME, sdpa_mask)


def one_row_is_slow(dtype: torch.dtype) -> bool:
    """Whether this CPU takes the slow one-row path for `dtype`: bf16 on a CPU with AVX512-BF16
    whose AMX is not usable (torch's own check where it has one, else the CPU's flags). Other CPUs
    were not measured, and keep the model's own attention."""
    if dtype != torch.bfloat16:
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = fh.read()
    except OSError:
        return False
    if "avx512_bf16" not in flags:
        return False
    init_amx = getattr(getattr(torch._C, "_cpu", None), "_init_amx", None)
    if callable(init_amx):
        try:
            return not bool(init_amx())
        except RuntimeError:
            pass
    return "amx_bf16" not in flags
