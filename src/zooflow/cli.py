"""``zooflow``: run pipelines, manage data versions, list, promote and review models.

Heavy libraries (torch, MLflow, Prefect, GX, DVC) are imported inside the commands, so
``zooflow --help`` answers at once.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="zooflow: the book's deep-learning tasks as governed pipelines.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Data versions (DVC): demo data, imports, status.", no_args_is_help=True)
app.add_typer(data_app, name="data")
# Piped output (CI logs, `make demo | tee`) has no terminal width; 80 columns would fold names.
console = Console(width=None if sys.stdout.isatty() else 140)


def _root() -> Path:
    from zooflow import settings

    return settings.project_root()


def _flows(runs: bool = True):
    """Import the flows package from the project checkout; when ``runs`` (a flow will start),
    check the MLflow store can take a run first (one clear message, not a traceback from inside
    a task). Listing schedules starts nothing and needs no store."""
    from zooflow.registry import tracking

    if runs:
        tracking.require_writable()
    root = str(_root())
    if root not in sys.path:
        sys.path.insert(0, root)
    import flows.demo
    import flows.pipeline
    import flows.predict
    import flows.retrain

    _no_tracebacks_for_user_errors()
    return flows


class _UserErrorTracebacks(logging.Filter):
    """Prefect logs a failed task's traceback; for a user's error (bad data, a missing weights
    file, a stop asked for) the message names what is wrong, and the traceback is noise that
    buries it. ``--debug`` keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        from zooflow.errors import UserError
        from zooflow.registry.tracking import refusal

        error = record.exc_info[1] if record.exc_info else None
        if error is not None and (isinstance(error, (UserError, KeyboardInterrupt)) or refusal(error)):
            record.exc_info, record.exc_text = None, None
        return True


def _no_tracebacks_for_user_errors() -> None:
    if "--debug" in sys.argv:
        return
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    for handler in {handler for logger in loggers for handler in logger.handlers}:
        if not any(isinstance(f, _UserErrorTracebacks) for f in handler.filters):
            handler.addFilter(_UserErrorTracebacks())


def _summary(rows: list[dict]) -> None:
    table = Table(title="zooflow: registered models from this run")
    for column in ("model", "version", "metric", "value", "alias"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("model", "version", "metric", "value", "alias")))
    console.print(table)
    from zooflow import settings

    for row in rows:
        console.print(f"Model card: zooflow card {row['model']}/{row['version']}")
        if row.get("review"):
            console.print(f"Review of {row['model']} v{row['version']}: {row['review']}", markup=False)
    console.print(f"MLflow UI: {_ui_hint(settings.tracking_uri())}", markup=False, highlight=False)


def _served_ui(tracking_uri: str) -> bool:
    """True when the tracking store is a server (which serves its own UI), not a local store."""
    from zooflow.registry.tracking import is_server

    return is_server(tracking_uri)


def _ui_hint(tracking_uri: str) -> str:
    """Where a user sees the runs: the tracking server's own UI, or ``make ui`` on a local store."""
    if _served_ui(tracking_uri):
        return f"open {tracking_uri} (the tracking server serves its own UI)"
    return "make ui (or `zooflow ui`), then open http://127.0.0.1:5000"


@app.command()
def run(task: str = typer.Argument(..., help="task name, e.g. classification"),
        model: str = typer.Option(..., "--model", "-m", help="model name, e.g. vgg16-transfer"),
        profile: str = typer.Option("demo", "--profile", "-p", help="smoke | demo | book"),
        seed: int | None = typer.Option(None, "--seed", help="replace the config's random seed"),
        changes: list[str] = typer.Option([], "--set", help="KEY=VALUE: replace a config value for this run "
                                                            "(repeatable: --set epochs=3 --set lr.head=1e-3 "
                                                            "--set params.tokenizer=sudachi)")) -> None:
    """Run one task model through the governed pipeline."""
    from zooflow import watchdog
    from zooflow.config import parse_overrides, resolve

    overrides = parse_overrides(changes) | ({} if seed is None else {"seed": seed})
    resolve(task, model, profile, overrides=overrides)  # a typo fails here, before a Prefect server starts
    watchdog.start()  # a kill -9 must not leave Prefect's temporary server behind
    _summary([_flows().pipeline.train_task(task, model, profile, overrides=overrides)])


