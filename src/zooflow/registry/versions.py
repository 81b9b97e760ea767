"""Registered models: versions, aliases, the champion, and the promotion log.

Names are ``<task>-<model>``. ``champion`` is the version that serves; the champion it
replaced keeps the alias ``previous-champion``; a version that lost its comparison is the
``challenger``. Every decision is also a run in the ``zooflow-promotions`` experiment, so the
log survives alias moves and is shared wherever the tracking server is.
"""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from zooflow import locks, settings
from zooflow.registry import tracking
from zooflow.registry.pyfunc import rebuild

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous-champion", "challenger"
CANDIDATE = "candidate"  # passed the policy, awaiting a person's approval (policy.approval: required)
PROMOTION_LOG = "zooflow-promotions"


@dataclass(frozen=True)
class VersionRef:
    name: str
    version: str
    run_id: str
    source: str
    tags: dict[str, str]


def _ref(mv) -> VersionRef:
    return VersionRef(mv.name, str(mv.version), mv.run_id, mv.source, dict(mv.tags))


LOCK_PREFIX = "zooflow-lock."   # registered models that are registry mutexes, not models
LOCK_WAIT_SECONDS = 600
LOCK_STALE_SECONDS = 900        # a mutex older than this was left by a process that died holding it


@contextmanager
def registry_lock(name: str):
    """Hold the lock under which ``name``'s versions are created and its aliases move: the
    read-decide-write of a promotion is then a compare-and-set, so of two racing runs the
    second decides against the first's result. A file lock serialises the processes of one
    machine; with a tracking server, a mutex in the server's own database serialises clients
    on different machines too (:func:`server_mutex`)."""
    with locks.held(settings.project_root() / ".zooflow" / "locks" / f"registry-{name}.lock",
                    timeout=LOCK_WAIT_SECONDS):
        if tracking.is_server(settings.tracking_uri()):
            with server_mutex(name):
                yield
        else:
            yield


@contextmanager
def server_mutex(name: str, wait: float = LOCK_WAIT_SECONDS, stale: float = LOCK_STALE_SECONDS, poll: float = 0.2):
    """A mutex shared by every client of one tracking server: the registered model
    ``zooflow-lock.<name>``. Creating a registered model whose name exists fails atomically in
    the server's database (a unique name), so the client that creates it holds the mutex and
    deleting it releases it. One older than ``stale`` seconds was left by a holder that died and
    is broken (and the break is logged)."""
    import logging
    import os
    import socket

    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    client = tracking.connect()
    lock_name = f"{LOCK_PREFIX}{name}"
    holder = f"{tracking.who()}@{socket.gethostname()}:{os.getpid()}"
    deadline = time.monotonic() + wait
    while True:
        try:
            client.create_registered_model(lock_name, tags={"holder": holder},
                                           description=f"zooflow registry mutex for {name}: held while its "
                                                       f"versions are created or its aliases move")
            break
        except MlflowException as error:
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
        try:
            existing = client.get_registered_model(lock_name)
        except MlflowException:
            continue  # released meanwhile: try again at once
        age = time.time() - existing.creation_timestamp / 1000
        if age > stale:
            logging.getLogger("zooflow").warning("breaking the registry mutex of %s held by %s for %.0f s",
                                                 name, existing.tags.get("holder", "?"), age)
            _delete_quietly(client, lock_name)
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"the registry mutex of {name} on the tracking server stayed held by "
                               f"{existing.tags.get('holder', '?')} for {wait:.0f} s")
        time.sleep(poll)
    try:
        yield
    finally:
        _delete_quietly(client, lock_name)


def _delete_quietly(client, lock_name: str) -> None:
    try:
        client.delete_registered_model(lock_name)
    except MlflowException:
        pass  # already gone (broken as stale by another client)


def register(model_uri: str, name: str, tags: dict[str, object]) -> VersionRef:
    """A new version of ``name`` from a logged model, tagged with its lineage."""
    client = tracking.connect()
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description=f"zooflow model {name}")
        except MlflowException:  # created meanwhile by a run on another machine
            client.get_registered_model(name)
    mv = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})
    return _ref(client.get_model_version(name, mv.version))


def require_model(name: str) -> None:
    """A ``UserError`` naming ``name`` when no model of that name is registered."""
    from zooflow.errors import UserError

    try:
        tracking.connect().get_registered_model(name)
    except MlflowException:
        raise UserError(f"there is no registered model named '{name}' (see `zooflow models`)") from None


def by_alias(name: str, alias: str) -> VersionRef | None:
    """The version holding ``alias``, or None."""
    client = tracking.connect()
    try:
        return _ref(client.get_model_version_by_alias(name, alias))
    except MlflowException:
        return None


def get(name: str, version: str) -> VersionRef:
    """One version of a registered model (LookupError naming it when there is none)."""
    try:
        return _ref(tracking.connect().get_model_version(name, str(version)))
    except MlflowException:
        raise LookupError(f"{name} has no version {version} (see `zooflow models`)") from None


