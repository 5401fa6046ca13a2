"""The training configuration: one YAML file, one typed dataclass per section (field docs are the reference).

Sections: ``environment`` (with ``environment.agent`` and ``environment.reward``), ``model``, ``ppo``, ``buffer``,
``fuzzing``, ``logging``, ``evaluation``, ``hardware``, ``warm_start`` (``training/warm_start_config.py``), plus the
top-level ``mode`` (cooperative or adversarial: which reward the environment pays) and ``seed`` (every other seed
derives from it unless set explicitly). Unknown keys,
wrong types, out-of-range values and missing files raise :class:`ConfigError` with one line naming the key, before
any model loads; so does a key that was renamed (``RENAMED``), naming its new key.

A config file may extend another (``extends: <path>``, relative to the extending file) and state only what differs:
the child wins, mappings merge key by key, lists and scalars replace; ``--set`` applies last. A run writes the full
resolved config (``save_config``), so its output directory reproduces it without the chain of files.

Checks that hold for every key live here, in the loading functions: the file must be a text YAML mapping without
duplicate keys; a parent must exist and no file may extend itself through its parents; ``--set`` values must be valid
YAML; numbers must be finite; seeds (``seed``, ``*_seed``) must fit every RNG (``SEED_RANGE``); files the config names
must be what they claim (a SQLite database, a JSONL of objectives) and directories it writes to must not be files.
Checks on one field live in its dataclass's ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from environment.config import EnvironmentConfig
from environment.personas import PERSONAS
from training.ppo.config import ModelConfig, PPOConfig
from training.warm_start_config import WarmStartConfig


class ConfigError(ValueError):
    """A bad configuration value; ``str()`` is one line that names the key."""


# Old key -> new key (issue 21). The environment layer keeps ``personas`` and ``reward.objective`` (the training
# config sets them from ``fuzzing.personas`` and ``mode``), so without this table they would still load, and the
# others would be "unknown key" without a word on where they went.
RENAMED = {
    "ppo.max_epochs": "ppo.iterations",
    "environment.reward.objective": "mode",
    "environment.personas": "fuzzing.personas",
    "buffer.novelty_bonus": "fuzzing.novelty_bonus",
    "buffer.novelty_memory": "fuzzing.novelty_memory",
}
MODES = ("cooperative", "adversarial")
SEED_RANGE = (0, 2**31 - 1)  # numpy's legacy seeding takes < 2**32; process indices are added to the seed
_SQLITE_HEADER = b"SQLite format 3\x00"


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects a key given twice in one mapping (PyYAML silently keeps the last)."""


def _no_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise ConfigError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)


@dataclass
class PolicyModelConfig(ModelConfig):
    """``model`` section: `ModelConfig` plus where converted/built model aliases are cached.

    Attributes:
        model_cache_dir: cache for alias models (``smollm2-135m-instruct`` converted from GGUF, ``tiny-*``);
            ``None`` uses ``$AUTO_USER_MODEL_CACHE`` or ``~/.cache/auto-user-ppo/models``.
    """

    model_cache_dir: str | None = None


