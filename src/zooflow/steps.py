"""The pipeline's steps as plain functions. ``flows/pipeline.py`` makes each a Prefect task;
tests and the CLI can call them directly. Steps pass small typed values (``step_results``:
ids, paths, metrics), never tensors or models, and every step logs to the same MLflow run."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from zooflow import config, ownership, settings
from zooflow.data import store
from zooflow.registry import policy as promotion_policy
from zooflow.registry import tracking, versions
from zooflow.step_results import CardFiles, Evaluation, Promotion, Registered, Run, Trained, Validated
from zooflow.tasks import get_task
from zooflow.tasks.base import RunContext, evaluate as evaluate_model
from zooflow.validation.runner import ValidationFailed, validate

log = logging.getLogger("zooflow")


def run_config(run: Run) -> config.RunConfig:
    """The run's config as ``start_run`` resolved it (task file + overrides): every step sees
    the same one, even when the YAML is edited while the run trains."""
    return config.RunConfig.model_validate(run.config)


def _context(run: Run) -> tuple[object, RunContext]:
    """Config + data facts from the data on disk (validate and train; later steps read the
    context train saved, so facts like a vocabulary are computed once per run)."""
    cfg = run_config(run)
    task = get_task(cfg.module)
    root = settings.data_root()
    return task, RunContext(cfg=cfg, info=task.data_info(cfg, root), data_root=root)


def _saved(workdir: Path) -> tuple[object, Path, Path, RunContext]:
    """What train left in ``workdir``: the task, the weights and context files, and the context."""
    from zooflow.registry.pyfunc import load_context

    weights, context_file = workdir / "weights.safetensors", workdir / "run_context.json"
    ctx = load_context(context_file, settings.data_root())
    return get_task(ctx.cfg.module), weights, context_file, ctx


def _workdir(run: Run) -> Path:
    folder = settings.project_root() / ".zooflow" / "runs" / run.run_id
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start_run(task: str, model: str, profile: str, seed: int | None = None,
              overrides: dict | None = None, trigger: str | None = None) -> Run:
    """Resolve the config once and open the MLflow run every later step logs to. ``overrides``
    (``--set``, checked by ``config.parse_overrides``) and ``seed`` replace the task file's
    values; they are tagged ``override.<key>`` on the run and listed in the card. ``trigger``
    says why the run was started when something other than a person started it (a data change:
    ``zooflow retrain``), as the run's ``trigger`` tag."""
    overrides = {**(overrides or {}), **({} if seed is None else {"seed": seed})}
    cfg = config.resolve(task, model, profile, overrides=overrides)
    tracking.require_writable()
    experiment = tracking.experiment_id(f"zooflow-{cfg.task}")
    git = tracking.git_state(settings.project_root())
    client = tracking.connect()
    run = client.create_run(experiment, run_name=f"{cfg.registered_name} [{profile}]",
                            tags={"task": task, "model": model, "profile": profile, "config_hash": cfg.digest(),
                                  "mlflow.source.git.commit": git["git_commit"], **git, **ownership.identity(),
                                  **{f"override.{key}": json.dumps(value) for key, value in overrides.items()},
                                  **({"trigger": trigger} if trigger else {})})
    for dead in tracking.reap_dead_runs(experiment, {"task": task, "model": model}, by_run=run.info.run_id):
        log.info("run %s of %s was left RUNNING by a process that is gone: marked KILLED", dead, cfg.registered_name)
    tracker = tracking.RunTracker(run.info.run_id)
    # The task's own parameters under their own names (a classifier's input_size, width, hidden as before).
    tracker.log_params({"architecture": cfg.architecture, "pretrained": cfg.pretrained, "epochs": cfg.epochs,
                        "batch_size": cfg.batch_size, "momentum": cfg.momentum, "seed": cfg.seed,
                        **{f"lr_{group}": lr for group, lr in cfg.lr.items()}, **cfg.params.model_dump(mode="json")})
    tracker.log_json(cfg.model_dump(mode="json"), "config/resolved_config.json")
    log.info("run %s: %s [%s]", run.info.run_id, cfg.registered_name, profile)
    return Run(run_id=run.info.run_id, task=task, model=model, profile=profile, overrides=overrides,
               config=cfg.model_dump(mode="json"), book_pretrained=config.book_pretrained(task, model))


def prepare_data(run: Run) -> store.DataVersion:
    """Pull the data when missing, refuse data that differs from data.dvc; log its version."""
    cfg = run_config(run)
    data = store.ensure(settings.project_root(), cfg.data.folder)
    tracking.RunTracker(run.run_id).set_tags({"data_version": data.tag, "data_md5": data.data_md5,
                                                 "task_data_md5": data.task_md5, "data_files": data.files})
    return data


