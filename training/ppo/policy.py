"""Causal LM policy with a scalar value head, optional 4-bit NF4 base weights and LoRA adapters."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from dataclasses import asdict, fields
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model, prepare_model_for_kbit_training
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedTokenizerBase

from agents.auto_user.model_files import (
    VALUE_HEAD_NAME,
    ModelFileError,
    check_finite,
    check_model_dir,
    check_safetensors,
)
from agents.auto_user.models import POLICY_CONFIG_NAME, load_causal_lm, load_tokenizer, load_tokenizer_checked
from training.ppo.config import ModelConfig, default_lora_targets
from training.ppo.core import logprobs_from_logits

__all__ = ["POLICY_CONFIG_NAME", "VALUE_HEAD_NAME", "LoraTargetError", "PolicyWithValueHead", "load_tokenizer"]


class LoraTargetError(ValueError):
    """``model.lora_target_modules`` names a module the loaded model does not have (one line, names the key)."""


def _load_base(model_config: ModelConfig, path: str, device: torch.device | None) -> nn.Module:
    """Load the (optionally 4-bit) base causal LM from `path`, prepared for training."""
    model = load_causal_lm(path, model_config.torch_dtype, model_config.use_quantization, device,
                           double_quant=model_config.bnb_4bit_use_double_quant,
                           compute_dtype=model_config.bnb_4bit_compute_dtype)
    if model_config.use_quantization:
        _keep_4bit_differentiable(model)
        # Freezes the 4-bit base, upcasts norms/embeddings to float32 and makes input embeddings require grad.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=model_config.gradient_checkpointing)
    elif model_config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    if model_config.disable_dropout:
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
    return model


def _keep_4bit_differentiable(model: nn.Module) -> None:
    """Stop bitsandbytes from repacking 4-bit weights into its CPU inference layout.

    On AVX512-BF16 CPUs, `Linear4bit.forward` in eval mode (e.g. during `generate`) permanently converts its weight
    to a packed format whose matmul has no autograd support, which silently drops input gradients (and breaks
    in-place bias addition) in later training passes. Disabling that fast path keeps every forward differentiable.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def check_lora_targets(model: nn.Module, targets: list[str]) -> None:
    """Every LoRA target must name some module of ``model`` (peft's rule: the full name or its dotted suffix);
    peft itself only fails when none matches, so a typo among several targets would silently adapt less."""
    names = [name for name, _ in model.named_modules()]
    unmatched = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if unmatched:
        leaves = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if not list(m.children())})
        raise LoraTargetError(f"model.lora_target_modules: {unmatched} match no module of "
                              f"{model.config.model_type} (its layers: {', '.join(leaves)})")


def _lora_config(model_config: ModelConfig, model_type: str) -> LoraConfig:
    targets = model_config.lora_target_modules or default_lora_targets(model_type)
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=model_config.lora_r,
        lora_alpha=model_config.lora_alpha,
        lora_dropout=0.0 if model_config.disable_dropout else model_config.lora_dropout,
        target_modules=list(targets),
        # GPT-2's Conv1D stores weights as (in, out); peft needs to know to transpose.
        fan_in_fan_out=model_type == "gpt2",
    )


