"""The PPO training loop: collect conversations, credit turns, mix replay, update, log, checkpoint, evaluate."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import random
import shutil
import signal
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from agents.auto_user import AutoUserAgent
from agents.auto_user.models import resolve_model
from database.episode import WORKDIR_PREFIX, remove_stale_working_copies
from environment.objectives import load_objectives
from training import checkpoint as ckpt
from training.buffers import DualReplayBuffer, TurnSample
from training.build import build_environments, build_policy, build_trainer, evaluation_env_count
from training.config import ConfigError, TrainingConfig, save_config
from training.credit import episode_samples
from training.evaluation import auto_user_config, evaluate_auto_user, final_table, load_auto_user, markdown
from training.findings import (
    FINAL_FINDINGS_DIR,
    FINDINGS_JSONL,
    findings_from,
    read_findings,
    write_comparison_findings,
    write_epoch_findings,
)
from training.metrics import (
    METRICS_FILE,
    episode_metrics,
    epoch_metrics,
    record_epoch_metrics,
)
from training.novelty import AttackArchive, novelty_bonuses
from training.output_dir import carry_run_history, claim_output_dir
from training.rollout import RolloutCollector, episode_plan
from training.seeds import evaluation_plan, plan_seed, process_seed
from training.warm_start_stage import WarmStartOutcome, prepare_warm_start

logger = logging.getLogger("auto_user.train")
EVALUATION_WORKERS = 1000  # worker ids of the evaluation environments start here (their database copies' names)


def next_epoch_fits(elapsed_seconds: float, epochs_done: int, budget_seconds: float) -> bool:
    """Whether one more epoch, as long as the mean epoch so far, ends within the wall-clock budget."""
    return elapsed_seconds + elapsed_seconds / max(epochs_done, 1) <= budget_seconds


class Interrupted(Exception):
    """Raised inside rollout collection after SIGINT or SIGTERM, to stop at a safe point."""


class AgentBackendDown(RuntimeError):
    """``ppo.max_failed_epochs`` epochs in a row had no usable episode; a checkpoint was saved. One line."""


def setup_logging(output_dir: Path, is_main: bool, debug: bool) -> Path | None:
    level = logging.DEBUG if debug else logging.INFO
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    log_path = None
    if is_main:
        (output_dir / "logs").mkdir(parents=True, exist_ok=True)
        log_path = output_dir / "logs" / f"ppo_training_{datetime.now().strftime('%Y%m%d_%H%M%S')}.log"
        handlers.append(logging.FileHandler(log_path))
    logging.basicConfig(level=level if is_main else logging.WARNING, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "mcp", "datasets", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # A hub id that cannot be fetched is reported once, in one line, by train_ppo.py; not as retry warnings.
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()
    return log_path


class TrainingRun:
    """Everything one training process holds; ``run()`` executes the epochs.

    The main process holds the output directory's lock (``training.output_dir.claim_output_dir``) from construction
    until ``close()``; ``overwrite`` lets a fresh run replace an earlier run's outputs there instead of refusing.
    """

    def __init__(self, config: TrainingConfig, resume: str | None = None, debug: bool = False,
                 overwrite: bool = False):
        self.config, self.debug = config, debug
        if not config.logging.output_dir.strip():  # Path("") is the current directory: checkpoints would land there
            raise ConfigError(f"logging.output_dir: must name a directory, got {config.logging.output_dir!r}")
        cuda = torch.cuda.is_available() and not config.hardware.cpu
        self.accelerator = Accelerator(cpu=not cuda)  # mixed precision: the policy's own bf16 autocast (below)
        self.is_main = self.accelerator.is_main_process
        self.output_dir = Path(config.logging.output_dir)
        self.lock, self.workdir, self.envs, self.loop, self.writer = None, None, [], None, None
        self.eval_envs: list = []
        self.stop_signal: int | None = None  # the signal that stopped the run at a safe point
        lock_note = None
        if self.is_main:  # before anything is written there
            self.lock, lock_note = claim_output_dir(self.output_dir, resume=bool(resume), overwrite=overwrite,
                                                         tensorboard_dir=Path(config.logging.tensorboard_dir))
        try:
            self._build(resume, lock_note)
        except BaseException:
            self.close()
            raise

    def _build(self, resume: str | None, lock_note: str | None) -> None:
        config, debug = self.config, self.debug
        self.log_path = setup_logging(self.output_dir, self.is_main, debug)
        if lock_note:
            logger.warning("%s", lock_note)
        if config.hardware.num_threads:
            torch.set_num_threads(config.hardware.num_threads)
        # A checkpoint that cannot be resumed is reported before any model loads.
        resume_dir, resume_state = None, None
        if resume:
            if self.is_main:
                ckpt.recover_interrupted_saves(self.output_dir)
            self.accelerator.wait_for_everyone()
            resume_dir = ckpt.resolve_resume(resume, self.output_dir)
            resume_state = ckpt.read_resume_state(resume_dir)
            if self.is_main:
                copied = carry_run_history(resume_dir, self.output_dir, resume_state["state"]["epoch"])
                if copied:
                    logger.info("carried %s over from %s", " and ".join(copied), resume_dir.parent)
            self.accelerator.wait_for_everyone()  # every process reads the carried findings below
        model_path = resolve_model(config.model.base_model, config.model.model_cache_dir)
        logger.info("policy base model: %s -> %s", config.model.base_model, model_path)
        self.warm_start = self._warm_start(model_path)
        overrides = self.warm_start.model_overrides() if self.warm_start else {}
        self.model_config = dataclasses.replace(config.model, **{"base_model": model_path, **overrides})
        # Seed right before the policy is built: LoRA initialisation draws from the global RNG, and building an
        # alias model on first use (above) consumes it too.
        set_seed(process_seed(config.seed, self.accelerator.process_index))
        start_from = resume_dir or self.model_config.init_from
        if start_from and not resume_dir:
            logger.info("starting from the trained policy in %s (KL reference: its base model)", start_from)
        elif self.warm_start and not resume_dir:
            logger.info("PPO trains a fresh adapter on the warm-started weights in %s (KL reference: the warm "
                        "start)", self.model_config.base_model)
        policy = build_policy(config, self.model_config, self.accelerator.device, start_from)
        self.trainer = build_trainer(config, self.model_config, policy, self.accelerator)
        if self.is_main:
            save_config(config, self.output_dir / "training_config.yaml")
        self.train_objectives, held_out = load_objectives(config.environment,
                                                          config.evaluation.eval_objectives_file)
        self.eval_objectives = held_out[: config.evaluation.eval_objectives]
        self.comparison_objectives = held_out[: config.evaluation.final_comparison]
        base_worker = self.accelerator.process_index * config.ppo.num_envs
        self.loop = asyncio.new_event_loop()  # one loop for the run: MCP tool clients live in it
        environment = config.environment
        if environment.workdir is not None:
            # Working copies go in a directory of this process inside the configured one: episode-N.db files
            # already there (a user's, or another run's in use) are never overwritten. Those of killed runs go.
            remove_stale_working_copies(environment.workdir)
            Path(environment.workdir).mkdir(parents=True, exist_ok=True)
            self.workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-", dir=environment.workdir))
            environment = dataclasses.replace(environment, workdir=str(self.workdir))
        self.envs = build_environments(config, self.trainer.tokenizer, base_worker, environment)
        self.environment = environment  # with the run-owned workdir, for the evaluation environments
        self.collector = RolloutCollector(self.envs, self._generate)
        self.buffers = DualReplayBuffer(config.buffer.buffer_size, config.buffer.adversarial_ratio, config.seed)
        self.plan_rng = random.Random(plan_seed(config.seed, self.accelerator.process_index))
        self.start_epoch = 1
        if resume_dir:
            self.start_epoch = ckpt.apply_resume_state(resume_state, self.trainer, self.buffers, self.plan_rng) + 1
            logger.info("resumed from %s; continuing at epoch %d", resume_dir, self.start_epoch)
        self.archive = AttackArchive(config.fuzzing.novelty_memory)  # exposures so far, for the novelty bonus
        if resume_dir:
            self.archive.add([(f["kind"], f["trigger_message"]) for f in read_findings(self.output_dir /
                                                                                       FINDINGS_JSONL)
                              if f["epoch"] < self.start_epoch])
        if self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(config.logging.tensorboard_dir)
        self.stop_requested = False

    def _warm_start(self, model_path: str) -> WarmStartOutcome | None:
        """The supervised warm start (``warm_start.enabled``, not with ``model.init_from``), run by the main process
        and reused by the others (and by a resumed run) from the output directory."""
        warm = self.config.warm_start
        if not warm.enabled:
            return None
        if self.config.model.init_from is not None:
            logger.info("warm_start.enabled is ignored: model.init_from %s is the start", self.config.model.init_from)
            return None
        outcome = None
        if self.is_main:
            outcome = prepare_warm_start(self.config, model_path, self.output_dir, self.accelerator.device)
        self.accelerator.wait_for_everyone()
        return outcome or prepare_warm_start(self.config, model_path, self.output_dir, self.accelerator.device)

    def _generate(self, prompts: list[str], reference: bool = False):
        if self.stop_requested:
            raise Interrupted()
        return self.trainer.generate(prompts, reference=reference)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        """SIGINT (Ctrl-C) and SIGTERM (what schedulers and ``docker stop`` send): stop at the next safe point and
        save a checkpoint. A second one aborts at once (SIGINT raises KeyboardInterrupt; SIGTERM kills)."""
        name = signal.Signals(signum).name
        logger.warning("%s: stopping at the next safe point and saving a checkpoint (again to abort)", name)
        self.stop_requested = True
        self.stop_signal = self.stop_signal or signum
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    # -- one epoch ---------------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, Any]:
        cfg = self.config
        began = time.perf_counter()
        plan = episode_plan(self.train_objectives, cfg.ppo.rollout_episodes, self.plan_rng)
        records, stats = self.loop.run_until_complete(
            self.collector.collect(plan, description=f"epoch {epoch} rollout", progress=self.is_main))
        rollout_seconds = time.perf_counter() - began
        per_episode_findings = [findings_from([record], epoch=epoch) for record in records]
        findings = [finding for found in per_episode_findings for finding in found]
        # Fuzzing's novelty bonus: the one reward term training adds, passed to the turn scores and logged.
        exposures = [[(f["kind"], f["trigger_message"]) for f in found] for found in per_episode_findings]
        bonuses = (novelty_bonuses(exposures, self.archive, cfg.fuzzing.novelty_bonus) if cfg.fuzzing.novelty_bonus
                   else [0.0] * len(records))
        if self.is_main:
            write_epoch_findings(self.output_dir, epoch, findings, self.writer)
        per_episode = [episode_samples(record, cfg.ppo.turn_gamma, bonus)
                       for record, bonus in zip(records, bonuses, strict=True)]
        fresh = [sample for samples in per_episode for sample in samples]
        # Draw the replay before adding this epoch's episodes, so a batch never holds the same sample twice.
        replayed = self.buffers.replay(int(len(fresh) * cfg.buffer.replay_fraction)) if cfg.buffer.use_buffer else []
        if cfg.buffer.use_buffer:
            for record, samples in zip(records, per_episode, strict=True):
                self.buffers.add_episode(samples, record.hallucinated)
        batch = self._equalize(fresh + replayed)
        ppo_metrics: dict[str, Any] = {}
        if batch:
            logger.info("epoch %d: PPO update on %d samples", epoch, len(batch))
            ppo_metrics = self.trainer.step([torch.tensor(s.query) for s in batch],
                                            [torch.tensor(s.response) for s in batch], [s.score for s in batch])
        else:  # every episode failed (e.g. the agent backend is down): nothing to learn from, keep the policy
            logger.warning("epoch %d: no usable episode (%d of %d ended in an error); update skipped", epoch,
                           stats.errors, len(plan))
        metrics = epoch_metrics(epoch, records, stats, rollout_seconds, findings, bonuses,
                                cfg.logging.sample_conversations, reduce=self._reduce)
        metrics["update/skipped"] = int(not batch)
        metrics.update(ppo_metrics)
        metrics.update({"buffer/normal_size": len(self.buffers.normal),
                        "buffer/adversarial_size": len(self.buffers.adversarial), "buffer/replayed": len(replayed),
                        "ppo/batch_size": len(batch)})
        if cfg.fuzzing.novelty_bonus:
            metrics["fuzz/novelty_bonus"] = metrics["train/shaping_bonus_mean"]
        return metrics

    def _equalize(self, batch: list[TurnSample]) -> list[TurnSample]:
        """Data-parallel PPO needs the same number of samples on every process: trim to the smallest."""
        if self.accelerator.num_processes == 1:
            return batch
        counts = self.accelerator.gather(torch.tensor([len(batch)], device=self.accelerator.device))
        return batch[: int(counts.min())]

    def _reduce(self, metrics: dict[str, float]) -> dict[str, float]:
        if self.accelerator.num_processes == 1:
            return metrics
        names = sorted(metrics)
        values = torch.tensor([metrics[n] for n in names], dtype=torch.float64, device=self.accelerator.device)
        values = self.accelerator.reduce(values, reduction="mean")
        return dict(zip(names, values.tolist(), strict=True))

    def _evaluate(self, plan: list, name: str, reference: bool, progress: bool) -> tuple[dict[str, Any], list]:
        """The current policy (or, with ``reference``, PPO's reference: the base model, or the warm start) on ``plan``
        through the one evaluation path (``training.evaluation``): sampled from the model rollouts sample from, as
        an ``AutoUserAgent`` would."""
        with self.trainer.sampling_model(reference) as model:
            agent = AutoUserAgent.from_model(model, self.trainer.tokenizer, auto_user_config(self.config, name),
                                             self.accelerator.device)
            return self._play(agent, plan, name, progress)

    def _play(self, agent: AutoUserAgent, plan: list, name: str, progress: bool) -> tuple[dict[str, Any], list]:
        def generate(prompts: list[str]) -> tuple[list, list, list[str]]:
            if self.stop_requested:
                raise Interrupted()
            return agent.generate(prompts)

        return self.loop.run_until_complete(evaluate_auto_user(generate, self.config, plan, name,
                                                               self._evaluation_envs(), progress=progress))

    def _evaluation_envs(self) -> list:
        """The environments evaluations play on: the training ones, or, where ``evaluation.num_envs`` asks for
        another number, their own (built once, closed with the run)."""
        count = evaluation_env_count(self.config)
        if count == len(self.envs):
            return self.envs
        if not self.eval_envs:
            first_worker = EVALUATION_WORKERS + self.accelerator.process_index * count
            self.eval_envs = build_environments(self.config, self.trainer.tokenizer, first_worker, self.environment,
                                                count)
        return self.eval_envs

    def _evaluate_saved(self, model: str, plan: list, name: str) -> tuple[dict[str, Any], list]:
        """A model that is not this run's policy or reference ("base", or a saved policy directory), loaded as
        ``evaluate.py`` loads it."""
        return self._play(load_auto_user(model, self.config), plan, name, progress=True)

    def evaluate(self) -> dict[str, float]:
        plan = evaluation_plan(self.eval_objectives)
        logger.info("evaluating on %d held-out objectives", len(plan))
        _, records = self._evaluate(plan, "evaluation", reference=False, progress=self.is_main)
        return {f"eval/{k.removeprefix('env/')}": v for k, v in self._reduce(episode_metrics(records)).items()}

    def compare_with_base(self) -> dict[str, dict[str, Any]]:
        """Base model vs (warm start vs) trained policy on the same held-out objectives and seeds: print a table and
        write ``final_evaluation.md`` / ``.json`` (``evaluation.final_comparison``). ``evaluate.py --compare base
        final_model`` on these objectives plays the same conversations."""
        plan = evaluation_plan(self.comparison_objectives)
        played = {}
        if self.warm_start is None:
            played["base"] = self._evaluate(plan, "base", reference=True, progress=True)
        else:  # three columns: what each stage buys
            played["base"] = self._evaluate_saved("base", plan, "base")
            if self.warm_start.reference_dir is not None:  # PPO's reference is the warm start
                played["warm start"] = self._evaluate(plan, "warm start", reference=True, progress=True)
            else:
                played["warm start"] = self._evaluate_saved(str(self.warm_start.policy_dir), plan, "warm start")
        played["trained"] = self._evaluate(plan, "trained", reference=False, progress=True)
        reports = {name: report for name, (report, _) in played.items()}
        command = f"end of training run ({self.output_dir})"
        if self.config.mode == "adversarial":  # the held-out exposures of every column, as evaluate.py writes them
            write_comparison_findings(self.output_dir / FINAL_FINDINGS_DIR,
                                      {name: records for name, (_, records) in played.items()},
                                      f"Fuzzing findings on the held-out comparison: {command}")
        (self.output_dir / "final_evaluation.json").write_text(json.dumps({"reports": reports}, indent=1,
                                                                           default=float))
        (self.output_dir / "final_evaluation.md").write_text(markdown(reports, command))
        table = final_table(reports)
        columns = " vs ".join(reports)
        logger.info("%s on %d held-out objectives: the table below and in %s", columns, len(plan),
                    self.output_dir / "final_evaluation.md")
        print(f"\n{columns.capitalize()}, {len(plan)} held-out objectives (full report: "
              f"{self.output_dir / 'final_evaluation.md'}):\n{table}", flush=True)
        if self.writer is not None:
            self.writer.add_text("final_comparison", table.replace("\n", "  \n"))
            self.writer.flush()
        return reports

    # -- the run -------------------------------------------------------------------------------------------------
    def run(self) -> Path:
        cfg = self.config
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        logger.info("training %d epoch(s) from epoch %d on %d process(es) (%s); output in %s", cfg.ppo.iterations,
                    self.start_epoch, self.accelerator.num_processes, self.accelerator.device, self.output_dir)
        started = time.monotonic()
        failed_epochs = 0  # consecutive epochs without a usable episode
        try:
            for epoch in range(self.start_epoch, cfg.ppo.iterations + 1):
                snapshot = (self.trainer.state_dict(), ckpt.capture_rng_state(self.plan_rng))
                try:
                    metrics = self.train_epoch(epoch)
                except Interrupted:
                    self._restore(snapshot)  # nothing of this epoch was applied: save the previous state exactly
                    self._checkpoint(epoch - 1)
                    logger.warning("interrupted during epoch %d; saved checkpoint-%d", epoch, epoch - 1)
                    return self.output_dir
                evaluate = cfg.evaluation.eval_every and epoch % cfg.evaluation.eval_every == 0
                if evaluate and not self.stop_requested and not metrics["update/skipped"]:
                    try:
                        metrics.update(self.evaluate())
                    except Interrupted:  # the epoch's update is done: keep it, skip the evaluation
                        logger.warning("interrupted during evaluation after epoch %d; evaluation skipped", epoch)
                self._log(epoch, metrics)
                failed_epochs = failed_epochs + 1 if metrics["update/skipped"] else 0
                backend_down = bool(cfg.ppo.max_failed_epochs) and failed_epochs >= cfg.ppo.max_failed_epochs
                if backend_down:
                    self._checkpoint(epoch)
                    raise AgentBackendDown(
                        f"the booking agent backend looks down: {failed_epochs} epoch(s) in a row without a usable "
                        f"episode (ppo.max_failed_epochs={cfg.ppo.max_failed_epochs}; last error: "
                        f"{metrics.get('last_error', 'none recorded')}); saved checkpoint-{epoch}, continue with "
                        f"--resume latest once it is back")
                budget = cfg.ppo.max_train_minutes
                out_of_time = budget is not None and not next_epoch_fits(
                    time.monotonic() - started, epoch - self.start_epoch + 1, 60 * budget)
                if self.accelerator.num_processes > 1:  # every process must stop after the same epoch
                    flag = torch.tensor([float(out_of_time)], device=self.accelerator.device)
                    out_of_time = bool(self.accelerator.reduce(flag, reduction="max").item())
                last = epoch == cfg.ppo.iterations or out_of_time
                if epoch % cfg.logging.save_every == 0 or last or self.stop_requested:
                    self._checkpoint(epoch)
                if self.stop_requested:
                    logger.warning("interrupted; saved checkpoint-%d", epoch)
                    return self.output_dir
                if out_of_time and epoch < cfg.ppo.iterations:
                    logger.info("time budget of %.1f minutes reached after epoch %d", budget, epoch)
                    break
            if self.is_main:
                ckpt.recover_interrupted_saves(self.output_dir)
                final = ckpt.save_directory(self.output_dir / "final_model", self.trainer.save_pretrained)
                logger.info("final model saved to %s", final)
                self._plot()
                if self.comparison_objectives and not self.stop_requested:
                    try:
                        self.compare_with_base()
                    except Interrupted:
                        logger.warning("interrupted during the final comparison; skipped")
            return self.output_dir
        finally:
            self.close()

    def _restore(self, snapshot: tuple[dict, dict]) -> None:
        trainer_state, rng_state = snapshot
        self.trainer.load_state_dict(trainer_state)
        ckpt.restore_rng_state(rng_state, self.plan_rng)

    def _checkpoint(self, epoch: int) -> None:
        self.accelerator.wait_for_everyone()
        if self.is_main:
            path = ckpt.save_checkpoint(self.output_dir, epoch, self.trainer, self.buffers, self.plan_rng,
                                        keep=self.config.logging.keep_checkpoints)
            logger.info("checkpoint saved: %s", path)

    def _log(self, epoch: int, metrics: dict[str, Any]) -> None:
        if not self.is_main:
            return
        if metrics["update/skipped"]:
            logger.info("epoch %d | no usable episode | errors %d | update skipped", epoch, metrics["env/errors"])
        else:
            logger.info(
                "epoch %d | reward %.3f | success %.2f | hallucination %.2f | update %s | kl %.4f | "
                "rollout %.1fs update %.1fs", epoch, metrics["env/reward_mean"], metrics["env/success_rate"],
                metrics["env/hallucination_rate"], "kept" if metrics["update/accepted"] else "rolled back",
                metrics["objective/kl"], metrics["time/rollout"], metrics["time/update/total"])
            logger.info(
                "epoch %d update | %d samples, %.2f/s | old log-probs %.1fs (%.0f%% kept from sampling) | "
                "reference %.1fs | mini-batches %.1fs | KL check %.1fs", epoch, metrics["ppo/batch_size"],
                metrics["time/update_samples_per_second"], metrics["time/update/rollout_stats"],
                100 * metrics["ppo/old_stats_from_sampling"], metrics["time/update/reference"],
                metrics["time/update/minibatches"], metrics["time/update/kl_check"])
        for name, value in metrics.items():
            if isinstance(value, int | float) and name != "epoch":
                self.writer.add_scalar(name, value, epoch)
        self.writer.add_text("architecture", metrics["architecture"], epoch)
        for index, text in enumerate(metrics.get("sample_conversations", [])):
            logger.info("sample conversation %d of epoch %d:\n%s", index + 1, epoch, text)
            self.writer.add_text(f"sample_conversations/{index + 1}", text.replace("\n", "  \n"), epoch)
        self.writer.flush()
        record_epoch_metrics(self.output_dir / METRICS_FILE, metrics)

    def _plot(self) -> None:
        if not (self.output_dir / METRICS_FILE).exists():  # resumed after the last epoch from a run without one
            return
        try:
            from training.plot_metrics import plot_training_metrics

            logger.info("plots written to %s", plot_training_metrics(self.output_dir))
        except ImportError:
            pass

    def close(self) -> None:
        """Close the environments and the writer, remove the working copies, release the output directory."""
        if self.loop is not None:
            for env in self.envs + self.eval_envs:
                self.loop.run_until_complete(env.aclose())
            self.loop.close()
        if self.writer is not None:
            self.writer.close()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self.lock is not None:
            self.lock.release()
        # Under `accelerate launch`, tear the process group down here rather than at interpreter exit: a gloo group
        # left to the exit's destructors aborted a process that had finished ("terminate called without an active
        # exception", exit code -6) while the other was still saving. A no-op in a single process.
        self.accelerator.end_training()
