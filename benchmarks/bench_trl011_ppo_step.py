"""Baseline: time the classic TRL 0.11 `PPOTrainer.step` on the shapes of `bench_ppo_step.py`; prints ONE JSON line.

This script is standalone: it does NOT import the project's packages, because TRL 0.11 needs transformers 4.x while
the project runs on a newer stack. Run it from its own virtual environment:

    python3.11 -m venv /tmp/trl011-venv
    # torch first, from the local CPU wheel (an unpinned torch would pull GBs of CUDA wheels):
    /tmp/trl011-venv/bin/pip install /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
    # (elsewhere: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)
    /tmp/trl011-venv/bin/pip install "trl==0.11.4" "transformers==4.46.3" "peft==0.13.2" "accelerate<1.1" rich

Example (same flags as bench_ppo_step.py):

    /tmp/trl011-venv/bin/python benchmarks/bench_trl011_ppo_step.py --model dialogpt-small-shape --lora \
        --batch 8 --query-len 128 --response-len 32 --steps 2 --threads 2

What is matched with `bench_ppo_step.py` / `training.ppo`, so both time the same work:
  * model: a seeded random GPT-2 (tiny: vocab 768, n_embd 64, 2 layers, 4 heads; dialogpt-small-shape: vocab 50257,
    n_embd 768, 12 layers, 12 heads), dropout 0 everywhere (the project disables dropout by default; pass
    --keep-dropout for TRL's stock 0.1 on GPT-2 small and the value head);
  * LoRA: r=16, alpha=32, dropout 0, target c_attn/c_proj, fan_in_fan_out (GPT-2 Conv1D); the reference policy is
    the same model with the adapter disabled (TRL does this itself for peft models);
  * PPO: batch_size=B, mini_batch_size=min(4, B), ppo_epochs=4, learning_rate=1.41e-5, max_grad_norm=1.0, and the
    TRL defaults that equal ours (adaptive KL 0.2 -> 6.0 over 10000, gamma 1, lam 0.95, cliprange 0.2/0.2,
    vf_coef 0.1); TRL's early_stopping stays off (its default);
  * data: queries of exactly Q tokens and responses of exactly R tokens (random ids, never the pad/eos id 0), one
    scalar score each; a fresh batch per step;
  * timing: one untimed warm-up step, then the mean wall time of `ppo_trainer.step` over --steps steps.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
import warnings

import torch
import transformers
import trl
from peft import LoraConfig, TaskType
from tokenizers import Tokenizer, models
from transformers import AutoModelForCausalLM, GPT2Config, PreTrainedTokenizerFast
from trl import AutoModelForCausalLMWithValueHead, PPOConfig, PPOTrainer

TINY_VOCAB = 768  # len(agents.auto_user.tiny_models.build_tiny_tokenizer("gpt2")); pad = eos = bos = id 0


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def _tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over TINY_VOCAB ids; TRL's step only uses it to pad and for pad_token_id."""
    vocab = {"<|endoftext|>": 0, **{f"t{i}": i for i in range(1, TINY_VOCAB)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=1024,
    )


def _model_config(name: str, keep_dropout: bool) -> GPT2Config:
    ids = {"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
    if name == "tiny":
        return GPT2Config(vocab_size=TINY_VOCAB, n_positions=1024, n_embd=64, n_layer=2, n_head=4,
                          resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids)
    p = 0.1 if keep_dropout else 0.0
    return GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                      resid_pdrop=p, embd_pdrop=p, attn_pdrop=p, **ids)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "dialogpt-small-shape"], default="tiny")
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters (default: full fine-tuning)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--mini-batch", type=int, default=4)
    parser.add_argument("--query-len", type=int, default=128)
    parser.add_argument("--response-len", type=int, default=32)
    parser.add_argument("--ppo-epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="measured steps (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--keep-dropout", action="store_true",
                        help="keep dropout 0.1 (GPT-2 small layers and TRL's value head) instead of 0")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    config = _model_config(args.model, args.keep_dropout)
    base = AutoModelForCausalLM.from_config(config)
    peft_config = None
    if args.lora:
        peft_config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=16, lora_alpha=32, lora_dropout=0.0,
                                 target_modules=["c_attn", "c_proj"], fan_in_fan_out=True)
    model = AutoModelForCausalLMWithValueHead.from_pretrained(
        base, peft_config=peft_config, summary_dropout_prob=0.1 if args.keep_dropout else 0.0
    )
    tokenizer = _tokenizer()
    ppo_config = PPOConfig(
        batch_size=args.batch,
        mini_batch_size=min(args.mini_batch, args.batch),
        ppo_epochs=args.ppo_epochs,
        learning_rate=1.41e-5,
        max_grad_norm=1.0,
        seed=args.seed,
        exp_name="bench_trl011_ppo_step",
    )
    ppo_trainer = PPOTrainer(ppo_config, model, ref_model=None, tokenizer=tokenizer)
    build_s = time.perf_counter() - t0

    gen = torch.Generator().manual_seed(args.seed)
    vocab = config.vocab_size
    step_s = []
    for i in range(args.steps + 1):  # step 0 is warm-up
        queries = [torch.randint(1, TINY_VOCAB, (args.query_len,), generator=gen) for _ in range(args.batch)]
        responses = [torch.randint(1, vocab, (args.response_len,), generator=gen) for _ in range(args.batch)]
        scores = [torch.tensor(float(r.float().mean() % 2)) for r in responses]
        t = time.perf_counter()
        ppo_trainer.step(queries, responses, scores)
        elapsed = time.perf_counter() - t
        if i > 0:
            step_s.append(elapsed)

    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_total = sum(p.numel() for p in model.parameters())
    mean_step = sum(step_s) / len(step_s)
    result = {
        "bench": "trl011_ppo_step",
        "model": args.model,
        "lora": args.lora,
        "batch": args.batch,
        "mini_batch": ppo_config.mini_batch_size,
        "query_len": args.query_len,
        "response_len": args.response_len,
        "ppo_epochs": args.ppo_epochs,
        "steps": args.steps,
        "sec_per_ppo_step": round(mean_step, 4),
        "step_times": [round(s, 4) for s in step_s],
        "step_samples_per_sec": round(args.batch / mean_step, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "trainable_params": n_trainable,
        "total_params": n_total,
        "dropout": args.keep_dropout,
        "build_s": round(build_s, 2),
        "trl_version": trl.__version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
