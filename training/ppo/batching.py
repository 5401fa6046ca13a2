"""Padding of variable-length (query, response) pairs and extraction of response-aligned outputs.

Layout: queries are LEFT-padded to the longest query `Q` and responses RIGHT-padded to the longest response `R`, so
every response starts at column `Q`. Positions come from `cumsum(attention_mask) - 1`, so real tokens sit at
0..n-1 exactly as during left-padded generation. The logits at column `t` predict token `t + 1`, so the response
tokens of every row are scored by the same columns `Q - 1 .. Q + R - 2`: the LM head only needs to run on the last
`R + 1` columns (`logits_to_keep`), which saves most of the vocabulary projection for long prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from agents.auto_user.generation import left_pad

__all__ = ["PackedBatch", "gather_response", "left_pad", "optimizer_step_chunks", "pack", "pad_response_aligned"]


@dataclass
class PackedBatch:
    """A batch of `query + response` sequences with all responses starting at column `query_width`.

    Attributes:
        input_ids: (B, Q + R) token ids, padded with the pad id.
        attention_mask: (B, Q + R) 1 for real tokens.
        position_ids: (B, Q + R) 0..n-1 over real tokens (padding positions are masked and irrelevant).
        response_tokens: (B, R) response token ids (pad id on padding).
        response_mask: (B, R) 1 for real response tokens; R is the longest response in the batch.
        query_width: Q, the longest query in the batch.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    response_tokens: torch.Tensor
    response_mask: torch.Tensor
    query_width: int

    @property
    def logits_to_keep(self) -> int:
        """Number of trailing columns whose logits score the response tokens (plus the unused final column)."""
        return self.response_tokens.shape[1] + 1


def pack(
    queries: Sequence[torch.Tensor], responses: Sequence[torch.Tensor], pad_id: int, device: torch.device | str
) -> PackedBatch:
    """Left-pad the queries, right-pad the responses and concatenate them into a `PackedBatch` on `device`.

    Args:
        queries: 1-D LongTensors, each of length >= 1.
        responses: 1-D LongTensors, each of length >= 1.
        pad_id: Token id used for padding (masked out everywhere).
        device: Target device.

    Returns:
        The packed batch.
    """
    q_width = max(int(q.numel()) for q in queries)
    r_width = max(int(r.numel()) for r in responses)
    batch = len(queries)
    input_ids = torch.full((batch, q_width + r_width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, q_width + r_width), dtype=torch.long)
    response_mask = torch.zeros((batch, r_width), dtype=torch.long)
    for i, (q, r) in enumerate(zip(queries, responses, strict=True)):
        ql, rl = int(q.numel()), int(r.numel())
        input_ids[i, q_width - ql : q_width] = q.cpu()
        input_ids[i, q_width : q_width + rl] = r.cpu()
        attention_mask[i, q_width - ql : q_width + rl] = 1
        response_mask[i, :rl] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    return PackedBatch(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        position_ids=position_ids.to(device),
        response_tokens=input_ids[:, q_width:].to(device),
        response_mask=response_mask.to(device),
        query_width=q_width,
    )


def gather_response(
    logits: torch.Tensor, values: torch.Tensor, batch: PackedBatch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Select the logits (B, R, V) and values (B, R) that score each response token.

    Args:
        logits: (B, R + 1, V) from a forward pass with `logits_to_keep=batch.logits_to_keep`, or the full (B, L, V).
        values: (B, L) per-column values.
        batch: The packed batch.
    """
    width, start = batch.response_tokens.shape[1], batch.query_width - 1
    resp_logits = logits[:, -(width + 1) : -1]  # (B, R, V): columns Q-1 .. Q+R-2
    resp_values = values[:, start : start + width]  # (B, R)
    return resp_logits, resp_values


def pad_response_aligned(chunks: Sequence[torch.Tensor], width: int, value: float = 0.0) -> torch.Tensor:
    """Right-pad (b_k, r_k) chunks to (b_k, width) and concatenate them along the batch dimension."""
    padded = [torch.nn.functional.pad(c, (0, width - c.shape[1]), value=value) for c in chunks]
    return torch.cat(padded, dim=0)


def optimizer_step_chunks(
    lengths: Sequence[int], size: int, generator: torch.Generator, group_by_length: bool = False, window_steps: int = 16
) -> list[torch.Tensor]:
    """One PPO epoch's sample indices, shuffled and cut into optimizer steps of `size` (the last may be smaller).

    With `group_by_length` (transformers' `group_by_length`, see `PPOConfig.group_by_length`), each window of
    `window_steps` optimizer steps of the shuffled order is sorted by `lengths` before it is cut, and the steps are
    then shuffled, so each step's mini-batches pad to samples of about their own length. Every sample appears once.
    """
    order = torch.randperm(len(lengths), generator=generator)
    if not group_by_length:
        return list(order.split(size))
    chunks: list[torch.Tensor] = []
    for window in order.split(window_steps * size):
        by_length = sorted(window.tolist(), key=lambda i: lengths[i])
        chunks.extend(torch.tensor(by_length).split(size))
    return [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]
