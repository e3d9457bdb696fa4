"""``crossrank train``'s work: check, mine, fine-tune, keep the best, calibrate, report.

1. Checks, before anything slow: the output folder (refused if it exists, unless
   ``overwrite`` or ``resume``), the base model (an encoder or a one-logit cross-encoder),
   the judgments (known queries and documents, positives), the dev split.
2. The first stage retrieves every training and dev query once; each training query's hard
   negatives are its top candidates minus its positives (:mod:`crossrank.train.mining`).
3. sentence-transformers' ``CrossEncoderTrainer`` fine-tunes with a pointwise loss
   (``BinaryCrossEntropyLoss``) or a listwise one (``LambdaLoss``, ``ListNetLoss``); after
   each epoch :class:`~crossrank.train.evaluator.DevRerankEvaluator` reranks the dev
   queries' first-stage candidates; the best checkpoint on dev NDCG@10 is kept
   (``load_best_model_at_end``) and ``EarlyStoppingCallback`` stops when it stops improving.
   Checkpoints go to ``OUT/checkpoints`` and a run resumes from the last one.
4. The kept model is saved to ``OUT`` (a sentence-transformers CrossEncoder folder, which
   :class:`crossrank.CrossEncoderScorer` and every adapter load), with a calibration fitted
   on its dev scores, the dev qrels, and the report (JSON and PNG).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from crossrank._optional import missing_extra
from crossrank.calibration import CALIBRATION_FILE, fit_platt, fit_temperature, save_calibration
from crossrank.train.base_model import check_base_model
from crossrank.train.data import load_training_data, write_qrels
from crossrank.train.mining import (
    first_stage_candidates,
    hard_negatives,
    listwise_rows,
    pair_rows,
)

__all__ = [
    "CHECKPOINTS",
    "DEV_QRELS_FILE",
    "LOSSES",
    "REPORT_FILE",
    "REPORT_PLOT",
    "prepare_output",
    "train",
]

logger = logging.getLogger("crossrank")

#: Training losses: ``bce`` is pointwise, ``lambda`` and ``listnet`` are listwise.
LOSSES: tuple[str, ...] = ("bce", "lambda", "listnet")
#: The checkpoints' folder inside the output folder (removed at the end unless kept).
CHECKPOINTS = "checkpoints"
#: Files written beside the model.
REPORT_FILE = "training_report.json"
REPORT_PLOT = "training_report.png"
DEV_QRELS_FILE = "dev_qrels.tsv"
_SETTINGS_FILE = "crossrank_train_settings.json"
#: Settings a resumed run must share with the run it continues (the data it trains on).
_RESUME_KEYS = (
    "data", "split", "qrels", "base_model", "first_stage", "loss", "negatives",
    "mining_depth", "candidates", "dev_fraction", "seed", "max_length", "batch_size",
)  # fmt: skip


def _require_train_extra() -> None:
    try:
        import accelerate  # noqa: F401
        import datasets  # noqa: F401
    except ImportError as e:
        raise missing_extra("crossrank train", "train", e) from e


def _last_checkpoint(folder: Path) -> Path | None:
    found = [
        p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()
    ]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def prepare_output(output: Path, *, overwrite: bool, resume: bool | str) -> Path | None:
    """Check the output folder; return the checkpoint to resume from (None for a new run).

    A new run needs ``output`` not to exist (or ``overwrite``; it is removed only when
    training starts). ``resume=True`` continues from the last checkpoint in
    ``output/checkpoints``; ``resume=PATH`` from that checkpoint.

    Raises:
        ValueError: The folder exists without ``overwrite``/``resume``, both are given, or
            there is no checkpoint to resume from.
    """
    if resume and overwrite:
        raise ValueError("overwrite and resume cannot be combined: overwrite starts afresh")
    if resume:
        if isinstance(resume, str):
            given = Path(resume).expanduser()
            if not (given / "trainer_state.json").is_file():
                raise ValueError(
                    f"resume={resume!r} is not a training checkpoint (no trainer_state.json)"
                )
            return given
        checkpoint = _last_checkpoint(output / CHECKPOINTS)
        if checkpoint is None:
            raise ValueError(
                f"resume is set but {output / CHECKPOINTS} holds no checkpoint; start a "
                "new run without it (or with overwrite)"
            )
        return checkpoint
    if output.exists() and not overwrite:
        raise ValueError(
            f"output {output} already exists; replace it with overwrite (--overwrite), or "
            "continue the training whose checkpoints it holds with resume (--resume)"
        )
    if output.exists() and not output.is_dir():
        raise ValueError(f"output {output} is a file; give a folder for the trained model")
    return None


def _check_resume_settings(checkpoints: Path, settings: Mapping[str, Any]) -> None:
    saved_file = checkpoints / _SETTINGS_FILE
    if not saved_file.is_file():
        return
    saved = json.loads(saved_file.read_text(encoding="utf-8"))
    changed = [k for k in _RESUME_KEYS if saved.get(k) != settings.get(k)]
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {settings.get(k)!r}" for k in changed)
        raise ValueError(
            f"resume must train on what the checkpoint was trained on; changed: {diffs}"
        )


def _time_limit_callback(minutes: float) -> Any:
    """A callback that stops training once it has run ``minutes``; the epoch then ends as
    usual (a dev evaluation and a checkpoint), and the best checkpoint is kept."""
    from transformers import TrainerCallback

    class TimeLimit(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.perf_counter()
            self.reached = False

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if time.perf_counter() - self.started > minutes * 60.0:
                self.reached = True
                control.should_training_stop = True
            return control

    return TimeLimit()


def _loss(name: str, model: Any, *, pos_weight: float, mini_batch_size: int) -> Any:
    import torch
    from sentence_transformers.cross_encoder import losses

    if name == "bce":
        return losses.BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(pos_weight))
    if name == "lambda":
        return losses.LambdaLoss(model, mini_batch_size=mini_batch_size)
    if name == "listnet":
        return losses.ListNetLoss(model, mini_batch_size=mini_batch_size)
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {name!r}")


def _fit_calibration(
    logits: np.ndarray, labels: np.ndarray, target: Path, model: str, dev_queries: int
) -> dict[str, Any]:
    from crossrank.calibration import _sigmoid
    from crossrank.eval.calibrate import _measure, _params

    if not 0 < labels.sum() < labels.size:
        logger.warning(
            "crossrank train: no calibration written: the dev pairs hold %d relevant of %d",
            int(labels.sum()),
            labels.size,
        )
        return {"written": None}
    fits: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for method, fit in (("temperature", fit_temperature), ("platt", fit_platt)):
        try:
            fits[method] = fit(logits, labels, model=model)
        except ValueError as e:  # logits that do not rise with relevance under this fit
            errors[method] = str(e)
    if "platt" not in fits:
        logger.warning("crossrank train: no calibration written: %s", errors["platt"])
        return {"written": None, "errors": errors}
    measured = {"sigmoid": _measure(_sigmoid(logits), labels, 15)}
    measured.update({m: _measure(fit.apply(logits), labels, 15) for m, fit in fits.items()})
    report = {
        "fitted_on": f"dev split: {dev_queries} queries, {labels.size} pairs "
        f"({int(labels.sum())} relevant), the kept model's raw logits",
        "measured_on": "the same dev pairs (for a held-out measure run crossrank calibrate)",
        "params": {m: _params(fit) for m, fit in fits.items()},
        "metrics": measured,
        "errors": errors,
    }
    written = save_calibration(target, fits, method="platt", model=model, report=report)
    return {"written": str(written), "method": "platt", **report}


def _has_accelerator(device: str | None) -> bool:
    """Whether training runs on an accelerator (where pinned host memory helps)."""
    import torch

    if device is not None and str(device).startswith("cpu"):
        return False
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        return bool(accelerator.is_available())
    return bool(torch.cuda.is_available())


def _history(log_history: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """One entry per dev evaluation in the trainer's log (restored on resume)."""
    out: list[dict[str, Any]] = []
    for entry in log_history:
        if metric in entry:
            row = {"epoch": float(entry.get("epoch", 0.0)), "step": int(entry["step"])}
            for name in ("ndcg@10", "mrr@10", "recall@10"):
                key = metric.replace("ndcg@10", name)
                if key in entry:
                    row[name] = float(entry[key])
            out.append(row)
    return out


