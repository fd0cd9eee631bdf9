"""Train the ensemble members of a run: one run folder, resumable member by member.

Run folder layout (default ``var/runs/<UTC timestamp>-<profile>``)::

    config.json          the resolved profile, seed, data dir, weights dir, code version
    manifest.csv/.json   every image with class, sha256, perceptual hash, size, near-dup group
    split.json           train / val / test file lists (and counts per class)
    state.json           status of the run (running | interrupted | trained | evaluated | ...)
    train.log            log lines of the run
    members/<name>.keras the trained member (best epoch by validation macro-F1)
    members/<name>.json  its history (per epoch: loss, train acc, val acc, val macro-F1, the
                         predicted-class histogram in inference mode), timing, status
    eval/                metrics.json, report.md, PNG plots (written by ml_training.evaluate)

Every member is validated in inference mode (``training=False``) after every epoch; the best
epoch by validation macro-F1 is kept, and a member whose predictions in inference mode collapse
onto one class is flagged (``collapsed``) in its history and in the evaluation.

The parts, one module each: ``run_folder`` (the folder, its config, manifest, split and state),
``member_data`` (images as the engine sees them), ``member_model`` (network, optimiser,
learning-rate plan), ``member_training`` (one member's epochs and its record), ``posthoc``
(BatchNorm refresh, validation scores, prior correction and calibration). This module runs the
members of a run in order and keeps the names other code imports from it.
"""

from __future__ import annotations

import json
import time

from ml_training.member_data import load_images, resize_like_engine, training_crop
from ml_training.member_model import (
    LRPlan,
    _one_hot,
    build_member_model,
    compile_member,
    configure_tensorflow,
    predict_probs,
)
from ml_training.member_training import TIME_BUDGET_STOP, one_off_seconds, train_member
from ml_training.posthoc import quick_scores, refresh_bn_statistics
from ml_training.run_folder import (
    RunContext,
    TrainingInterrupted,
    attach_log_file,
    check_weights_dir,
    default_run_dir,
    logger,
    machine_info,
    member_specs,
    open_run,
    prepare_run,
)

__all__ = [
    "TIME_BUDGET_STOP",
    "LRPlan",
    "RunContext",
    "TrainingInterrupted",
    "_one_hot",
    "attach_log_file",
    "build_member_model",
    "check_weights_dir",
    "compile_member",
    "configure_tensorflow",
    "default_run_dir",
    "load_images",
    "logger",
    "machine_info",
    "member_specs",
    "one_off_seconds",
    "open_run",
    "predict_probs",
    "prepare_run",
    "quick_scores",
    "refresh_bn_statistics",
    "resize_like_engine",
    "train_member",
    "train_run",
    "training_crop",
]


def train_run(ctx: RunContext, *, progress: bool = True, only: list[str] | None = None) -> dict:
    """Train every member not yet done; {member name: info}. Ctrl-C: TrainingInterrupted."""
    prof = ctx.profile
    configure_tensorflow(
        threads=prof.get("threads"), deterministic=bool(prof.get("deterministic", True))
    )
    ctx.members_dir.mkdir(exist_ok=True)
    handler = attach_log_file(ctx.run_dir)
    results = {}
    t_run = time.time()
    try:
        ctx.write_state("training")
        for index, member in enumerate(prof["members"]):  # index: part of the member's seed
            name = member["name"]
            if only and name not in only:
                continue
            if ctx.member_done(name):
                logger.info("%s: already trained in this run folder, skipped", name)
                results[name] = json.loads(ctx.member_info_path(name).read_text())
                continue
            results[name] = train_member(ctx, member, index=index, progress=progress)
        ctx.write_state("trained", train_seconds=round(time.time() - t_run, 1))
        return results
    except KeyboardInterrupt:
        ctx.write_state("interrupted")
        logger.warning("interrupted; finished members are kept in %s", ctx.run_dir)
        raise TrainingInterrupted(ctx.run_dir) from None
    finally:
        logger.removeHandler(handler)
        handler.close()
