"""Checks on a model directory before and after loading it, each failing with one line that names the file.

A trained policy directory (``final_model/`` or ``checkpoint-N/``) holds ``policy_config.json`` (the recorded model
settings, with ``base_model``), the LoRA adapter (``adapter_config.json`` + ``adapter_model.safetensors``) or full
weights, ``value_head.safetensors`` and tokenizer files. A plain model directory holds ``config.json`` and weights.

The manifest: the file ``COMPLETE`` that training writes last into a directory lists every other file with its size
and SHA-256 (JSON ``{"format": 1, "files": {name: {"size": n, "sha256": hex}}}``), so it vouches for exactly the
bytes present: a deleted, truncated or bit-flipped file fails ``verify_manifest``. Older checkpoints wrote only the
epoch number there; those pass when their required files are present.

Weights that load but hold NaN, inf or an absurd magnitude (a flipped exponent bit) are caught by ``check_finite``
right after loading, before anything is sampled.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch

MANIFEST_NAME = "COMPLETE"
POLICY_CONFIG_NAME = "policy_config.json"  # written beside a trained policy's adapter (training.ppo.policy)
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
VALUE_HEAD_NAME = "value_head.safetensors"
WEIGHT_SUFFIXES = (".safetensors", ".bin")
TOKENIZER_JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json")


class ModelUnavailableError(RuntimeError):
    """The configured model cannot be loaded here; the message (one line) says how to fix it."""


class ModelFileError(ModelUnavailableError):
    """A model directory or file that cannot be used; ``str()`` is one line naming the file and the problem."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``directory/COMPLETE`` listing every other file (relative name, size, SHA-256); call it last."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST_NAME):
        files[path.relative_to(directory).as_posix()] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    (directory / MANIFEST_NAME).write_text(json.dumps({"format": 1, **(extra or {}), "files": files}))


