"""Seeded batched sampling of responses that end at end-of-turn (eos, or a newline token)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

__all__ = [
    "SamplingSettings",
    "SamplingTrace",
    "cut_at_stop",
    "encode_query",
    "left_pad",
    "sample_responses",
    "sample_responses_traced",
    "stop_token_ids",
]


class SamplingSettings(Protocol):
    """What sampling reads (``training.ppo.ModelConfig`` and ``AutoUserConfig``'s settings both provide it)."""

    max_query_length: int
    max_response_length: int
    temperature: float
    top_p: float
    top_k: int


def stop_token_ids(tokenizer: PreTrainedTokenizerBase, stop_at_newline: bool) -> list[int]:
    """Token ids that end a turn: eos, plus (if `stop_at_newline`) every token whose text contains a newline.

    Decoding each id is slower than matching token strings but works for every tokenizer family (byte-level "Ċ",
    sentencepiece "<0x0A>", merged "\\n\\n" tokens, ...). Runs once per trainer.
    """
    ids = {int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set()
    if stop_at_newline:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=False)
        ids.update(i for i, text in enumerate(texts) if "\n" in text)
    if not ids:
        raise ValueError("tokenizer has no eos token and stop_at_newline is False: responses could never end")
    return sorted(ids)


def encode_query(tokenizer: PreTrainedTokenizerBase, prompt: str, max_length: int) -> torch.Tensor:
    """Tokenize a fully formatted prompt and truncate it from the LEFT to `max_length` tokens.

    Special tokens are not added (chat templates already contain them). A leading bos survives truncation because
    models expect it; an empty prompt becomes `[bos]` (or `[eos]`) so there is always a token to condition on.

    Returns:
        1-D LongTensor of length in [1, max_length].
    """
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if not ids:
        ids = [start]
    if len(ids) > max_length:
        keep_bos = tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id and max_length > 1
        ids = [ids[0], *ids[len(ids) - max_length + 1 :]] if keep_bos else ids[len(ids) - max_length :]
    return torch.tensor(ids, dtype=torch.long)


def cut_at_stop(tokens: torch.Tensor, stop_ids: torch.Tensor) -> torch.Tensor:
    """Keep `tokens` up to and including the first stop token (all of them if none)."""
    hits = torch.isin(tokens, stop_ids).nonzero()
    return tokens[: int(hits[0]) + 1] if hits.numel() else tokens


@dataclass
class SamplingTrace:
    """What the sampling pass computed for each response token, kept so that PPO need not compute it again.

    Attributes:
        logits: per response, (R_i, V) float32 raw logits (before temperature, top-k and top-p) its tokens were
            sampled from: row t scores token t.
        hidden: per response, (R_i, H) float32 last hidden state (after the final norm) at the position that
            sampled token t, which is what a value head reads.
    """

    logits: list[torch.Tensor]
    hidden: list[torch.Tensor]


def sample_responses(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    model_config: SamplingSettings,
    stop_ids: Sequence[int],
    seed: int,
    device: torch.device,
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str]]:
    """Sample one response per prompt.

    Args:
        model: A causal LM (or PeftModel) with `generate`.
        tokenizer: Its tokenizer (needs a pad token).
        prompts: Formatted prompts.
        model_config: Sampling settings (temperature, top_p, top_k, max_response_length, max_query_length).
        stop_ids: End-of-turn token ids (see `stop_token_ids`).
        seed: Sampling seed; the global RNG state is restored afterwards.
        device: Device of the model.

    Returns:
        query tensors (1-D, on CPU), response tensors (1-D, on CPU, ending at the first stop token if one was
        sampled) and the decoded responses (special tokens skipped, surrounding whitespace stripped).
    """
    queries, responses, texts, _ = sample_responses_traced(model, tokenizer, prompts, model_config, stop_ids, seed,
                                                           device, trace=False)
    return queries, responses, texts


@torch.no_grad()
def sample_responses_traced(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    model_config: SamplingSettings,
    stop_ids: Sequence[int],
    seed: int,
    device: torch.device,
    trace: bool = True,
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str], SamplingTrace | None]:
    """`sample_responses`, plus (with `trace`) the raw logits and last hidden states each response token was
    sampled from (`SamplingTrace`); the sampled tokens are the same with or without the trace."""
    queries = [encode_query(tokenizer, p, model_config.max_query_length) for p in prompts]
    input_ids, attention_mask = left_pad(queries, tokenizer.pad_token_id)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        out = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            do_sample=True,
            temperature=model_config.temperature,
            top_p=model_config.top_p,
            top_k=model_config.top_k,
            max_new_tokens=model_config.max_response_length,
            eos_token_id=list(stop_ids),  # per-sequence early stop; finished rows are filled with pad
            pad_token_id=tokenizer.pad_token_id,
            return_dict_in_generate=True,
            output_logits=trace,
            output_hidden_states=trace,
        )
    generated = out.sequences[:, input_ids.shape[1] :].cpu()  # (B, <= max_new_tokens)
    stops = torch.tensor(list(stop_ids), dtype=torch.long)
    responses = [cut_at_stop(row, stops) for row in generated]
    texts = [tokenizer.decode(r, skip_special_tokens=True).strip() for r in responses]
    if not trace:
        return queries, responses, texts, None
    logits = torch.stack(out.logits, dim=1).float().cpu()  # (B, steps, V)
    # hidden_states: one tuple of layers per decoding step; the last layer at the last position sampled the token.
    hidden = torch.stack([layers[-1][:, -1] for layers in out.hidden_states], dim=1).float().cpu()  # (B, steps, H)
    lengths = [int(r.numel()) for r in responses]
    sampling_trace = SamplingTrace([logits[i, :n] for i, n in enumerate(lengths)],
                                   [hidden[i, :n] for i, n in enumerate(lengths)])
    return queries, responses, texts, sampling_trace


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