@dataclass
class TrainingPPOConfig(PPOConfig):
    """``ppo`` section: `PPOConfig` plus the outer training loop.

    Attributes:
        iterations: training iterations, each one rollout phase (``rollout_episodes`` conversations) then one PPO
            update (``PPOTrainer.step``, ``ppo_epochs`` passes over the batch). Logs, ``training_metrics.json``
            (its ``epoch`` key) and checkpoints (``checkpoint-N``) number iterations as "epoch N", as committed
            results and the tools that read them do; "epoch" below means one iteration.
        rollout_episodes: conversations collected per epoch (per process).
        num_envs: environments stepped concurrently; the policy generates for all of them in one batch per turn.
        turn_gamma: discount between user turns for turn-level credit (see ``training/credit.py``).
        max_train_minutes: wall-clock budget: stop (saving as usual) after the epoch when one more epoch, as long
            as the mean epoch so far, would end past it; ``None`` trains all ``iterations``.
        max_failed_epochs: stop (saving a checkpoint, exit code 3) after this many consecutive epochs without a
            usable episode, i.e. every conversation ended in an agent backend error; such an epoch logs its errors
            and skips the update. 0 never stops.
    """

    iterations: int = 10
    rollout_episodes: int = 8
    num_envs: int = 4
    turn_gamma: float = 0.9
    max_train_minutes: float | None = None
    max_failed_epochs: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_failed_epochs < 0:
            raise ValueError(f"max_failed_epochs must be >= 0 (0: never stop), got {self.max_failed_epochs}")
        if self.max_train_minutes is not None and self.max_train_minutes <= 0:
            raise ValueError(f"max_train_minutes must be > 0 or null, got {self.max_train_minutes}")
        for name in ("iterations", "rollout_episodes", "num_envs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.turn_gamma <= 1.0:
            raise ValueError(f"turn_gamma must be in [0, 1], got {self.turn_gamma}")


@dataclass
class BufferConfig:
    """``buffer`` section: the dual replay buffers.

    Attributes:
        use_buffer: replay past samples next to fresh ones.
        buffer_size: capacity of each buffer, in turn samples (oldest evicted first).
        adversarial_ratio: share of the replayed samples drawn from the adversarial buffer (conversations with a
            hallucination); the rest come from the normal buffer (verified conversations).
        replay_fraction: replayed samples per PPO batch, as a fraction of the fresh samples.
    """

    use_buffer: bool = True
    buffer_size: int = 512
    adversarial_ratio: float = 0.3
    replay_fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {self.buffer_size}")
        if not 0.0 <= self.adversarial_ratio <= 1.0:
            raise ValueError(f"adversarial_ratio must be in [0, 1], got {self.adversarial_ratio}")
        if not 0.0 <= self.replay_fraction <= 1.0:
            raise ValueError(f"replay_fraction must be in [0, 1], got {self.replay_fraction}")


@dataclass
class FuzzingConfig:
    """``fuzzing`` section: what only fuzzing runs (``mode: adversarial``) use; the defaults turn it all off.

    Attributes:
        personas: traveller personas sampled per episode (``environment/personas.py``: hurried, indecisive,
            bargain_hunter, flight_number, relaxed); the persona's line follows the objective in the state, and
            ``evaluate.py --model scripted`` plays each one's hand-written attacker. Empty: none.
        novelty_bonus: weight of the bonus added to the terminal reward of an episode whose exposed hallucination is
            of a kind, or came from an attack, not already in the archive of exposing conversations
            (``training/novelty.py``; 0: off).
        novelty_memory: triggering messages remembered per hallucination kind for the novelty bonus.
    """

    personas: list[str] = field(default_factory=list)
    novelty_bonus: float = 0.0
    novelty_memory: int = 64

    def __post_init__(self) -> None:
        unknown = sorted(set(self.personas) - set(PERSONAS))
        if unknown:
            raise ValueError(f"personas: unknown persona(s) {', '.join(unknown)}; known: {', '.join(PERSONAS)}")
        if self.novelty_bonus < 0.0:
            raise ValueError(f"novelty_bonus must be >= 0, got {self.novelty_bonus}")
        if self.novelty_memory < 1:
            raise ValueError(f"novelty_memory must be >= 1, got {self.novelty_memory}")


@dataclass
class LoggingConfig:
    """``logging`` section.

    Attributes:
        output_dir: checkpoints, final model, metrics, logs and plots.
        tensorboard_dir: TensorBoard event files.
        save_every: checkpoint every N epochs (and always after the last one).
        keep_checkpoints: newest checkpoints kept (older ones deleted); 0 keeps all.
        sample_conversations: conversations per epoch written to the log and to TensorBoard's text tab (exposed
            hallucinations marked); 0 writes none.
    """

    output_dir: str = "ppo_training_output"
    tensorboard_dir: str = "./tensorboard_logs"
    save_every: int = 1
    keep_checkpoints: int = 3
    sample_conversations: int = 1

    def __post_init__(self) -> None:
        if self.save_every < 1:
            raise ValueError(f"save_every must be >= 1, got {self.save_every}")
        if self.keep_checkpoints < 0:
            raise ValueError(f"keep_checkpoints must be >= 0, got {self.keep_checkpoints}")
        if self.sample_conversations < 0:
            raise ValueError(f"sample_conversations must be >= 0, got {self.sample_conversations}")


@dataclass
class EvaluationConfig:
    """``evaluation`` section.

    Attributes:
        eval_every: evaluate on the held-out objectives every N epochs (0: never during training).
        eval_objectives: held-out objectives evaluated (one episode each).
        eval_objectives_file: optional JSONL of evaluation objectives (replaces the held-out split).
        final_comparison: at the end of the run, the base model (adapter disabled) and the trained policy each play
            one episode on this many held-out objectives (the same objectives and seeds); a table is printed and
            written to ``final_evaluation.md`` / ``.json`` in the output directory (0: skip).
        num_envs: environments an evaluation steps concurrently, the policy generating for all of them in one
            batch per turn (0: ``ppo.num_envs``). More share each decoding step; the states' prefill does not
            shrink, so the gain is small (the base model's 24 held-out episodes: 249.5 s with 6, 217.0 s with 24
            on a 2-core CPU, ``benchmarks/bench_evaluation.py``). The sampled episodes depend on it (which states
            share a batch), their distribution does not.
    """

    eval_every: int = 0
    eval_objectives: int = 8
    eval_objectives_file: str | None = None
    final_comparison: int = 0
    num_envs: int = 0

    def __post_init__(self) -> None:
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")
        if self.eval_objectives < 1:
            raise ValueError(f"eval_objectives must be >= 1, got {self.eval_objectives}")
        if self.final_comparison < 0:
            raise ValueError(f"final_comparison must be >= 0, got {self.final_comparison}")
        if self.num_envs < 0:
            raise ValueError(f"num_envs must be >= 0 (0: ppo.num_envs), got {self.num_envs}")


@dataclass
class HardwareConfig:
    """``hardware`` section.

    Attributes:
        mixed_precision: "auto" (bf16 where the CPU has AMX or AVX512-BF16, or the GPU supports bf16; float32
            elsewhere), "bf16" or "no" (float32). bf16 applies to the policy's forward/backward passes in the PPO
            update; the value head, log-softmax, advantages, KL and losses stay float32 (sampling: see ``sampling``).
        sampling: what the rollouts sample from. "merged_bf16" / "merged_float32": a copy of the policy with the
            LoRA adapter folded into its weights (no adapter layers to run), in that precision, re-made after each
            update; "adapter": the training model itself (float32, adapter layers); "auto": a merged copy in the
            precision measured fastest where ``mixed_precision`` resolves to bf16 (agents/auto_user/precision) and in
            float32 elsewhere; the training model when the base is 4-bit (it cannot be merged exactly).
        cpu: force CPU even when CUDA is available.
        num_threads: torch intra-op threads (0: torch's default).
    """

    mixed_precision: Literal["auto", "no", "bf16"] = "auto"
    sampling: Literal["auto", "merged_bf16", "merged_float32", "adapter"] = "auto"
    cpu: bool = False
    num_threads: int = 0

    def __post_init__(self) -> None:
        if self.mixed_precision not in ("auto", "no", "bf16"):
            raise ValueError(f"mixed_precision must be 'auto', 'no' or 'bf16', got {self.mixed_precision!r}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0 (0: torch's default), got {self.num_threads}")


@dataclass
class TrainingConfig:
    """The whole run.

    Attributes:
        mode: "cooperative" (reward verified bookings that meet the objective) or "adversarial" (fuzzing: reward
            conversations that expose agent hallucinations; naturalness still counts). The environment's
            ``reward.objective``, which this sets, as ``fuzzing.personas`` sets ``environment.personas``: the
            environment layer keeps its own names, and a config names neither (``RENAMED``).
        seed: the run's seed. ``environment.seed`` (episode sampling, the booking agent's per-episode seeds) and
            ``ppo.seed`` (policy sampling, mini-batch order) derive from it unless set explicitly, as do the replay
            buffers' draws and torch/numpy/python RNGs. The objectives and their train/held-out split are data, fixed
            by ``environment.objectives_seed``, so runs with different seeds are evaluated on the same held-out set.
    """

    mode: Literal["cooperative", "adversarial"] = "cooperative"
    environment: EnvironmentConfig = field(default_factory=EnvironmentConfig)
    model: PolicyModelConfig = field(default_factory=PolicyModelConfig)
    ppo: TrainingPPOConfig = field(default_factory=TrainingPPOConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    fuzzing: FuzzingConfig = field(default_factory=FuzzingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be 'cooperative' or 'adversarial', got {self.mode!r}")
        # The environment reads its own fields; these two are the training config's to set.
        self.environment.personas = list(self.fuzzing.personas)
        self.environment.reward.objective = self.mode
        if self.model.use_quantization and self.hardware.sampling.startswith("merged"):
            raise ValueError(f"hardware: sampling {self.hardware.sampling!r} needs an unquantized base "
                             "(model.use_quantization is true): use 'auto' or 'adapter'")
        if self.warm_start.enabled and self.mode == "adversarial" and not self.fuzzing.personas:
            raise ValueError("warm_start: enabled in adversarial mode needs fuzzing.personas (the persona "
                             "demonstrators make the attack moves; cooperative ones make none)")
        if self.environment.seed is None:
            self.environment.seed = self.seed
        if self.ppo.seed is None:
            self.ppo.seed = self.seed
        if self.warm_start.seed is None:
            self.warm_start.seed = self.seed
        if self.warm_start.mixed_precision is None:
            self.warm_start.mixed_precision = self.hardware.mixed_precision


class _OutOfRange(ConfigError):
    """A value of the right type outside its range."""


def _check_type(value: Any, annotation: Any, key: str) -> Any:
    """Return ``value`` converted to ``annotation`` where lossless (int -> float), else raise ConfigError."""
    if isinstance(value, float) and not math.isfinite(value):  # .inf/.nan pass every type check yet break training
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(value, option, key)
            except _OutOfRange:
                raise  # the type fits; the value does not: say so, not "expected int or null"
            except ConfigError:
                continue
        names = " or ".join("null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
        raise ConfigError(f"{key}: expected {names}, got {type(value).__name__} {value!r}")
    if origin is Literal:
        if value not in typing.get_args(annotation):
            raise ConfigError(f"{key}: expected one of {list(typing.get_args(annotation))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item_type,) = typing.get_args(annotation) or (Any,)
        return [_check_type(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        key_type, item_type = typing.get_args(annotation) or (Any, Any)
        return {_check_type(name, key_type, f"{key} key"): _check_type(item, item_type, f"{key}.{name}")
                for name, item in value.items()}
    if annotation is Any:
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if annotation is int or annotation is bool or annotation is str:
        if type(value) is not annotation:
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {type(value).__name__} {value!r}")
        if annotation is int and key.rsplit(".", 1)[-1].endswith("seed") and \
                not SEED_RANGE[0] <= value <= SEED_RANGE[1]:
            raise _OutOfRange(f"{key}: a seed must be in [{SEED_RANGE[0]}, {SEED_RANGE[1]}], got {value}")
        return value
    raise ConfigError(f"{key}: unsupported type {annotation}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in data.items():
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            kwargs[key] = _build(annotation, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _check_type(value, annotation, f"{prefix}{key}")
    try:
        return cls(**kwargs)
    except ValueError as exc:  # __post_init__ range checks name the field
        message = str(exc).splitlines()[0]
        first = message.split()[0].rstrip(":") if message else ""
        if first in names:  # the message starts with the field name
            raise ConfigError(f"{prefix}{message}") from None
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {message}") from None


def _set_override(data: dict, assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value")
    dotted, raw = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {key} is not a section")
    try:
        node[keys[-1]] = _yaml(raw) if raw.strip() else None
    except (yaml.YAMLError, ConfigError) as exc:
        raise ConfigError(f"--set {dotted}: {raw!r} is not a valid YAML value ({str(exc).splitlines()[0]})") from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainingConfig:
    """Read (following ``extends``), override (``section.key=value``, YAML-typed) and validate a config, then check
    referenced files."""
    data: dict = {}
    if path is not None:
        data = _read_extended(Path(path), ())
    for assignment in overrides or []:
        alone: dict = {}
        _set_override(alone, assignment)
        _check_renamed(alone, f"--set {assignment}")
        _set_override(data, assignment)
    if isinstance(data, dict) and "reward" in data:
        raise ConfigError("reward: the reward section lives under environment (environment.reward)")
    config = _build(TrainingConfig, data, "")
    _check_files(config)
    return config


def _check_renamed(data: dict, where: str) -> None:
    """ConfigError naming the new key for the first old key (``RENAMED``) that ``data`` holds; ``where``: its source."""
    for old, new in RENAMED.items():
        node: Any = data
        for key in old.split("."):
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            raise ConfigError(f"{old} was renamed to {new} ({where})")


def _read_extended(path: Path, children: tuple[Path, ...]) -> dict:
    """The file's mapping merged onto its parent's (``extends``, followed recursively); ``children``: the files that
    extend this one, nearest last, for cycle detection."""
    data = _read_yaml_mapping(path)
    _check_renamed(data, str(path))
    if "extends" not in data:
        return data
    parent = data.pop("extends")
    if not isinstance(parent, str) or not parent.strip():
        raise ConfigError(f"extends: {path}: expected the path of a parent config, got {parent!r}")
    parent_path = path.parent / parent  # relative to the extending file, not to the working directory
    chain = (*children, path)
    if any(parent_path.resolve() == seen.resolve() for seen in chain):
        cycle = " -> ".join(str(p) for p in (*chain, parent_path))
        raise ConfigError(f"extends: {path}: a cycle ({cycle})")
    if not parent_path.exists():
        raise ConfigError(f"extends: {path}: no such parent config {parent_path}")
    return _merge(_read_extended(parent_path, chain), data)


def _merge(parent: dict, child: dict) -> dict:
    """``child`` over ``parent``: mappings merge key by key (recursively), anything else (lists too) replaces."""
    merged = dict(parent)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml_mapping(path: Path) -> dict:
    """The config file's top-level mapping; ConfigError for a missing, unreadable, empty or non-mapping file."""
    if not path.exists():
        raise ConfigError(f"--config: no such file {path}")
    if not path.is_file():
        raise ConfigError(f"--config: {path} is a directory, not a YAML file")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"--config: {path} is not a text file (not UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"--config: {path} cannot be read ({exc.strerror or exc})") from None
    try:
        data = _yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    except ConfigError as exc:
        raise ConfigError(f"--config: {path}: {exc}") from None
    if data is None:  # an empty or comment-only file would silently run the full default job
        raise ConfigError(f"--config: {path} is empty (or only comments); give at least one section")
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {path} must be a YAML mapping of sections, got a {type(data).__name__}")
    return data


def _check_files(config: TrainingConfig) -> None:
    from environment.objectives import ObjectivesFileError, load_objectives_jsonl

    if config.model.init_from is not None and not Path(config.model.init_from).is_dir():
        raise ConfigError(f"model.init_from: no such directory {config.model.init_from}")
    dataset = config.warm_start.dataset_path
    if config.warm_start.enabled and dataset is not None and not (Path(dataset) / "dataset_info.json").is_file():
        raise ConfigError(f"warm_start.dataset_path: {dataset} is not a saved datasets.Dataset (no dataset_info.json)")

    for key, value in (("environment.db_path", config.environment.db_path),
                       ("environment.objectives_file", config.environment.objectives_file),
                       ("evaluation.eval_objectives_file", config.evaluation.eval_objectives_file)):
        if value is None:
            continue
        if not Path(value).exists():
            raise ConfigError(f"{key}: no such file {value}")
        if not Path(value).is_file():
            raise ConfigError(f"{key}: {value} is a directory, not a file")
    db_path = config.environment.db_path
    if db_path is not None:
        with open(db_path, "rb") as handle:
            if handle.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
                raise ConfigError(f"environment.db_path: {db_path} is not a SQLite database")
    for key, value in (("environment.objectives_file", config.environment.objectives_file),
                       ("evaluation.eval_objectives_file", config.evaluation.eval_objectives_file)):
        if value is None:
            continue
        try:  # every field of every line, so a bad objective stops the run here rather than mid-training
            load_objectives_jsonl(value)
        except ObjectivesFileError as exc:  # one line: path:line: field: problem (got value)
            raise ConfigError(f"{key}: {exc}") from None
    for key, value in (("logging.output_dir", config.logging.output_dir),
                       ("logging.tensorboard_dir", config.logging.tensorboard_dir),
                       ("environment.workdir", config.environment.workdir),
                       ("model.model_cache_dir", config.model.model_cache_dir)):
        if value is None:
            continue
        # The directory, or its nearest existing ancestor, must be a directory for mkdir to work.
        existing = next(p for p in (Path(value).expanduser().absolute(), *Path(value).expanduser().absolute()
                                    .parents) if p.exists())
        if not existing.is_dir():
            where = "is a file" if existing == Path(value).expanduser().absolute() else f"is under the file {existing}"
            raise ConfigError(f"{key}: {value} {where}, not a directory")
    base = config.model.base_model
    if base.startswith((".", "/", "~")) and not Path(base).expanduser().exists():
        raise ConfigError(f"model.base_model: no such directory {base}")


def config_to_dict(config: TrainingConfig) -> dict[str, Any]:
    """The resolved config as plain data (derived seeds written out, so the file reproduces the run), in the keys a
    config file uses: the environment fields that ``mode`` and ``fuzzing.personas`` set are left out."""
    data = dataclasses.asdict(config)
    del data["environment"]["personas"], data["environment"]["reward"]["objective"]
    return data


def save_config(config: TrainingConfig, path: str | Path) -> None:
    """Write the full resolved config (every key, no ``extends``): the file alone reproduces the run."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