def validate_data(run: Run, data: store.DataVersion | None = None) -> Validated:
    """Validate the task's manifest; on failure log the GX result and stop the flow.

    ``data`` is what ``prepare_data`` returned: with it, an unchanged task data version reuses
    its cached manifest instead of decoding and hashing every file again."""
    from zooflow.validation import manifest_cache

    task, ctx = _context(run)
    if data is None:
        table = task.manifest(ctx)
    else:
        table = manifest_cache.cached_manifest(lambda: task.manifest(ctx), module=ctx.cfg.module,
                                               task_folder=ctx.cfg.data.folder, task_md5=data.task_md5,
                                               data_checks=ctx.cfg.data.model_dump(mode="json"))
    report = validate(table, task.expectations(ctx), suite_name=f"{ctx.cfg.task}-manifest")
    tracker = tracking.RunTracker(run.run_id)
    tracker.log_json(report.result, "validation/gx_result.json")
    tracker.log_text(table.to_csv(index=False), "validation/manifest.csv")
    tracker.set_tags({"validation": "passed" if report.success else "failed", "validation_summary": report.summary()})
    if not report.success:
        tracker.log_text("\n".join(report.failures), "validation/failures.txt")
        raise ValidationFailed(report)
    log.info("validation %s", report.summary())
    return Validated(success=True, summary=report.summary(), rows=report.rows)


def checkpoint_dir(run: Run, task_md5: str) -> Path:
    """Checkpoints are keyed by what the training depends on, so a rerun of the same
    (model, profile, config, task data) resumes, and anything else starts afresh. The data part
    is the task's own data version (``task_md5``), not all of data.dvc: importing another task's
    data must not orphan an interrupted run's checkpoint. Only the run holding the key's lock
    uses the folder (``ownership.claim_checkpoints``)."""
    cfg = run_config(run)
    key = f"{cfg.registered_name}-{cfg.profile}-{cfg.digest()}-{task_md5}"
    return settings.checkpoint_root() / key


def train(run: Run, task_md5: str) -> Trained:
    """Seed, build, fit (resuming from a checkpoint when one exists); save the weights.

    With ``devices: N > 1`` the fit runs in N processes under torchrun (``zooflow.devices``),
    each calling ``fit_model`` with its ranks; with ``concurrency_limit`` set the step first
    takes ``devices`` slots of that Prefect global concurrency limit (and waits for them)."""
    from zooflow import devices
    from zooflow.training.device import device_label

    cfg = run_config(run)
    tracker = tracking.RunTracker(run.run_id)
    claim = ownership.claim_checkpoints(checkpoint_dir(run, task_md5), run.run_id,
                                        is_finished=lambda owner: tracking.run_status(owner) == "FINISHED")
    tracker.set_tags({"checkpoint_folder": "shared" if claim.shared_key else "private",
                      **({"resumed_from_run": claim.previous_owner} if claim.previous_owner else {})})
    if not claim.shared_key:
        log.info("another live run is training %s on the same data: this run trains from scratch in its own "
                 "checkpoint folder", cfg.registered_name)
    workdir = _workdir(run)
    with devices.slots(cfg):
        started = time.perf_counter()
        if devices.several(cfg):
            fitted = devices.launch(run, claim.folder, workdir)
        else:
            fitted = fit_model(run, claim.folder, workdir)
        seconds = time.perf_counter() - started
    device = device_label(fitted.device) if fitted.epochs else promotion_policy.NOT_TRAINED
    tracker.set_tags({"device": device, "resumed_from_epoch": fitted.resumed_from_epoch,
                      **({"devices": cfg.devices} if devices.several(cfg) else {})})
    tracker.log_metrics({"train_seconds": seconds})
    return Trained(workdir=str(workdir), device=device, train_seconds=round(seconds, 1),
                   resumed_from_epoch=fitted.resumed_from_epoch)


