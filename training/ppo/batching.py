"""Padding of variable-length (query, response) pairs and extraction of response-aligned outputs.

Sequences are packed as `query + response`, RIGHT-padded, so real tokens sit at positions 0..n-1 exactly as they did
(via `cumsum(attention_mask) - 1`) during left-padded generation. The logits at position `t` predict token `t + 1`, so
response token `j` of sample `i` is scored by the logits at `len(query_i) - 1 + j`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["PackedBatch", "gather_response", "left_pad", "pack", "pad_response_aligned"]


@dataclass
class PackedBatch:
    """A right-padded batch of `query + response` sequences.

    Attributes:
        input_ids: (B, L) token ids, padded with the pad id.
        attention_mask: (B, L) 1 for real tokens.
        position_ids: (B, L) 0..n-1 over real tokens (padding positions are masked and irrelevant).
        response_index: (B, R) position of the logits/values that score each response token.
        response_tokens: (B, R) response token ids (pad id on padding).
        response_mask: (B, R) 1 for real response tokens; R is the longest response in the batch.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    response_index: torch.Tensor
    response_tokens: torch.Tensor
    response_mask: torch.Tensor


def pack(
    queries: Sequence[torch.Tensor], responses: Sequence[torch.Tensor], pad_id: int, device: torch.device | str
) -> PackedBatch:
    """Concatenate each (query, response) pair and right-pad them into a `PackedBatch` on `device`.

    Args:
        queries: 1-D LongTensors, each of length >= 1.
        responses: 1-D LongTensors, each of length >= 1.
        pad_id: Token id used for padding (masked out everywhere).
        device: Target device.

    Returns:
        The packed batch.
    """
    q_lens = [int(q.numel()) for q in queries]
    r_lens = [int(r.numel()) for r in responses]
    batch, length, resp_len = len(queries), max(q + r for q, r in zip(q_lens, r_lens, strict=True)), max(r_lens)
    input_ids = torch.full((batch, length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, length), dtype=torch.long)
    response_index = torch.zeros((batch, resp_len), dtype=torch.long)
    response_tokens = torch.full((batch, resp_len), pad_id, dtype=torch.long)
    response_mask = torch.zeros((batch, resp_len), dtype=torch.long)
    for i, (q, r) in enumerate(zip(queries, responses, strict=True)):
        ql, rl = q_lens[i], r_lens[i]
        input_ids[i, :ql] = q.cpu()
        input_ids[i, ql : ql + rl] = r.cpu()
        attention_mask[i, : ql + rl] = 1
        # Padding slots point at the last scored position so gathers stay in range; the mask zeroes them.
        response_index[i] = (ql - 1 + torch.arange(resp_len)).clamp_max(ql + rl - 2)
        response_tokens[i, :rl] = r.cpu()
        response_mask[i, :rl] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    return PackedBatch(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        position_ids=position_ids.to(device),
        response_index=response_index.to(device),
        response_tokens=response_tokens.to(device),
        response_mask=response_mask.to(device),
    )


def gather_response(
    logits: torch.Tensor, values: torch.Tensor, batch: PackedBatch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Select the logits (B, R, V) and values (B, R) that score each response token."""
    index = batch.response_index  # (B, R)
    resp_logits = logits.gather(1, index.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))  # (B, R, V)
    resp_values = values.gather(1, index)  # (B, R)
    return resp_logits, resp_values


def pad_response_aligned(chunks: Sequence[torch.Tensor], width: int, value: float = 0.0) -> torch.Tensor:
    """Right-pad (b_k, r_k) chunks to (b_k, width) and concatenate them along the batch dimension."""
    padded = [torch.nn.functional.pad(c, (0, width - c.shape[1]), value=value) for c in chunks]
    return torch.cat(padded, dim=0)


def left_pad(sequences: Sequence[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad 1-D sequences for generation.

    Returns:
        input_ids (B, L) and attention_mask (B, L).
    """
    length = max(int(s.numel()) for s in sequences)
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for i, s in enumerate(sequences):
        if s.numel():
            input_ids[i, -s.numel() :] = s
            attention_mask[i, -s.numel() :] = 1
    return input_ids, attention_mask
