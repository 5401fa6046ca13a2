"""Offline builders for tiny, randomly initialised causal LMs used by tests and benchmarks.

Nothing here touches a model hub: the tokenizer is a byte-level BPE trained in-process on a small built-in corpus,
and the model weights come from a seeded random initialisation of a `transformers` config. The resulting directory
loads with `AutoModelForCausalLM.from_pretrained(dir)` and `AutoTokenizer.from_pretrained(dir)`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, LlamaConfig, PreTrainedTokenizerFast

__all__ = ["TINY_CORPUS", "build_gpt2_small_shape", "build_tiny_model", "build_tiny_tokenizer"]

# A few dozen lines of plain English and flight-booking dialogue: enough for a few hundred BPE merges.
TINY_CORPUS: tuple[str, ...] = (
    "Hello, I would like to book a flight from New York to London next Monday.",
    "Sure, I can help you with that. What time would you like to depart?",
    "I prefer a morning flight, ideally before ten in the morning.",
    "There is a flight at eight fifteen with a stop in Dublin, and a direct one at nine thirty.",
    "The direct flight sounds great. How much does it cost in economy class?",
    "The economy fare is four hundred and twenty dollars including taxes.",
    "Please book it for me. My name is Alice Smith and my date of birth is March third.",
    "Your booking is confirmed. The confirmation code is ABC123.",
    "Can I change my seat to a window seat near the front of the plane?",
    "I have moved you to seat twelve A, a window seat.",
    "I need to cancel my reservation because my plans have changed.",
    "Your reservation has been cancelled and the refund will arrive within five business days.",
    "Do you have any flights from Paris to Tokyo on Friday evening?",
    "Yes, there are two flights: one at six in the evening and one at eleven at night.",
    "What is the baggage allowance for business class passengers?",
    "Business class passengers may check two bags of up to thirty two kilograms each.",
    "I want to upgrade my ticket to first class if there is availability.",
    "Thank you for your help, that is all I needed today.",
    "You are welcome. Have a pleasant trip and a safe flight!",
    "The user asks the agent about the departure gate, the arrival time and the terminal.",
    "Please confirm the passenger name, the flight number and the travel date.",
    "My flight was delayed by three hours, can I get a voucher for dinner?",
    "The airline offers a meal voucher and a free rebooking on the next available flight.",
    "Is there a cheaper option if I travel on Tuesday or Wednesday instead?",
    "On Wednesday the fare drops to three hundred and ten dollars.",
    "I would like to add a second passenger, my husband Bob, to the same booking.",
    "Bob has been added and both of you are seated together in row fourteen.",
    "The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.",
    "Numbers and codes: 0 1 2 3 4 5 6 7 8 9, flight AA100, BA249, LH400, gate B12.",
    "Yes. No. Maybe. OK. Thanks! Goodbye.",
)

_GPT2_SPECIALS = ["<|endoftext|>"]
_LLAMA_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]
# Zephyr-style template: each turn is "<|role|>\n{content}</s>\n"; the generation prompt opens an assistant turn.
_LLAMA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
_ARCHITECTURES = ("gpt2", "llama")


def build_tiny_tokenizer(architecture: str = "gpt2", vocab_size: int = 768) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `TINY_CORPUS`.

    Byte-level BPE can encode any string (unknown text falls back to byte tokens) and decodes losslessly, and a
    newline is always its own pre-token, so "stop at newline" logic sees a dedicated token.

    Args:
        architecture: "gpt2" (eos = pad = bos = `<|endoftext|>`, like the real GPT-2/DialoGPT) or "llama"
            (`<s>`, `</s>`, `<pad>` and role tokens plus a chat template).
        vocab_size: Upper bound on the vocabulary size; the small corpus may yield slightly fewer merges.

    Returns:
        A `PreTrainedTokenizerFast` ready for `save_pretrained`.

    Raises:
        ValueError: If `architecture` is unknown.
    """
    if architecture not in _ARCHITECTURES:
        raise ValueError(f"architecture must be one of {_ARCHITECTURES}, got {architecture!r}")
    specials = _GPT2_SPECIALS if architecture == "gpt2" else _LLAMA_SPECIALS
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repeat the corpus with line breaks so newline-joined text is represented in the merges.
    tok.train_from_iterator([line + "\n" for line in TINY_CORPUS] * 2, trainer=trainer)
    if architecture == "gpt2":
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token="<|endoftext|>",
            eos_token="<|endoftext|>",
            unk_token="<|endoftext|>",
            pad_token="<|endoftext|>",
            model_max_length=1024,
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
        model_max_length=1024,
    )
    fast.chat_template = _LLAMA_CHAT_TEMPLATE
    return fast


def _save(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    # Plain generation defaults so callers that rely on generation_config get eos/pad without a hub lookup.
    gen = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    if tokenizer.bos_token_id is not None:
        gen["bos_token_id"] = tokenizer.bos_token_id
    (out_dir / "generation_config.json").write_text(json.dumps(gen, indent=2))
    return out_dir


def build_tiny_model(out_dir: str | Path, architecture: str = "gpt2", seed: int = 0) -> Path:
    """Write a tiny random causal LM (2 layers, hidden 64, 4 heads) and its local tokenizer to `out_dir`.

    Deterministic for a given `seed` and fast (well under a second on CPU). Dropout is disabled in the config so
    forward passes are deterministic in train mode too.

    Args:
        out_dir: Directory to create (or overwrite files in).
        architecture: "gpt2" (Conv1D GPT-2 family) or "llama" (Llama family with grouped-query attention).
        seed: Seed for the weight initialisation.

    Returns:
        `out_dir` as a `Path`.

    Raises:
        ValueError: If `architecture` is unknown.
    """
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    tokenizer = build_tiny_tokenizer(architecture)
    vocab = len(tokenizer)
    if architecture == "gpt2":
        config = GPT2Config(
            vocab_size=vocab,
            n_positions=1024,
            n_embd=64,
            n_layer=2,
            n_head=4,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    else:
        config = LlamaConfig(
            vocab_size=vocab,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            tie_word_embeddings=False,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    return _save(model, tokenizer, out)


def build_gpt2_small_shape(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a randomly initialised GPT-2 124M-shaped model (the DialoGPT-small shape) for benchmarks.

    The config matches GPT-2 small (n_embd 768, 12 layers, 12 heads, vocab 50257, 1024 positions). The tokenizer is
    the local tiny BPE, whose ids are a subset of the model vocabulary; sampled ids beyond the tokenizer vocabulary
    simply decode to nothing, which is fine for timing.

    Args:
        out_dir: Directory to create.
        seed: Seed for the weight initialisation.

    Returns:
        `out_dir` as a `Path`.
    """
    from transformers import AutoModelForCausalLM

    tokenizer = build_tiny_tokenizer("gpt2")
    config = GPT2Config(
        vocab_size=50257,
        n_positions=1024,
        n_embd=768,
        n_layer=12,
        n_head=12,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    return _save(model, tokenizer, Path(out_dir))