def fit_model(run: Run, checkpoints: Path, workdir: Path, ranks=None):
    """Seed, build and fit the model of ``run`` in this process (``ranks``: its place among the
    processes of a run on several devices; None: the only one). The main process logs each
    epoch to the run and leaves the weights and the run's context in ``workdir``; the engine's
    ``TrainResult`` is returned."""
    from zooflow.registry.pyfunc import save_context, save_weights
    from zooflow.training import distributed, engine
    from zooflow.training.device import seed_everything

    ranks = ranks or distributed.SINGLE
    task, ctx = _context(run)
    seed_everything(ctx.cfg.seed)
    model = task.build_model(ctx)
    tracker = tracking.RunTracker(run.run_id)

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        tracker.log_metrics(metrics, step=epoch)
        log.info("epoch %d/%d %s", epoch, ctx.cfg.epochs, " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))

    result = engine.fit(task, model, ctx, checkpoints, on_epoch, show_progress=ranks.main, ranks=ranks)
    if ranks.main:
        save_weights(model, workdir / "weights.safetensors")
        save_context(ctx, workdir / "run_context.json")
    return result


def evaluate(run: Run, trained: Trained) -> Evaluation:
    """Score the new model, the task's baselines and the current champion on the same data."""
    from zooflow.evaluation import baselines
    from zooflow.registry.pyfunc import rebuild

    task, weights, context_file, ctx = _saved(Path(trained.workdir))
    model, _ = rebuild(weights, context_file)
    predictions = task.predict_split(model, ctx)  # one pass feeds the scores and the figures
    scores = task.score(predictions, ctx)
    baseline = task.baseline(ctx)
    tracker = tracking.RunTracker(run.run_id)
    tracker.log_metrics(scores, prefix="val.")
    _log_renamed_metric_keys(tracker, task.metric_labels(ctx.info))
    tracker.log_metrics(baselines.flat(baseline), prefix="baseline.")  # one baseline or {name: metrics}
    figures = task.examples(model, ctx, predictions, Path(trained.workdir) / "card")
    champion = versions.by_alias(ctx.cfg.registered_name, versions.CHAMPION)
    champion_scores, champion_note = _score_champion(task, ctx, champion)
    if champion_scores:
        tracker.log_metrics(champion_scores, prefix="champion.")
        tracker.set_tags({"champion_rescored_version": champion.version})  # whose scores champion.* are
    return Evaluation(metrics=scores, baseline=baseline, baseline_note=task.baseline_description,
                      figures=tuple(str(p) for p in figures), primary_metric=task.primary_metric, goal=task.goal,
                      champion_version=champion.version if champion else None,
                      champion_metrics=champion_scores, champion_note=champion_note)


def _log_renamed_metric_keys(tracker: tracking.RunTracker, labels: list) -> None:
    """Per-class metric names come from labels; where a label had to change to be a valid
    MLflow key (e.g. ``a/b`` -> ``a_b``), the run keeps the mapping back to the label."""
    from zooflow.evaluation.keys import metric_key_map

    renamed = {str(label): key for label, key in metric_key_map(labels).items() if str(label) != key}
    if renamed:
        tracker.log_json(renamed, "evaluation/metric_keys.json")


def _score_champion(task, ctx: RunContext, champion) -> tuple[dict | None, str]:
    """The champion's scores on this run's validation data (None when there is no champion or
    the task says it is not comparable, e.g. other classes), and a note for the card."""
    if champion is None:
        return None, "no champion yet"
    champion_model, champion_ctx = versions.load_torch(champion)
    reason = task.not_comparable(champion_ctx.info, ctx.info)
    if reason:
        return None, f"champion v{champion.version} {reason}; not comparable"
    rescored = RunContext(cfg=champion_ctx.cfg, info=champion_ctx.info, data_root=ctx.data_root)
    return (evaluate_model(task, champion_model, rescored),
            f"champion v{champion.version} re-scored on this run's held-out data")


def register(run: Run, data: store.DataVersion, validation: Validated, trained: Trained,
             evaluation: Evaluation) -> Registered:
    """Log the pyfunc and register a new version tagged with its whole lineage."""
    from zooflow.registry.pyfunc import log_model

    _, weights, context_file, ctx = _saved(Path(trained.workdir))
    model_uri = log_model(weights, context_file, ctx.data_root, run.run_id)
    git = tracking.git_state(settings.project_root())
    primary = evaluation.primary_metric
    tags = {"task": ctx.cfg.task, "model": ctx.cfg.model, "profile": ctx.cfg.profile,
            "data_version": data.tag, "data_md5": data.data_md5, "task_data_md5": data.task_md5,
            **git, "config_hash": ctx.cfg.digest(), "device": trained.device, "run_id": run.run_id,
            "validation": "passed" if validation.success else "failed", "validation_summary": validation.summary,
            "primary_metric": primary, "primary_metric_value": f"{evaluation.metrics[primary]:.4f}",
            "pretrained": ctx.cfg.pretrained}
    tags |= {f"metric.{k}": f"{v:.4f}" for k, v in evaluation.metrics.items()}
    with versions.registry_lock(ctx.cfg.registered_name):
        ref = versions.register(model_uri, ctx.cfg.registered_name, tags)
    log.info("registered %s v%s", ref.name, ref.version)
    return Registered(name=ref.name, version=ref.version, model_uri=model_uri)


def promote(run: Run, registered: Registered, evaluation: Evaluation) -> Promotion:
    """Apply the task's policy: ``champion`` or ``challenger``, with reasons as tags and a log row.

    Read-decide-write under the model's registry lock: when another run changed the champion
    since this run's evaluation, the new champion is re-scored on this run's data first, so the
    better of two racing runs ends champion and the promotion log tells one consistent story."""
    cfg = run_config(run)
    primary = evaluation.primary_metric
    with versions.registry_lock(registered.name):
        ref = versions.get(registered.name, registered.version)
        champion_version, champion_metrics = evaluation.champion_version, evaluation.champion_metrics
        current = versions.by_alias(registered.name, versions.CHAMPION)
        if (current.version if current else None) != champion_version:
            task, _, _, ctx = _saved(_workdir(run))
            champion_metrics, note = _score_champion(task, ctx, current)
            champion_version = current.version if current else None
            log.info("the champion changed while this run trained: %s", note)
        candidate = promotion_policy.Candidate(
            metric=evaluation.metrics[primary], validation_passed=ref.tags.get("validation") == "passed",
            lineage={key: ref.tags.get(key, "") for key in promotion_policy.LINEAGE_KEYS},
            profile=cfg.profile, device=ref.tags.get("device", ""))
        champion_metric = champion_metrics[primary] if champion_metrics else None
        decision = promotion_policy.decide(cfg.policy, primary, evaluation.goal, candidate, champion_metric,
                                           champion_version)
        previous = versions.apply_alias(ref, decision.alias)
        versions.tag_version(ref, {"promotion.decision": decision.alias, "promotion.reasons": decision.text()})
        versions.log_decision(ref, decision.alias, previous, decision.text(),
                              {primary: candidate.metric, **({"champion_" + primary: champion_metric}
                                                             if champion_metric is not None else {})}, kind="policy")
    tracking.RunTracker(run.run_id).set_tags({"promotion.decision": decision.alias})
    log.info("%s v%s -> %s (%s)", ref.name, ref.version, decision.alias, decision.text())
    return Promotion(alias=decision.alias, promoted=decision.promote, reasons=tuple(decision.reasons),
                     previous_version=previous.version if previous else None)


def write_card(run: Run, data: store.DataVersion, validation: Validated, trained: Trained, evaluation: Evaluation,
               registered: Registered, decision: Promotion) -> CardFiles:
    """The model card (markdown + HTML) with its figures, logged to the run."""
    from zooflow.governance.card import build_card

    _, _, _, ctx = _saved(Path(trained.workdir))
    workdir = Path(trained.workdir) / "card"
    card = build_card(ctx, data=data, validation=validation, trained=trained, evaluation=evaluation,
                      registered=registered, decision=decision, run_id=run.run_id,
                      overrides=run.overrides or {}, book_pretrained=run.book_pretrained,
                      git=tracking.git_state(settings.project_root()), folder=workdir)
    tracker = tracking.RunTracker(run.run_id)
    for file in sorted(workdir.iterdir()):
        tracker.log_artifact(file, "card")
    versions.tag_version(versions.get(registered.name, registered.version),
                         {"card": f"runs:/{run.run_id}/card/model_card.md"})
    return CardFiles(markdown=str(workdir / "model_card.md"), html=str(workdir / "model_card.html"))


def finish(run: Run, status: str) -> None:
    """Close the MLflow run (FINISHED, FAILED or KILLED) and give up the checkpoint folder: a
    success deletes it (nothing left to resume); otherwise it stays for the rerun to resume."""
    tracking.connect().set_terminated(run.run_id, status=status)
    ownership.release_checkpoints(run.run_id, keep=status != "FINISHED")
    if status == "FINISHED":
        shutil.rmtree(settings.project_root() / ".zooflow" / "runs" / run.run_id, ignore_errors=True)


def summary_row(registered: Registered, evaluation: Evaluation, decision: Promotion) -> dict:
    """One line of the demo's summary table."""
    primary = evaluation.primary_metric
    return {"model": registered.name, "version": registered.version, "metric": primary,
            "value": round(evaluation.metrics[primary], 4), "alias": decision.alias}

