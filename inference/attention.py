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

A step that reads several tokens (drafts to check, the rest of a prompt after its kept start)
carries a causal mask, and for it transformers repeats each key/value head for its query heads
(`repeat_kv`: a copy of the layer's keys and values at every step) and gives SDPA one query per
head. Packed the same way, with the mask repeated for each group of rows, the same CPU took
(isolated, 1,500 cached tokens, a layer) 0.33 against 1.31 ms for 2 rows, 1.01 against 1.99 for
9, 1.48 against 1.92 for 32 and 3.5 against 4.7 for 100; at 400 rows and more it is no faster
(11.9 against 11.0 ms), so steps of up to PACKED_ROWS rows are packed. A whole step of the default
model that checks drafts: 53 against 67 ms for 2 tokens, 80 against 94 for 9.

Packed, each query row is computed as the kernel computes several: the same arithmetic, rounded
in another order, so the text can differ at a near tie. The engine says so in `steps`
(inference.engine.PACKED_ATTENTION; the audit line records it) and replay packs as the line says:
lines of the version that packed one-token steps only (inference.engine.PACKED_ONE_TOKEN) run
under NAME, later ones under STEPS_NAME.

Imported by the engine once torch is needed (it imports torch and transformers).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from inference import cpuinfo

# The attention's names in transformers' registry. Some model classes test for the name "sdpa"
# itself (Falcon, which refuses the switch and keeps its own attention; Gemma 4's shared
# key/values): the packed path was measured and tested on the default model's architecture only.
NAME = "airgap_packed_sdpa"  # one-token steps only, as audit lines of that version ran
STEPS_NAME = "airgap_packed_sdpa_steps"  # one-token steps, and masked steps of up to PACKED_ROWS
PACKED_ROWS = 128
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
    *,
    masked_rows: int = 1,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, but on a model whose query heads share key/value heads, a
    one-token step without a mask, and a step of 2 to `masked_rows` tokens with a mask shared by
    the heads, read their queries as `groups` x rows rows of each key/value head (NAME: 1, one-token
    steps only; STEPS_NAME: PACKED_ROWS)."""
    groups = int(getattr(module, "num_key_value_groups", 1))
    batch, heads, rows, width = query.shape
    mask = attention_mask
    shared_mask = (
        mask is not None
        and mask.dim() == 4
        and mask.shape[1] == 1
        and tuple(mask.shape[2:]) == (rows, key.shape[2])
    )
    if (
        not ((rows == 1 and mask is None) or (1 < rows <= masked_rows and shared_mask))
        or groups <= 1
        or key.shape[1] * groups != heads
        or kwargs.get("output_attentions")
        or any(kwargs.get(k) is not None for k in _DELEGATED)
    ):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if mask is not None:  # packed row g * rows + i is query row i of its head's group g
        mask = mask.expand(batch, 1, rows, mask.shape[-1]).repeat(1, 1, groups, 1)
    out = torch.nn.functional.scaled_dot_product_attention(
        # head h reads key/value h // groups
        query.reshape(batch, heads // groups, groups * rows, width),
        key,
        value,
        attn_mask=mask,
        dropout_p=dropout,
        scale=scaling,
    )
    return out.reshape(batch, heads, rows, value.shape[-1]).transpose(1, 2).contiguous(), None


# The masks SDPA takes: a name transformers does not know gets none, and a step that reads drafts
# after the prompt would then attend as if it were the text's start.
for _name, _attention in (
    (NAME, packed_sdpa),
    (STEPS_NAME, functools.partial(packed_sdpa, masked_rows=PACKED_ROWS)),
):
    AttentionInterface.register(_name, _attention)
    AttentionMaskInterface.register(_name, sdpa_mask)


def one_row_is_slow(dtype: torch.dtype) -> bool:
    """Whether this CPU takes the slow one-row path for `dtype`: bf16 on a CPU with AVX512-BF16
    whose AMX is not usable (torch's own check where it has one, else the CPU's flags). Other CPUs
    were not measured, and keep the model's own attention."""
    if dtype != torch.bfloat16 or "avx512_bf16" not in cpuinfo.flags():
        return False
    init_amx = getattr(getattr(torch._C, "_cpu", None), "_init_amx", None)
    if callable(init_amx):
        try:
            return not bool(init_amx())
        except RuntimeError:
            pass
    return "amx_bf16" not in cpuinfo.flags()