class PolicyWithValueHead(nn.Module):
    """A causal LM plus a float32 `nn.Linear(hidden, 1)` value head on the last hidden state of every token.

    The reference policy is the same network with the LoRA adapter disabled (no second copy in memory) or, for full
    fine-tuning, a frozen deep copy made at construction time.

    Args:
        pretrained_model: The (possibly peft-wrapped) causal LM.
        model_config: The configuration it was built from (recorded in checkpoints).
        tokenizer: Tokenizer saved alongside checkpoints.
        ref_model: Frozen reference model for full fine-tuning; must be None when the model is a PeftModel.
    """

    def __init__(
        self,
        pretrained_model: nn.Module,
        model_config: ModelConfig,
        tokenizer: PreTrainedTokenizerBase | None = None,
        ref_model: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.pretrained_model = pretrained_model
        self.model_config = model_config
        self.tokenizer = tokenizer
        self.is_peft = hasattr(pretrained_model, "disable_adapter")
        # bf16 autocast of the language model's training/scoring passes (None: float32); see agents/auto_user/precision.
        self.autocast_dtype: torch.dtype | None = None
        hidden = pretrained_model.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden, 1, dtype=torch.float32)
        device = next(pretrained_model.parameters()).device
        self.value_head.to(device)
        # Small init keeps the first value predictions near 0 so the clipped value loss starts in range.
        nn.init.normal_(self.value_head.weight, std=1.0 / (hidden + 1))
        nn.init.zeros_(self.value_head.bias)
        if ref_model is not None:
            ref_model.requires_grad_(False).eval()
        # Stored outside the module tree so it is not trained, saved or moved with the policy's parameters.
        self.__dict__["ref_model"] = ref_model

    @classmethod
    def from_config(cls, model_config: ModelConfig, device: torch.device | str | None = None) -> PolicyWithValueHead:
        """Build a policy from `model_config.base_model` (hub id or local dir), with quantization/LoRA as configured.

        Args:
            model_config: Model configuration.
            device: Device for the weights (4-bit weights are quantized directly on it). Defaults to CPU.

        Returns:
            The policy, with only the LoRA (or all base) weights and the value head trainable.
        """
        device = torch.device(device) if device is not None else None
        base = _load_base(model_config, model_config.base_model, device)
        tokenizer = load_tokenizer(model_config.base_model)
        if model_config.use_lora:
            lora = _lora_config(model_config, base.config.model_type)
            check_lora_targets(base, sorted(lora.target_modules))
            model = get_peft_model(base, lora)
            return cls(model, model_config, tokenizer)
        return cls(base, model_config, tokenizer, ref_model=copy.deepcopy(base))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        logits_to_keep: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and per-token values.

        Args:
            input_ids: (B, L) token ids.
            attention_mask: (B, L) 1 for real tokens.
            position_ids: (B, L) positions; defaults to `cumsum(attention_mask) - 1`, correct for left or right padding.
            logits_to_keep: Only compute logits for the last this-many columns (0 = all), skipping the vocabulary
                projection where it is not needed.

        Returns:
            logits (B, L or logits_to_keep, V) and values (B, L) in float32; `values[:, t]` estimates the return
            after token t.
        """
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        with self._autocast(input_ids.device):
            out = self.pretrained_model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                output_hidden_states=True,
                use_cache=False,
                logits_to_keep=logits_to_keep,
            )
        hidden = out.hidden_states[-1].float()  # (B, L, H), after the final layer norm
        values = self.value_head(hidden).squeeze(-1)  # (B, L), float32 value head outside autocast
        return out.logits.float(), values

    @torch.no_grad()
    def reference_logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        logits_to_keep: int = 0,
    ) -> torch.Tensor:
        """Logits (B, L or logits_to_keep, V) of the reference policy (adapter disabled, or the frozen copy)."""
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        kwargs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "logits_to_keep": logits_to_keep,
        }
        if self.is_peft:
            with self.pretrained_model.disable_adapter(), self._autocast(input_ids.device):
                return self.pretrained_model(**kwargs, use_cache=False).logits.float()
        if self.ref_model is None:
            raise RuntimeError("full fine-tuning policy has no reference model")
        with self._autocast(input_ids.device):
            return self.ref_model(**kwargs, use_cache=False).logits.float()

    @torch.no_grad()
    def adapter_is_identity(self) -> bool:
        """Whether the LoRA adapter adds exactly nothing (every ``lora_B`` is zero, as peft initialises a fresh one,
        and it has no other trainable part): the policy then computes what the reference (the adapter disabled)
        computes, e.g. at the first PPO update from a merged warm start."""
        if not self.is_peft:
            return False
        adapter = [(name, p) for name, p in self.pretrained_model.named_parameters() if p.requires_grad]
        if not adapter or any(".lora_A." not in name and ".lora_B." not in name for name, _ in adapter):
            return False
        return not any(bool(p.any()) for name, p in adapter if ".lora_B." in name)

    @contextlib.contextmanager
    def reference_generator(self) -> Iterator[nn.Module]:
        """The reference policy as a model to sample from: the LoRA adapter disabled, or the frozen copy."""
        if self.is_peft:
            with self.pretrained_model.disable_adapter():
                yield self.pretrained_model
        elif self.ref_model is None:
            raise RuntimeError("full fine-tuning policy has no reference model")
        else:
            yield self.ref_model

    @torch.no_grad()
    def sampling_copy(self, dtype: torch.dtype, reference: bool = False) -> nn.Module:
        """A plain causal LM that computes what the policy (or the reference) computes, for fast sampling.

        The LoRA adapter is folded into a copy of the base weights (peft's ``merge_and_unload``; the reference
        drops it with ``unload``), so sampling runs no adapter layers, and the copy is cast to `dtype` (bf16
        where the hardware has it: half the weight traffic per decoding step and bf16 matrix units for the
        prompt). The policy itself is not touched; the copy is stale after the next optimizer step.
        """
        if self.model_config.use_quantization:
            raise ValueError("sampling_copy: a 4-bit base cannot be merged exactly; sample from the policy itself")
        if self.is_peft:
            clone = copy.deepcopy(self.pretrained_model)
            model = clone.unload() if reference else clone.merge_and_unload()
        else:
            if reference and self.ref_model is None:
                raise RuntimeError("full fine-tuning policy has no reference model")
            model = copy.deepcopy(self.ref_model if reference else self.pretrained_model)
        return model.to(dtype).eval().requires_grad_(False)

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """bf16 autocast for the language model's passes when ``autocast_dtype`` is set (agents/auto_user/precision)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    @torch.no_grad()
    def reference_logprobs(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Reference log-probabilities (B, L-1) of each next token `input_ids[:, 1:]`."""
        logits = self.reference_logits(input_ids, attention_mask, position_ids)
        return logprobs_from_logits(logits[:, :-1], input_ids[:, 1:])

    def trainable_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """(name, parameter) pairs that PPO updates: LoRA (or all base) weights and the value head."""
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def save_pretrained(self, save_directory: str | Path) -> None:
        """Save adapter (or full weights), value head, tokenizer and `policy_config.json` to `save_directory`."""
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        self.pretrained_model.save_pretrained(out)
        head = {k: v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()}
        save_file(head, str(out / VALUE_HEAD_NAME))
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(out)
        meta = {"model_config": asdict(self.model_config), "is_peft": self.is_peft, "format_version": 1}
        (out / POLICY_CONFIG_NAME).write_text(json.dumps(meta, indent=2))

    @classmethod
    def from_pretrained(
        cls, save_directory: str | Path, device: torch.device | str | None = None
    ) -> PolicyWithValueHead:
        """Load a policy written by `save_pretrained`.

        A LoRA checkpoint reloads the base from the recorded `base_model` and attaches the adapter trainably; a full
        checkpoint loads its own weights, with the recorded `base_model` as the frozen reference.

        Args:
            save_directory: Checkpoint directory.
            device: Target device (defaults to CPU).

        Returns:
            The restored policy.
        """
        src = Path(save_directory)
        meta = check_model_dir(src)
        if meta is None:
            raise ModelFileError(f"{src} is not a trained policy directory (no {POLICY_CONFIG_NAME})")
        check_safetensors(src / VALUE_HEAD_NAME)
        known = {f.name for f in fields(ModelConfig)}
        dev = torch.device(device) if device is not None else None
        try:
            model_config = ModelConfig(**{k: v for k, v in meta["model_config"].items() if k in known})
            tokenizer = load_tokenizer_checked(str(src)) if (src / "tokenizer_config.json").exists() else None
            if meta["is_peft"]:
                base = _load_base(model_config, model_config.base_model, dev)
                model = PeftModel.from_pretrained(base, str(src), is_trainable=True)
                policy = cls(model, model_config, tokenizer)
            else:
                model = _load_base(model_config, str(src), dev)
                ref = _load_base(model_config, model_config.base_model, dev)
                policy = cls(model, model_config, tokenizer, ref_model=ref)
            head = load_file(str(src / VALUE_HEAD_NAME), device=str(next(policy.value_head.parameters()).device))
        except ModelFileError:
            raise
        except Exception as exc:  # transformers/peft raise many types; the user needs the directory and the reason
            raise ModelFileError(f"{src}: the policy could not be loaded ({type(exc).__name__}: "
                                 f"{(str(exc).strip().splitlines() or [''])[0]})") from None
        try:
            policy.value_head.load_state_dict(head)
        except RuntimeError as exc:
            raise ModelFileError(f"{src / VALUE_HEAD_NAME} does not fit the model ({str(exc).splitlines()[0]})") \
                from None
        check_finite(policy, src)
        return policy