@app.command()
def demo(profile: str = typer.Option("demo", "--profile", "-p"),
         seed: int | None = typer.Option(None, "--seed", help="replace every config's random seed")) -> None:
    """Run every task model's demo profile and print the summary table."""
    from zooflow import watchdog

    watchdog.start()
    _summary(_flows().demo.demo_all(profile, seed))


@data_app.command("demo")
def data_demo() -> None:
    """Build the demo datasets (seeded, deterministic) into data/, then dvc add + push."""
    from zooflow.data import demo as demo_data
    from zooflow.data import store

    root = _root()
    with store.data_lock(root):
        for folder, build in demo_data.BUILDERS.items():
            counts = build(root / store.DATA_DIR / folder)
            console.print(f"data/{folder}: {counts}")
        console.print(f"data version: {store.commit(root)}")


@data_app.command("ensure-demo")
def data_ensure_demo() -> None:
    """Make data/ match data.dvc: pull it, or rebuild the demo data when the remote lacks it."""
    from zooflow.data import store

    root = _root()
    if (root / store.POINTER).exists():
        try:
            store.pull(root)
            if store.is_clean(root):
                console.print(f"data/ is at {store.pointer_md5(root)}")
                return
        except Exception as error:  # the local remote of a fresh clone is empty
            console.print(f"dvc pull: {type(error).__name__}: {error}; rebuilding the demo data")
    data_demo()


@app.command()
def retrain(profile: str = typer.Option("demo", "--profile", "-p", help="smoke | demo | book"),
            tasks: list[str] = typer.Option([], "--task", help="only this task (repeatable); default: every task")) -> None:
    """Retrain every task model whose data changed since its champion was trained (or that has
    no champion yet); each run is tagged with why it ran. The policy still decides promotion."""
    _retrain(profile, tasks)


def _retrain(profile: str, tasks: list[str]) -> None:
    from zooflow import watchdog

    watchdog.start()
    rows = _flows().retrain.retrain_on_new_data(profile, tasks or None)
    if rows:
        _summary(rows)
    else:
        console.print("Every champion was trained on its task's current data: nothing to retrain.")


@data_app.command("import")
def data_import(task: str, source: Path,
                retrain_after: bool = typer.Option(False, "--retrain", help="then retrain this task's models on "
                                                                            "the new data (zooflow retrain)"),
                profile: str = typer.Option("demo", "--profile", "-p", help="the profile --retrain trains")) -> None:
    """Take a dataset in the task's format (an ImageFolder, an aclImdb folder, a TSV/CSV of
    texts, MNIST idx files or digit image folders, a Pascal VOC folder for detection or
    segmentation, a COCO keypoints folder for pose, a Kinetics-style folder of video clips or
    frame folders for video) into data/ as a new version. Nothing changes unless it is all valid:
    links, unsafe names and stray files are refused by name, and the old data and data.dvc stay
    as they were on any error."""
    from zooflow.data.importer import import_dataset

    report = import_dataset(task, source, _root())
    for line in report.lines():
        console.print(line, markup=False, highlight=False)
    if retrain_after:
        _retrain(profile, [task])


@data_app.command("commit")
def data_commit() -> None:
    """Record data/ as it is now as a new version (dvc add + push)."""
    from zooflow.data import store

    with store.data_lock(_root()):
        console.print(f"data version: {store.commit(_root())}")


@data_app.command("status")
def data_status() -> None:
    """The data version of each task's folder and whether it matches data.dvc (each task is
    checked on its own: a clone may hold only the folders its tasks pulled)."""
    from zooflow.config import config_dir, load_task_file
    from zooflow.data import store

    root = _root()
    console.print(f"data.dvc md5: {store.pointer_md5(root)}")
    for file in sorted(config_dir().glob("*.yaml")):
        folder = load_task_file(file.stem, file).data.folder
        try:
            version = store.version(root, folder)
        except store.DataError as error:
            console.print(f"  {file.stem}: {error}")
            continue
        if not (root / store.DATA_DIR / folder).is_dir():
            state = "not pulled (a run of this task pulls it)"
        else:
            changed = store.changes(root, folder)
            state = "matches data.dvc" if not changed else f"{len(changed)} change(s) not recorded, e.g. {changed[0]}"
        console.print(f"  {file.stem}: data/{folder} {version.tag} ({version.files} files): {state}")