def train(
    data: str | os.PathLike[str],
    model: str,
    output: str | os.PathLike[str],
    *,
    split: str = "train",
    qrels: str | os.PathLike[str] | None = None,
    first_stage: str = "bm25",
    loss: str = "bce",
    negatives: int = 4,
    mining_depth: int = 20,
    candidates: int = 20,
    dev_fraction: float = 0.1,
    epochs: int = 3,
    batch_size: int = 16,
    learning_rate: float = 2e-5,
    warmup_ratio: float = 0.1,
    max_length: int | None = None,
    patience: int = 2,
    time_limit: float | None = None,
    seed: int = 0,
    device: str | None = None,
    bf16: bool = False,
    resume: bool | str = False,
    overwrite: bool = False,
    keep_checkpoints: bool = False,
    local_files_only: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune a cross-encoder on a BEIR folder's training judgments.

    Example:
        >>> from crossrank.train import train
        >>> report = train("scifact/", "cross-encoder/ms-marco-MiniLM-L6-v2", "my-reranker/")
        >>> report["dev"]["best"]["ndcg@10"]

    Args:
        data: BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).
        model: The start: a one-logit cross-encoder (trained further) or a plain encoder
            checkpoint (a new one-logit head), an id or a folder.
        output: The folder the trained model, calibration and report are written to.
        split: The qrels split to train on (never ``test``).
        qrels: Read the judgments from this file instead (BEIR TSV or TREC qrels).
        first_stage: ``bm25`` or ``dense:MODEL``: mines the hard negatives and gives the dev
            candidates; use the one you rerank.
        loss: ``bce`` (pointwise), ``lambda`` or ``listnet`` (listwise).
        negatives: Hard negatives per training query.
        mining_depth: The negatives are drawn from the first stage's top ``mining_depth``.
        candidates: Dev candidates reranked per query (the first stage's top K).
        dev_fraction: Share of the training queries held out as the dev split.
        epochs: Most epochs (early stopping may end sooner).
        batch_size: Pairs per forward pass (listwise: a step holds
            ``batch_size // (negatives + 1)`` queries, read in passes of this many pairs).
        learning_rate: Peak learning rate (linear warm-up, then linear decay).
        warmup_ratio: Share of the steps spent warming up.
        max_length: Tokens per pair (default: the model's limit); saved with the model.
        patience: Stop after this many epochs without a better dev NDCG@10.
        time_limit: Stop training after this many minutes (the dev evaluation and
            checkpoint of the interrupted epoch follow, then the best is kept).
        seed: Seed of the dev split, the mining, the new head and the data order.
        device: ``cpu``, ``cuda`` ... (default: CUDA if available).
        bf16: Train in bfloat16 autocast (fast on CPUs with AMX, and on recent GPUs).
        resume: True: continue from the last checkpoint in ``output/checkpoints``; a path:
            from that checkpoint.
        overwrite: Replace ``output`` if it exists.
        keep_checkpoints: Keep ``output/checkpoints`` (needed to resume a finished run).
        local_files_only: Never contact the Hugging Face Hub.
        progress: Draw progress bars.

    Returns:
        The training report, also written to ``output/training_report.json``.
    """
    started = time.perf_counter()
    out = Path(output).expanduser()
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    for name, value in (
        ("negatives", negatives), ("mining_depth", mining_depth), ("candidates", candidates),
        ("epochs", epochs), ("batch_size", batch_size), ("patience", patience),
    ):  # fmt: skip
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be > 0 minutes, got {time_limit}")
    _require_train_extra()
    checkpoint = prepare_output(out, overwrite=overwrite, resume=resume)
    kind = check_base_model(model, local_files_only=local_files_only)
    training = load_training_data(
        Path(data),
        split=split,
        qrels=None if qrels is None else Path(qrels),
        dev_fraction=dev_fraction,
        seed=seed,
    )
    settings: dict[str, Any] = {
        "data": str(data), "split": split, "qrels": None if qrels is None else str(qrels),
        "base_model": str(model), "first_stage": first_stage, "loss": loss,
        "negatives": negatives, "mining_depth": mining_depth, "candidates": candidates,
        "dev_fraction": dev_fraction, "seed": seed, "max_length": max_length,
        "batch_size": batch_size, "epochs": epochs, "learning_rate": learning_rate,
        "warmup_ratio": warmup_ratio, "patience": patience, "time_limit": time_limit,
        "bf16": bf16,
    }  # fmt: skip
    if checkpoint is not None:
        _check_resume_settings(out / CHECKPOINTS, settings)

    # -- first stage and mining
    t0 = time.perf_counter()
    dataset = training.dataset
    label, ranked, _ = first_stage_candidates(
        dataset,
        training.train_ids + training.dev_ids,
        first_stage=first_stage,
        depth=max(mining_depth, candidates),
    )
    mined = hard_negatives(
        {q: ranked[q] for q in training.train_ids},
        dataset.qrels,
        num_negatives=negatives,
        depth=mining_depth,
        seed=seed,
    )
    rows = (
        pair_rows(dataset, training.train_ids, mined)
        if loss == "bce"
        else listwise_rows(dataset, training.train_ids, mined, seed=seed)
    )
    dev_candidates = {q: ranked[q][:candidates] for q in training.dev_ids}
    from crossrank.train.evaluator import DevRerankEvaluator

    evaluator = DevRerankEvaluator(
        {q: dataset.queries[q] for q in training.dev_ids},
        dev_candidates,
        {d: dataset.doc_text(d) for ids in dev_candidates.values() for d in ids},
        training.dev_qrels,
        batch_size=batch_size,
        show_progress_bar=progress,
    )
    mining_seconds = time.perf_counter() - t0

    # -- the trainer
    from datasets import Dataset as HFDataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from transformers import EarlyStoppingCallback, PrinterCallback, set_seed

    from crossrank._quiet import quiet_transformers

    set_seed(seed)  # the new head of a plain encoder
    with quiet_transformers():
        cross_encoder = CrossEncoder(
            model,
            num_labels=1,
            max_length=max_length,
            device=device,
            local_files_only=local_files_only,
        )
    # The starting model's own dev figure, beside which the trained epochs are read.
    start_metrics = evaluator.measure(evaluator.score(cross_encoder))
    n_pos = int(sum(1 for v in rows.get("label", []) if v > 0))
    n_neg = len(rows.get("label", [])) - n_pos
    list_size = negatives + 1
    per_step = batch_size if loss == "bce" else max(1, batch_size // list_size)
    loss_fn = _loss(
        loss,
        cross_encoder,
        pos_weight=(n_neg / n_pos) if n_pos else 1.0,
        mini_batch_size=batch_size,
    )
    train_dataset = HFDataset.from_dict(rows)
    steps_per_epoch = -(-len(train_dataset) // per_step)
    if overwrite and out.exists() and checkpoint is None:
        shutil.rmtree(out)
    checkpoints = out / CHECKPOINTS
    checkpoints.mkdir(parents=True, exist_ok=True)
    (checkpoints / _SETTINGS_FILE).write_text(json.dumps(settings, indent=2), encoding="utf-8")
    args = CrossEncoderTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=epochs,
        per_device_train_batch_size=per_step,
        per_device_eval_batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=int(warmup_ratio * steps_per_epoch * epochs),
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,  # with load_best_model_at_end: the best and the last
        load_best_model_at_end=True,
        metric_for_best_model=f"eval_{evaluator.name}_{evaluator.primary_metric}",
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=max(1, steps_per_epoch // 10),
        seed=seed,
        data_seed=seed,
        bf16=bf16,
        use_cpu=device == "cpu",
        disable_tqdm=not progress,
        report_to="none",
        dataloader_num_workers=0,
        # Pinned memory only helps copies to an accelerator; asking for it without one makes
        # torch's DataLoader warn on every epoch.
        dataloader_pin_memory=_has_accelerator(device),
    )
    stopper = EarlyStoppingCallback(early_stopping_patience=patience)
    limit = _time_limit_callback(time_limit) if time_limit is not None else None
    trainer = CrossEncoderTrainer(
        model=cross_encoder,
        args=args,
        train_dataset=train_dataset,
        loss=loss_fn,
        evaluator=evaluator,
        callbacks=[stopper] + ([limit] if limit is not None else []),
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=None if checkpoint is None else str(checkpoint))
    train_seconds = time.perf_counter() - t0

    # -- the kept model, its calibration and the report
    t0 = time.perf_counter()
    state = trainer.state
    best_checkpoint = state.best_model_checkpoint
    best_step = int(Path(best_checkpoint).name.split("-")[-1]) if best_checkpoint else None
    kept = trainer.model
    with quiet_transformers():
        kept.save_pretrained(str(out))
    write_qrels(training.dev_qrels, out / DEV_QRELS_FILE)
    logits = evaluator.logits.get(best_step) if best_step is not None else None
    if logits is None:
        logits = evaluator.score(kept)
    best_metrics = evaluator.measure(logits)
    calibration = _fit_calibration(
        logits, evaluator.labels(), out / CALIBRATION_FILE, str(out), len(training.dev_ids)
    )
    history = _history(state.log_history, str(args.metric_for_best_model))
    best_epoch = next((h["epoch"] for h in history if h["step"] == best_step), None)
    from crossrank.eval.report import machine_info

    report: dict[str, Any] = {
        "model": str(out),
        "base_model": str(model),
        "base_model_kind": kind,
        "data": str(data),
        "split": split,
        "qrels": None if qrels is None else str(qrels),
        "first_stage": label,
        "settings": settings,
        "train": {
            "queries": len(training.train_ids),
            "rows": len(train_dataset),
            "pairs": sum(len(v) for v in rows["labels"]) if loss != "bce" else len(rows["label"]),
            "steps": int(state.global_step),
            "steps_per_epoch": steps_per_epoch,
            "epochs_run": float(state.epoch or 0.0),
            "stopped_by": (
                "time limit" if limit is not None and limit.reached
                else "early stopping" if int(state.global_step) < steps_per_epoch * epochs
                else None
            ),
            "excluded_test_queries": training.excluded_test_ids,
            "resumed_from": None if checkpoint is None else str(checkpoint),
        },
        "dev": {
            "queries": len(training.dev_ids),
            "candidates": candidates,
            "qrels": str(out / DEV_QRELS_FILE),
            "first_stage": evaluator.first_stage_metrics(),
            "base_model": start_metrics,
            "history": history,
            "best_step": best_step,
            "best_epoch": best_epoch,
            "best": best_metrics,
        },
        "calibration": calibration,
        "seconds": {
            "first_stage_and_mining": mining_seconds,
            "training": train_seconds,
            "total": time.perf_counter() - started,
        },
        "machine": machine_info(device),
    }
    from crossrank.eval.report import write_json
    from crossrank.train.report import plot_training

    plot_training(report, out / REPORT_PLOT)
    if not keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    report["seconds"]["saving_and_report"] = time.perf_counter() - t0
    report["seconds"]["total"] = time.perf_counter() - started
    write_json(report, out / REPORT_FILE)
    return report