def resolve_spec(spec: str) -> VersionRef:
    """``NAME@ALIAS`` or ``NAME/VERSION`` (or ``NAME:VERSION``) -> the version."""
    if "@" in spec:
        name, alias = spec.split("@", 1)
        found = by_alias(name, alias)
        if found is None:
            raise LookupError(f"{name} has no version with alias '{alias}'")
        return found
    for separator in ("/", ":"):
        if separator in spec:
            name, version = spec.rsplit(separator, 1)
            return get(name, version)
    raise LookupError(f"'{spec}' is neither NAME@ALIAS nor NAME/VERSION")


def load_torch(ref: VersionRef):
    """The version's torch model and context, rebuilt from its logged weights (for re-scoring)."""
    with tempfile.TemporaryDirectory(prefix="zooflow-model-") as folder:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{ref.name}/{ref.version}", dst_path=folder))
        # The weights are read into memory here, so the download can go.
        return rebuild(local / "artifacts" / "weights.safetensors", local / "artifacts" / "run_context.json")


def tag_version(ref: VersionRef, tags: dict[str, object]) -> None:
    client = tracking.connect()
    for key, value in tags.items():
        client.set_model_version_tag(ref.name, ref.version, key, str(value))


def apply_alias(ref: VersionRef, alias: str) -> VersionRef | None:
    """Give ``ref`` the alias. A new champion sends the old one to ``previous-champion``.
    Returns the version that held the alias before (None if none, or if it was ``ref``)."""
    client = tracking.connect()
    before = by_alias(ref.name, alias)
    if before and before.version == ref.version:
        return None
    if alias == CHAMPION and before:
        client.set_registered_model_alias(ref.name, PREVIOUS, before.version)
    client.set_registered_model_alias(ref.name, alias, ref.version)
    if alias == CHAMPION:
        for stale in (CHALLENGER, CANDIDATE):
            holder = by_alias(ref.name, stale)
            if holder and holder.version == ref.version:
                client.delete_registered_model_alias(ref.name, stale)
    return before


def drop_alias(ref: VersionRef, alias: str) -> bool:
    """Take ``alias`` off ``ref`` when ``ref`` holds it; whether it did."""
    holder = by_alias(ref.name, alias)
    if holder is None or holder.version != ref.version:
        return False
    tracking.connect().delete_registered_model_alias(ref.name, alias)
    return True


def log_decision(ref: VersionRef, alias: str, previous: VersionRef | None, reason: str,
                 metrics: dict[str, float], kind: str, who: str | None = None) -> str:
    """Append a row to the promotion log: when (the run's time), who (this machine's user unless
    given, e.g. a reviewer), from, to, metrics, why."""
    client = tracking.connect()
    run = client.create_run(tracking.experiment_id(PROMOTION_LOG), run_name=f"{ref.name} v{ref.version} -> {alias}",
                            tags={"model": ref.name, "version": ref.version, "alias": alias, "kind": kind,
                                  "who": who or tracking.who(), "from_version": previous.version if previous else "",
                                  # the account that made the change (a reviewer's name is declared;
                                  # this is what the tracking server authenticated, or the OS user)
                                  "account": tracking.who(),
                                  "reason": reason[:4900]})
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, float(value))
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def promotion_log(name: str | None = None) -> list[dict]:
    """The promotion log, newest first."""
    tracking.connect()
    try:
        experiment = tracking.experiment_id(PROMOTION_LOG)
    except MlflowException:
        return []
    runs = mlflow.search_runs([experiment], filter_string=f"tags.model = '{name}'" if name else "",
                              order_by=["attributes.start_time DESC"], output_format="list")
    return [{"when": run.info.start_time, **{k: run.data.tags.get(k, "") for k in
             ("model", "version", "alias", "kind", "who", "account", "from_version", "reason")},
             "metrics": json.dumps(run.data.metrics)} for run in runs]


def list_models() -> list[dict]:
    """Every registered model with its versions, aliases and primary metric."""
    client = tracking.connect()
    rows = []
    for model in client.search_registered_models(order_by=["name ASC"]):
        if model.name.startswith(LOCK_PREFIX):
            continue  # a mutex held right now, not a model
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        for mv in client.search_model_versions(f"name = '{model.name}'"):
            rows.append({"name": model.name, "version": str(mv.version),
                         "aliases": ", ".join(sorted(aliases.get(str(mv.version), []))),
                         "metric": mv.tags.get("primary_metric", ""), "value": mv.tags.get("primary_metric_value", ""),
                         "profile": mv.tags.get("profile", ""), "device": mv.tags.get("device", ""),
                         "decision": mv.tags.get("promotion.decision", "")})
    return sorted(rows, key=lambda r: (r["name"], -int(r["version"])))