@app.command()
def models() -> None:
    """Registered models with their versions, aliases and primary metric."""
    from zooflow.registry.versions import list_models

    table = Table(title="registered models")
    table.add_column("name", no_wrap=True, min_width=20)
    table.add_column("version", justify="right")
    for column in ("aliases", "primary metric", "profile", "device"):
        table.add_column(column, overflow="fold")
    for row in list_models():
        table.add_row(row["name"], row["version"], row["aliases"], f"{row['metric']} {row['value']}",
                      row["profile"], row["device"])
    console.print(table)


@app.command()
def promote(name: str, version: str, reason: str = typer.Option(..., "--reason", help="why (logged)")) -> None:
    """Make NAME VERSION the champion by hand; logged with who and why."""
    from zooflow.registry import versions

    with versions.registry_lock(name):  # the same compare-and-set as the pipeline's promotions
        ref = versions.get(name, version)
        previous = versions.apply_alias(ref, versions.CHAMPION)
        versions.tag_version(ref, {"promotion.decision": versions.CHAMPION, "promotion.reasons": f"manual: {reason}"})
        versions.log_decision(ref, versions.CHAMPION, previous, f"manual: {reason}", {}, kind="manual")
    console.print(f"{name} v{version} is champion (was v{previous.version if previous else '-'})")


