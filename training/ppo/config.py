"""Dataclass configurations for the PPO core: the policy model (`ModelConfig`) and the optimisation (`PPOConfig`).

The field docs below are the reference for every option, in the style of TRL's `*_config.py` files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["GPT2_LORA_TARGETS", "KL_GUARD_MEASURES", "LLAMA_LORA_TARGETS", "ModelConfig", "PPOConfig",
           "default_lora_targets"]

_DTYPES = ("float32", "bfloat16", "float16")
KL_GUARD_MEASURES = ("minibatches", "batch")  # PPOConfig.kl_guard_measure
GPT2_LORA_TARGETS: list[str] = ["c_attn", "c_proj"]
LLAMA_LORA_TARGETS: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


def default_lora_targets(model_type: str) -> list[str]:
    """LoRA target modules for a `transformers` `model_type` when `ModelConfig.lora_target_modules` is None.

    Args:
        model_type: `config.model_type` of the loaded model (e.g. "gpt2", "llama", "mistral", "qwen2").

    Returns:
        `["c_attn", "c_proj"]` for the GPT-2 family (Conv1D attention), the Llama-style attention projections otherwise.
    """
    if model_type in ("gpt2", "gpt_neo", "gptj", "gpt_bigcode"):
        return list(GPT2_LORA_TARGETS)
    return list(LLAMA_LORA_TARGETS)


def _require(cond: bool, name: str, value: object, rule: str) -> None:
    if not cond:
        raise ValueError(f"{name} must be {rule}, got {value!r}")


@dataclass
class ModelConfig:
    """How to load, adapt and sample from the policy model.

    Parameters:
        base_model (`str`, defaults to `"smollm2-135m-instruct"`):
            Hub id or local directory of any causal LM loadable by `AutoModelForCausalLM` (GPT-2/DialoGPT family with
            Conv1D layers, Llama family, ...), or an alias that `agents.auto_user.models.resolve_model` turns into a
            directory first (the default: the embedded SmolLM2-135M-Instruct, as `AutoUserConfig.model_name`).
        use_quantization (`bool`, defaults to `False`):
            Load the base weights in 4-bit NF4 with bitsandbytes (works on CPU and CUDA). Requires `use_lora`,
            because 4-bit weights cannot be trained directly.
        bnb_4bit_compute_dtype (`str`, defaults to `"float32"`):
            Dtype of the 4-bit matmuls: `"float32"`, `"bfloat16"` or `"float16"`.
        bnb_4bit_use_double_quant (`bool`, defaults to `True`):
            Also quantize the quantization constants (saves ~0.4 bit per parameter).
        use_lora (`bool`, defaults to `True`):
            Train LoRA adapters (the reference policy is then the same model with the adapter disabled). When
            `False`, all weights are trained and a frozen copy serves as the reference.
        lora_r (`int`, defaults to `16`):
            LoRA rank.
        lora_alpha (`int`, defaults to `32`):
            LoRA scaling numerator (the update is scaled by `lora_alpha / lora_r`).
        lora_dropout (`float`, defaults to `0.05`):
            Dropout on the LoRA input. Ignored while `disable_dropout` is `True`.
        lora_target_modules (`list[str]` or `None`, defaults to `None`):
            Module names to adapt. `None` picks per architecture: `["c_attn", "c_proj"]` for GPT-2,
            `["q_proj", "k_proj", "v_proj", "o_proj"]` for Llama-style models.
        max_query_length (`int`, defaults to `512`):
            Maximum prompt length in tokens; longer prompts are truncated from the LEFT, keeping the newest context.
        max_response_length (`int`, defaults to `48`):
            Maximum number of new tokens sampled per response.
        temperature (`float`, defaults to `0.7`):
            Sampling temperature. PPO's log-probabilities use the untempered model (as classic TRL 0.11) unless
            `PPOConfig.tempered_logprobs` (as TRL's later PPO trainers).
        top_p (`float`, defaults to `0.9`):
            Nucleus sampling mass; `1.0` disables it.
        top_k (`int`, defaults to `50`):
            Top-k sampling; `0` disables it.
        stop_at_newline (`bool`, defaults to `True`):
            End a response at the first token containing a newline (kept in the response), as well as at eos.
        torch_dtype (`str`, defaults to `"float32"`):
            Dtype of the non-quantized base weights. The value head is always float32.
        disable_dropout (`bool`, defaults to `True`):
            Set every dropout probability in the policy to 0, so rollout log-probabilities and the PPO forward pass
            see the same function (otherwise the ratio is noisy even before any update).
        gradient_checkpointing (`bool`, defaults to `False`):
            Recompute activations in the backward pass to save memory (slower).
        init_from (`str` or `None`, defaults to `None`):
            A trained policy directory (`final_model/` or `checkpoint-N/`) whose weights (LoRA adapter or full
            weights, and value head) start a fresh run, e.g. the cooperative policy as the start of a fuzzing run.
            The KL reference stays the base model. Ignored by `--resume`.
    """

    base_model: str = "smollm2-135m-instruct"
    use_quantization: bool = False
    bnb_4bit_compute_dtype: str = "float32"
    bnb_4bit_use_double_quant: bool = True
    use_lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = None
    max_query_length: int = 512
    max_response_length: int = 48
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    stop_at_newline: bool = True
    torch_dtype: str = "float32"
    disable_dropout: bool = True
    gradient_checkpointing: bool = False
    init_from: str | None = None

    def __post_init__(self) -> None:
        _require(isinstance(self.base_model, str) and bool(self.base_model), "base_model", self.base_model,
                 "a non-empty string")
        _require(self.bnb_4bit_compute_dtype in _DTYPES, "bnb_4bit_compute_dtype", self.bnb_4bit_compute_dtype,
                 f"one of {_DTYPES}")
        _require(self.torch_dtype in _DTYPES, "torch_dtype", self.torch_dtype, f"one of {_DTYPES}")
        _require(not self.use_quantization or self.use_lora, "use_quantization", self.use_quantization,
                 "False when use_lora is False (4-bit weights can only be trained through LoRA)")
        _require(self.lora_r > 0, "lora_r", self.lora_r, "> 0")
        _require(self.lora_alpha > 0, "lora_alpha", self.lora_alpha, "> 0")
        _require(0.0 <= self.lora_dropout < 1.0, "lora_dropout", self.lora_dropout, "in [0, 1)")
        _require(self.lora_target_modules is None or len(self.lora_target_modules) > 0, "lora_target_modules",
                 self.lora_target_modules, "None or a non-empty list")
        _require(self.max_query_length > 0, "max_query_length", self.max_query_length, "> 0")
        _require(self.max_response_length > 0, "max_response_length", self.max_response_length, "> 0")
        _require(self.temperature > 0.0, "temperature", self.temperature, "> 0")
        _require(0.0 < self.top_p <= 1.0, "top_p", self.top_p, "in (0, 1]")
        _require(self.top_k >= 0, "top_k", self.top_k, ">= 0")


@dataclass
class PPOConfig:
    """Optimisation settings for `PPOTrainer.step` (names and defaults follow classic TRL `PPOConfig`).

    Parameters:
        learning_rate (`float`, defaults to `1.41e-5`):
            AdamW learning rate for the trainable parameters (LoRA or all weights, plus the value head).
        weight_decay (`float`, defaults to `0.0`):
            AdamW weight decay.
        mini_batch_size (`int`, defaults to `4`):
            Samples per forward/backward pass.
        gradient_accumulation_steps (`int`, defaults to `1`):
            Mini-batches accumulated per optimizer step.
        ppo_epochs (`int`, defaults to `4`):
            Passes over the (shuffled) batch per `step`.
        gamma (`float`, defaults to `1.0`):
            Discount factor.
        lam (`float`, defaults to `0.95`):
            GAE lambda.
        cliprange (`float`, defaults to `0.2`):
            PPO ratio clip range.
        cliprange_value (`float`, defaults to `0.2`):
            Clip range of the value prediction around the rollout value.
        vf_coef (`float`, defaults to `0.1`):
            Weight of the value loss in the total loss.
        entropy_coef (`float`, defaults to `0.0`):
            Weight of the entropy bonus (subtracted from the loss).
        max_grad_norm (`float` or `None`, defaults to `1.0`):
            Gradient clipping norm; `None` disables clipping.
        adaptive_kl (`bool`, defaults to `True`):
            Adapt the KL coefficient towards `kl_target` (Ziegler et al. 2019); otherwise keep `init_kl_coef`.
        init_kl_coef (`float`, defaults to `0.2`):
            Initial (or fixed) coefficient of the per-token KL penalty against the reference policy.
        kl_target (`float`, defaults to `6.0`):
            Target per-sequence KL (nats, summed over response tokens) for the adaptive controller.
        kl_horizon (`int`, defaults to `10000`):
            Horizon (in samples) of the adaptive controller.
        target_kl (`float` or `None`, defaults to `0.1`):
            Early stop: after each epoch, if the mean per-token approximate KL between the pre-update and the
            current policy on the batch exceeds this, the remaining epochs are skipped. `None` disables.
        max_kl (`float` or `None`, defaults to `1.0`):
            Hard limit: if that KL exceeds this after any epoch, the whole update is rejected and the trainable
            weights, value head and optimizer state are restored exactly. `None` disables.
        whiten_advantages (`bool`, defaults to `True`):
            Normalise advantages to zero mean and unit variance over the batch's response tokens.
        seed (`int` or `None`, defaults to `None`):
            Seed for sampling in `generate` and for mini-batch shuffling. `None`: the training run's top-level
            `seed` (0 for a trainer built on its own).
        tempered_logprobs (`bool`, defaults to `False`):
            Score responses under the distribution they were sampled from: every pass (old log-probs, reference,
            update, KL check) divides the logits by the sampling temperature (`ModelConfig.temperature`) before
            the log-softmax, as TRL's PPO trainers do. `False`: the untempered model (this project's runs up to
            round 6), whose log-probs are not those of the tempered samples.
        group_by_length (`bool`, defaults to `False`):
            Put samples of similar length in the same mini-batch, as transformers' `group_by_length`: each epoch's
            shuffled order is cut into windows of 16 optimizer steps, each window is sorted by length and cut into
            optimizer steps, and the steps are shuffled. Mini-batches then pad to neighbours of their own length
            (on the main recipe's states, random mini-batches of 4 are about 22 % padding, grouped ones about 1 %),
            at the price of less random mini-batch composition. `False`: uniform shuffling, as CleanRL.
        reuse_sampling_pass (`bool`, defaults to `True`):
            Take the pre-update log-probs and values of responses the trainer sampled itself from the sampling
            pass (`PPOTrainer.generate` keeps them), instead of a no-grad pass over the batch: exact up to
            floating-point noise when the weights have not changed since sampling and sampling computes what the
            update computes (float32 sampling model, no autocast, no dropout). Other samples (replayed ones,
            responses the trainer did not sample, or any sample when sampling runs in bf16) still get the pass.
        kl_guard_measure (`str`, defaults to `"minibatches"`):
            Where the update guard's KL comes from. `"minibatches"`: the KL the epoch's own mini-batch forwards
            read (each before its optimizer step, token-weighted over the epoch: the approximate KL of CleanRL and
            Stable-Baselines3), so the guard costs no pass; it lags by the epoch's last optimizer step, and on
            the main recipe's batch it read 0.07 where a pass after the epoch read 0.36. `"batch"`: a no-grad pass
            over the whole batch after each epoch, at the weights the epoch left (exact, one forward pass per
            epoch). Either way, when one optimizer step holds the whole batch, the next epoch's forward is the
            exact measurement and is used instead.
    """

    learning_rate: float = 1.41e-5
    weight_decay: float = 0.0
    mini_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    ppo_epochs: int = 4
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    entropy_coef: float = 0.0
    max_grad_norm: float | None = 1.0
    adaptive_kl: bool = True
    init_kl_coef: float = 0.2
    kl_target: float = 6.0
    kl_horizon: int = 10000
    target_kl: float | None = 0.1
    max_kl: float | None = 1.0
    whiten_advantages: bool = True
    seed: int | None = None
    tempered_logprobs: bool = False
    group_by_length: bool = False
    reuse_sampling_pass: bool = True
    kl_guard_measure: Literal["minibatches", "batch"] = "minibatches"

    def __post_init__(self) -> None:
        _require(self.learning_rate > 0 and math.isfinite(self.learning_rate), "learning_rate", self.learning_rate,
                 "a finite number > 0")
        _require(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _require(self.mini_batch_size > 0, "mini_batch_size", self.mini_batch_size, "> 0")
        _require(self.gradient_accumulation_steps > 0, "gradient_accumulation_steps",
                 self.gradient_accumulation_steps, "> 0")
        _require(self.ppo_epochs > 0, "ppo_epochs", self.ppo_epochs, "> 0")
        _require(0.0 <= self.gamma <= 1.0, "gamma", self.gamma, "in [0, 1]")
        _require(0.0 <= self.lam <= 1.0, "lam", self.lam, "in [0, 1]")
        _require(self.cliprange > 0, "cliprange", self.cliprange, "> 0")
        _require(self.cliprange_value > 0, "cliprange_value", self.cliprange_value, "> 0")
        _require(self.vf_coef >= 0, "vf_coef", self.vf_coef, ">= 0")
        _require(self.entropy_coef >= 0, "entropy_coef", self.entropy_coef, ">= 0")
        _require(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm,
                 "None or > 0")
        _require(self.init_kl_coef >= 0, "init_kl_coef", self.init_kl_coef, ">= 0")
        _require(self.kl_target > 0, "kl_target", self.kl_target, "> 0")
        _require(self.kl_horizon > 0, "kl_horizon", self.kl_horizon, "> 0")
        _require(self.target_kl is None or self.target_kl > 0, "target_kl", self.target_kl, "None or > 0")
        _require(self.max_kl is None or self.max_kl > 0, "max_kl", self.max_kl, "None or > 0")
        _require(self.kl_guard_measure in KL_GUARD_MEASURES, "kl_guard_measure", self.kl_guard_measure,
                 f"one of {', '.join(KL_GUARD_MEASURES)}")
        if self.target_kl is not None and self.max_kl is not None:
            _require(self.max_kl >= self.target_kl, "max_kl", self.max_kl, f">= target_kl ({self.target_kl})")