def verify_manifest(directory: Path, legacy_required: tuple[str, ...] = ()) -> str | None:
    """``None`` when ``directory/COMPLETE`` vouches for the files present, else one line saying what is wrong.

    Args:
        directory: a directory with a ``COMPLETE`` file.
        legacy_required: files that must exist when ``COMPLETE`` is an old-style marker without a manifest.
    """
    marker = directory / MANIFEST_NAME
    if not marker.is_file():
        return f"{marker} is missing (the save did not finish)"
    try:
        manifest = json.loads(marker.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        if isinstance(manifest, int):  # an older checkpoint: COMPLETE held only the epoch number
            missing = [name for name in legacy_required if not (directory / name).is_file()]
            return f"{directory / missing[0]} is missing" if missing else None
        return f"{marker} is not a valid manifest"
    for name, entry in manifest["files"].items():
        path = directory / name
        if not _inside(directory, path):
            return f"{marker} lists {name!r}, which is outside {directory}"
        if not path.is_file():
            return f"{path} is missing"
        if not isinstance(entry, dict):
            return f"{marker} has no size for {name}"
        size = path.stat().st_size
        if size != entry.get("size"):
            return f"{path} has {size} bytes, the manifest says {entry.get('size')} (truncated or replaced)"
        if "sha256" in entry and _sha256(path) != entry["sha256"]:
            return f"{path} does not match its checksum in the manifest (corrupted)"
    return None


def _inside(directory: Path, path: Path) -> bool:
    """Whether ``path`` (after resolving ``..`` and symlinks) lies inside ``directory``."""
    return path.resolve().is_relative_to(directory.resolve())


def confined(directory: Path, name: Any, what: str) -> Path:
    """``directory/name`` for a plain relative file name that stays inside ``directory``; ModelFileError otherwise."""
    if not isinstance(name, str) or not name or Path(name).is_absolute():
        raise ModelFileError(f"{directory}: {what} must be a file name inside the directory, got {name!r}")
    path = directory / name
    if not _inside(directory, path):
        raise ModelFileError(f"{directory}: {what} {name!r} points outside the directory")
    return path


def read_json(path: Path) -> Any:
    """JSON from ``path``, or ModelFileError naming the file (missing, unreadable or not JSON)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{path} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({str(exc).splitlines()[0]})") from None
    except OSError as exc:
        raise ModelFileError(f"{path} cannot be read ({exc.strerror or exc})") from None


def check_safetensors(path: Path) -> None:
    """Open the safetensors header and check the file is as long as the header says (truncation, bit rot)."""
    from safetensors import safe_open

    if not path.is_file():
        raise ModelFileError(f"{path} is missing")
    try:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                handle.get_slice(key)
    except Exception as exc:  # safetensors raises its own SafetensorError for every malformed file
        raise ModelFileError(f"{path} is not a readable safetensors file ({str(exc).splitlines()[0]})") from None


def read_policy_config(directory: Path) -> dict[str, Any]:
    """``policy_config.json`` of a trained policy, with the keys loading needs checked."""
    path = directory / POLICY_CONFIG_NAME
    meta = read_json(path)
    if not isinstance(meta, dict) or not isinstance(meta.get("model_config"), dict) \
            or not isinstance(meta.get("is_peft"), bool):
        raise ModelFileError(f"{path} lacks 'model_config' (a mapping) or 'is_peft' (true/false)")
    base = meta["model_config"].get("base_model")
    if not isinstance(base, str) or not base:
        raise ModelFileError(f"{path}: model_config.base_model must be a model directory or hub id, got {base!r}")
    return meta


def check_model_dir(directory: Path) -> dict[str, Any] | None:
    """Check a model directory's files before loading; the policy config for a trained policy, else ``None``.

    Raises:
        ModelFileError: one line naming the file and what is wrong.
    """
    if not directory.exists():
        raise ModelFileError(f"{directory}: no such model directory")
    if not directory.is_dir():
        raise ModelFileError(f"{directory} is a file, not a model directory")
    if (directory / MANIFEST_NAME).exists():
        problem = verify_manifest(directory, legacy_required=(POLICY_CONFIG_NAME,))
        if problem:
            raise ModelFileError(problem)
    for name in TOKENIZER_JSON_FILES:
        if (directory / name).exists():
            read_json(directory / name)
    if not (directory / POLICY_CONFIG_NAME).exists():
        if not (directory / "config.json").exists():
            raise ModelFileError(f"{directory} is not a model directory (no {POLICY_CONFIG_NAME} or config.json)")
        read_json(directory / "config.json")
        for path in sorted(directory.glob("*.safetensors")):
            check_safetensors(path)
        return None
    meta = read_policy_config(directory)
    if meta["is_peft"]:
        read_json(directory / ADAPTER_CONFIG_NAME)
        check_safetensors(directory / ADAPTER_WEIGHTS_NAME)
        base = meta["model_config"]["base_model"]
        looks_local = base.startswith((".", "/", "~")) or base.count("/") > 1
        if looks_local and not Path(base).expanduser().is_dir():
            raise ModelFileError(f"{directory / POLICY_CONFIG_NAME}: base model {base} (model_config.base_model) "
                                 f"does not exist; it was moved or deleted; put it back or edit that key")
    else:
        weights = [p for p in directory.iterdir() if p.name.endswith(WEIGHT_SUFFIXES) and p.name != VALUE_HEAD_NAME]
        if not weights:
            raise ModelFileError(f"{directory}: policy_config.json says full weights but no weight file is there")
        for path in weights:
            if path.suffix == ".safetensors":
                check_safetensors(path)
    return meta


# No trained weight comes near this; a flipped high exponent bit multiplies a weight by 2**64 or 2**128, which
# loads as a finite number and then overflows the activations (NaN probabilities at the first sample).
MAX_WEIGHT_MAGNITUDE = 1e6


def check_finite(model: torch.nn.Module, directory: Path | str) -> None:
    """Raise ModelFileError when a loaded weight holds NaN, inf or a magnitude above ``MAX_WEIGHT_MAGNITUDE`` (a
    corrupted file), naming the tensor."""
    for name, tensor in model.named_parameters():
        if not tensor.is_floating_point():
            continue
        largest = float(tensor.detach().abs().max()) if tensor.numel() else 0.0
        if math.isfinite(largest) and largest <= MAX_WEIGHT_MAGNITUDE:
            continue
        source = (ADAPTER_WEIGHTS_NAME if "lora_" in name else VALUE_HEAD_NAME if name.startswith("value_head.")
                  else "the weight files")
        what = "NaN or inf" if not math.isfinite(largest) else f"{largest:.3g}, far beyond any trained weight"
        raise ModelFileError(f"{directory}: weight {name} holds {what} (corrupted {source})")