schedule_app = typer.Typer(help="Scheduled retraining: serve, deploy to a work pool, list the next runs.",
                            no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("serve")
def schedule_serve(profile: str = typer.Option("demo", "--profile", "-p")) -> None:
    """Serve one deployment per task model on its task's cron, in this process, until Ctrl-C
    (needs PREFECT_API_URL: a Prefect server keeps the schedules)."""
    from prefect import serve

    _require_prefect_server("zooflow schedule serve")
    serve(*_flows().retrain.deployments(profile))


@schedule_app.command("deploy")
def schedule_deploy(pool: str = typer.Option(..., "--pool", help="the Prefect work pool (created if missing)"),
                    profile: str = typer.Option("demo", "--profile", "-p")) -> None:
    """Register the scheduled deployments on a work pool: `zooflow worker --pool POOL` on any
    machine that has this checkout then runs them, writing to this project's tracking store."""
    _require_prefect_server("zooflow schedule deploy")
    retrain = _flows().retrain
    for name in retrain.deploy_to_pool(profile, pool):
        console.print(f"deployed {name} to pool {pool}", markup=False, highlight=False)
    console.print(f"runs go to {retrain.worker_env()['MLFLOW_TRACKING_URI']}; start a worker: zooflow worker --pool "
                  f"{pool}", markup=False, highlight=False)


@schedule_app.command("list")
def schedule_list(profile: str = typer.Option("demo", "--profile", "-p")) -> None:
    """Each scheduled deployment, its cron and its next two runs (UTC)."""
    table = Table(title=f"scheduled retraining ({profile})")
    for column in ("deployment", "cron", "next runs"):
        table.add_column(column)
    for row in _flows(runs=False).retrain.next_runs(profile):
        table.add_row(row["deployment"], row["cron"], ", ".join(row["next"]))
    console.print(table)


server_app = typer.Typer(help="Team servers on one host: PostgreSQL, MLflow and Prefect on it.", no_args_is_help=True)
app.add_typer(server_app, name="server")


@server_app.command("up")
def server_up(host: str = typer.Option("127.0.0.1", "--host", help="where MLflow and Prefect listen (PostgreSQL: 127.0.0.1 only)"),
              postgres_port: int = typer.Option(5433, "--postgres-port"),
              mlflow_port: int = typer.Option(5000, "--mlflow-port"),
              prefect_port: int = typer.Option(4200, "--prefect-port"),
              auth: bool = typer.Option(False, "--auth", help="MLflow's basic-auth app: users, per-model permissions")) -> None:
    """Start PostgreSQL, an MLflow server and a Prefect server on it (idempotent; they keep
    running after this command, their data in .zooflow/server/), then print what to export."""
    from zooflow.team import stack

    if not auth and not _loopback(host):
        # PostgreSQL stays on 127.0.0.1 whatever --host says; the MLflow and Prefect APIs do not
        console.print(f"zooflow: warning: without --auth anyone who reaches {host} can change every model and "
                      f"its aliases", markup=False, highlight=False)
    state = stack.up(host, stack.Ports(postgres_port, mlflow_port, prefect_port), auth)
    for service in stack.status():
        console.print(f"{service.name:<11} {service.url}  {'answering' if service.answering else 'NOT answering'}",
                      markup=False, highlight=False)
    console.print("Work against them (each team member, each shell):", markup=False, highlight=False)
    for line in stack.exports(state):
        print(f"  {line}")  # whole lines, never folded: they are copied into a shell


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return host == "localhost"


@server_app.command("down")
def server_down() -> None:
    """Stop the team servers started from this project (their data is kept)."""
    from zooflow.team import stack

    stack.down()
    console.print("team servers stopped (data kept in .zooflow/server/)", markup=False, highlight=False)


@server_app.command("status")
def server_status() -> None:
    """Each team server: address, process, whether it answers. Exits 1 when one does not."""
    from zooflow.team import stack

    services = stack.status()
    if not services:
        console.print("no team servers were started from this project (zooflow server up)", markup=False)
        raise typer.Exit(1)
    for service in services:
        console.print(f"{service.name:<11} {service.url}  pid {service.pid or '-'}  "
                      f"{'answering' if service.answering else 'stopped'}", markup=False, highlight=False)
    if not all(service.answering for service in services):
        raise typer.Exit(1)


@app.command()
def worker(pool: str = typer.Option(..., "--pool", help="the Prefect work pool to take runs from")) -> None:
    """A Prefect worker that runs this project's deployments: this interpreter (it imports
    zooflow, which `prefect worker start` from the shared environment cannot), until Ctrl-C."""
    import os
    import subprocess

    _require_prefect_server("zooflow worker")
    done = subprocess.run([sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"],
                          env=dict(os.environ), check=False)
    if done.returncode not in _STOPPED:
        raise typer.Exit(done.returncode)


# A long-running child (the MLflow UI, a Prefect worker) that ended normally or was stopped as a
# user stops it (Ctrl-C, SIGTERM: by signal, or as the shell's 128 + signal).
_STOPPED = (0, -2, -15, 130, 143)


def _require_prefect_server(command: str) -> None:
    from prefect.settings import PREFECT_API_URL

    from zooflow.errors import UserError

    if not PREFECT_API_URL.value():
        raise UserError(f"{command} needs a Prefect server: set PREFECT_API_URL (e.g. "
                        f"http://127.0.0.1:4200/api after `prefect server start`); without one, schedules and "
                        f"work pools live nowhere")


@app.command()
def predict(spec: str = typer.Argument(..., help="NAME@ALIAS or NAME/VERSION"),
            input_path: Path = typer.Option(..., "--input", help="a file or a folder of inputs"),
            output: Path = typer.Option(..., "--output", help="the parquet file to write"),
            batch_size: int = typer.Option(32, "--batch-size", min=1)) -> None:
    """Batch inference: answer every input with one registered version, into a parquet table
    whose rows name their input (source) and the version (model, version)."""
    from zooflow import watchdog

    watchdog.start()
    done = _flows().predict.batch_predict(spec, str(input_path), str(output), batch_size)
    console.print(f"{done['model']} v{done['version']}: {done['inputs']} input(s), {done['rows']} answer row(s), "
                  f"{done['errors']} refused -> {done['output']}", markup=False, highlight=False)


@app.command()
def review(name: str, version: str,
           approve: bool = typer.Option(False, "--approve", help="make this candidate the champion"),
           reject: bool = typer.Option(False, "--reject", help="turn this candidate down"),
           comment: str = typer.Option(..., "--comment", help="why (kept in the promotion log)"),
           reviewer: str = typer.Option(None, "--reviewer", help="who reviews (default: this machine's user)")) -> None:
    """Approve or reject a candidate: a version the policy passed, under policy.approval: required."""
    from zooflow.errors import UserError
    from zooflow.registry.review import review as review_version

    if approve == reject:
        raise UserError("say --approve or --reject (one of them)")
    done = review_version(name, version, approve, comment, reviewer)
    if done.decision == "approved":
        console.print(f"{name} v{version} approved: champion (was v{done.previous_champion or '-'})")
    else:
        console.print(f"{name} v{version} rejected: the champion stays as it was")
    if done.flow_run:  # a pipeline flow paused for this review (policy.approval_wait) goes on
        console.print(_flows(runs=False).approval.resume_waiting_flow(done), markup=False, highlight=False)


@app.command()
def log(name: str = typer.Argument(None, help="a registered model name; all when left out")) -> None:
    """The promotion log of every model, newest first (one model's: `zooflow history NAME`)."""
    _promotion_log(name)


@app.command()
def history(name: str = typer.Argument(..., help="a registered model name")) -> None:
    """One model's full promotion log, newest first: when, who (the reviewer, for a review), from
    which version to which alias, the metrics, why, and the kind (policy, manual, review)."""
    from zooflow.registry.versions import require_model

    require_model(name)
    _promotion_log(name)


def _promotion_log(name: str | None) -> None:
    import datetime as dt
    import json

    from zooflow.registry.versions import promotion_log

    columns = ("version", "alias", "kind", "who", "from_version") if name else ("model", "version", "alias", "kind",
                                                                               "who", "from_version")
    table = Table(title=f"promotion log of {name}" if name else "promotion log")
    for column in ("when", *columns):
        table.add_column(column, no_wrap=column != "model")  # short values stay whole; reasons fold
    table.add_column("metrics", overflow="fold")
    table.add_column("reason", overflow="fold")
    for row in promotion_log(name):
        when = dt.datetime.fromtimestamp(row["when"] / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        metrics = ", ".join(f"{key} {value:.4f}" for key, value in sorted(json.loads(row["metrics"]).items()))
        if row["account"] and row["account"] != row["who"]:  # a reviewer named by an account that is not theirs
            row = {**row, "who": f"{row['who']} (account {row['account']})"}
        table.add_row(when, *(row[c] for c in columns), metrics, row["reason"])
    console.print(table)


@app.command("review-report")
def review_report(name: str = typer.Argument(..., help="a registered model name"),
                  output: Path = typer.Option(None, "--output", help="the folder to write to (default: reports/ "
                                                                     "in the project)"),
                  candidate: str = typer.Option(None, "--candidate", help="the version to review (default: the one "
                                                                          "with alias candidate, else the newest "
                                                                          "that is not champion)")) -> None:
    """Write the governance review of NAME (markdown + HTML): champion beside candidate, with
    metrics on the same data, baseline, data, config and code changes, cards and decisions."""
    from zooflow.governance.review_report import write

    for path in write(name, output or _root() / "reports", candidate):
        console.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def card(spec: str = typer.Argument(..., help="NAME@ALIAS or NAME/VERSION"),
         html: Path = typer.Option(None, "--html", help="also save the HTML card (with figures) into this folder")) -> None:
    """Print a model version's card."""
    import mlflow

    from zooflow.registry import versions

    ref = versions.resolve_spec(spec)
    text = mlflow.artifacts.load_text(f"runs:/{ref.run_id}/card/model_card.md")
    typer.echo(text)
    if html:
        mlflow.artifacts.download_artifacts(f"runs:/{ref.run_id}/card", dst_path=str(html))
        console.print(f"HTML card: {html / 'card' / 'model_card.html'}")


@app.command()
def explain(spec: str = typer.Argument(..., help="NAME@ALIAS or NAME/VERSION of a text model"),
            text: str = typer.Argument(..., help="the text to classify")) -> None:
    """Classify a text and show, per layer and head, what the first token attends to."""
    from rich.markup import escape

    from zooflow.registry import versions
    from zooflow.tasks import get_task

    model, ctx = versions.load_torch(versions.resolve_spec(spec))
    task = get_task(ctx.cfg.module)
    if not hasattr(task, "explain"):
        raise LookupError(f"{spec} is a {ctx.cfg.task} model, which has no attention to explain")
    found = task.explain(model, ctx, text)
    console.print(f"[bold]{found['label']}[/bold] ({found['probability']:.3f})")
    for layer, heads in enumerate(found["attention"], 1):
        for head, weights in enumerate(heads, 1):
            top = max(weights) or 1.0
            shaded = " ".join(f"[on rgb(255,{int(255 - 200 * w / top)},{int(255 - 200 * w / top)})]{escape(token)}[/]"
                              for token, w in zip(found["tokens"], weights))
            console.print(f"layer {layer} head {head}: ", end="")
            console.print(shaded, highlight=False)


@app.command()
def serve(spec: str = typer.Argument(..., help="NAME@ALIAS or NAME/VERSION, e.g. classification-vgg16-transfer@champion"),
          port: int = typer.Option(5001, "--port", help="port to listen on"),
          host: str = typer.Option("127.0.0.1", "--host", help="address to listen on")) -> None:
    """Serve a registered model over REST (MLflow's scoring server) until Ctrl-C."""
    from zooflow import interrupts, settings
    from zooflow.registry import serving, versions

    ref = versions.resolve_spec(spec)  # a bad NAME@ALIAS is one line, before any server starts
    # The resolved version, not the alias: a promotion while serving must not change the model.
    uri = f"models:/{ref.name}/{ref.version}"
    module = serving.task_module(uri)
    server = serving.start(uri, host, port, settings.tracking_uri())
    try:
        serving.wait_until_ready(server, f"http://{host}:{port}/ping")
        url = f"http://{host}:{port}/invocations"
        console.print(f"Serving {ref.name} v{ref.version} ({uri}) at {url}", markup=False, highlight=False, soft_wrap=True)
        console.print(f"Try: {serving.curl_line(module, url)}", markup=False, highlight=False, soft_wrap=True)
        console.print("Ctrl-C stops the server.", markup=False, highlight=False)
        server.wait()
        if server.returncode:
            raise SystemExit(server.returncode)
    except (KeyboardInterrupt, interrupts.Interrupted):
        console.print("zooflow: stopping the model server", markup=False, highlight=False)
    finally:
        serving.stop(server)


@app.command()
def ui(port: int = 5000) -> None:
    """Open the MLflow UI on this project's store (127.0.0.1). With a tracking server
    (MLFLOW_TRACKING_URI=http...), the server's own UI is the one to open: it says so. Exits
    with the UI's status when it cannot start (a port in use, a store it cannot read)."""
    import subprocess

    from zooflow import settings

    uri = settings.tracking_uri()
    if _served_ui(uri):
        console.print(f"This project tracks to a server: {_ui_hint(uri)}", markup=False, highlight=False)
        return
    from zooflow import ports

    # mlflow ui logs "Address already in use" and still exits 0
    ports.require_free("127.0.0.1", port, "the MLflow UI", "another UI or server is running there; choose another "
                       "with --port")
    done = subprocess.run([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                           "--host", "127.0.0.1", "--port", str(port)], check=False)
    if done.returncode not in _STOPPED:
        console.print(f"zooflow: the MLflow UI on {uri} stopped with status {done.returncode} (its message is "
                      "above)", markup=False, highlight=False)
        raise typer.Exit(done.returncode)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that are about the user's data, config, command or environment: shown as one
    clear message (it names the file/row/key and what is wrong), not as a traceback."""
    from zooflow.errors import UserError

    return UserError, LookupError, FileNotFoundError


def _say_error(title: str, message: str) -> None:
    console.print(f"[bold red]zooflow: {title}[/bold red]")
    console.print(message, markup=False, highlight=False, soft_wrap=True)  # paths stay whole, copyable


def main() -> None:
    """The ``zooflow`` command. ``--debug`` (anywhere on the line) shows tracebacks."""
    from zooflow import interrupts

    args = sys.argv[1:]
    debug = "--debug" in args
    args = [arg for arg in args if arg != "--debug"]
    interrupts.reset()
    interrupts.install()
    try:
        # Non-standalone typer turns a KeyboardInterrupt into a returned 130 (and typer.Exit
        # into its code): what stopped the run is then in interrupts.last_stop.
        code = app(args=args, prog_name="zooflow", standalone_mode=False)
        if isinstance(code, int) and code != 0:
            raise interrupts.last_stop or SystemExit(code)
    except typer.TyperException as error:  # a mistyped command, option or argument
        error.show() if hasattr(error, "show") else console.print(f"zooflow: {error}", markup=False)
        raise SystemExit(error.exit_code) from None
    except interrupts.Interrupted as stop:
        done = (f" during {stop.where}; the last epoch's checkpoint is kept. Resume with"
                if stop.where else ". Rerun with")
        console.print(f"zooflow: stopped by {stop.signal_name}{done}: zooflow {shlex.join(args)}",
                      markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(stop.exit_code) from None
    except (typer.Abort, KeyboardInterrupt):
        console.print("zooflow: stopped (Ctrl-C)", markup=False, highlight=False)
        raise SystemExit(130) from None
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None
    except _user_errors() as error:
        if debug:
            raise
        _say_error(type(error).__name__, str(error))
        raise SystemExit(getattr(error, "exit_code", 1)) from None
    except Exception as error:  # a bug: say so in one line; the traceback is one flag away
        if debug:
            raise
        from zooflow.registry.tracking import refusal

        refused = refusal(error)
        if refused:  # a team server said no: not a bug
            _say_error("not allowed", refused)
            raise SystemExit(1) from None
        _say_error("internal error", f"{type(error).__name__}: {error}\n"
                   "This is a bug in zooflow, not in your input. Rerun with --debug for the traceback.")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
