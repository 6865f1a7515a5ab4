"""`redraft feedback ...`: serve the labelling app, fill its queue, run simulated annotators,
export preference datasets and import Label Studio / Argilla exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from redraft.config import load_config
from redraft.feedback.config import FeedbackConfig

feedback_app = typer.Typer(
    help="Human feedback: a labelling web app (compare, rank, rate, correct), simulated annotators, "
    "and preference datasets (prompt/chosen/rejected JSONL) for reward models and DPO.",
    no_args_is_help=True,
)
console = Console()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML file with store/queue/server/task/sample sections.")
]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="Override one key, e.g. --set queue.labels_per_item=2.")
]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Store URL (sets store.url), e.g. sqlite:///feedback.db or postgresql://user@host/db."),
]


def _config(config: Path | None, overrides: list[str] | None, db: str | None, **extra) -> FeedbackConfig:
    sets = list(overrides or [])
    if db is not None:
        sets.append(f"store.url={json.dumps(db)}")
    sets += [f"{key}={json.dumps(value)}" for key, value in extra.items() if value is not None]
    return load_config(FeedbackConfig, config, sets)


def _sessions(cfg: FeedbackConfig):
    from redraft.feedback.migrations import upgrade
    from redraft.feedback.store import make_engine, make_sessionmaker

    engine = make_engine(cfg.store)
    upgrade(engine)
    return make_sessionmaker(engine)


@feedback_app.command("init-db")
def init_db(config: ConfigOption = None, set_: SetOption = None, db: DbOption = None) -> None:
    """Create the store, or upgrade its schema to the newest version (safe to repeat)."""
    cfg = _config(config, set_, db)
    _sessions(cfg)
    console.print(f"[green]store ready[/green]: {cfg.store.url}")


feedback_app.command("migrate", help="Same as init-db: upgrade the store's schema to the newest version.")(init_db)


@feedback_app.command("add-annotator")
def add_annotator_command(
    name: Annotated[str, typer.Argument(help="A unique display name.")],
    admin: Annotated[bool, typer.Option("--admin", help="May see the admin page and /api/admin/stats.")] = False,
    config: ConfigOption = None,
    set_: SetOption = None,
    db: DbOption = None,
) -> None:
    """Create an annotator and print their sign-in token (shown only this once)."""
    from redraft.feedback.security import add_annotator

    token = add_annotator(_sessions(_config(config, set_, db)), name, is_admin=admin)
    print(token)


@feedback_app.command("rotate-token")
def rotate_token_command(
    name: Annotated[str, typer.Argument(help="The annotator's name.")],
    config: ConfigOption = None,
    set_: SetOption = None,
    db: DbOption = None,
) -> None:
    """Replace an annotator's sign-in token and print the new one (shown only this once). The old
    token stops working at once, in browsers and API clients alike: to revoke an annotator's
    access, rotate and keep the new token."""
    from redraft.feedback.security import rotate_token

    print(rotate_token(_sessions(_config(config, set_, db)), name))


@feedback_app.command()
def serve(
    config: ConfigOption = None,
    set_: SetOption = None,
    db: DbOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1: this machine only).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8765).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Server processes on the port (default 1); more use more cores.")
    ] = None,
) -> None:
    """Serve the labelling app and its JSON API (OpenAPI schema at /openapi.json)."""
    from redraft.feedback.app import serve as serve_app

    cfg = _config(config, set_, db, **{"server.host": host, "server.port": port, "server.workers": workers})
    serve_app(cfg)


@feedback_app.command()
def sample(
    model: Annotated[str | None, typer.Option(help="HF checkpoint folder (sets sample.model).")] = None,
    prompts: Annotated[int | None, typer.Option(help="How many task prompts (sets sample.prompts).")] = None,
    samples: Annotated[
        int | None, typer.Option(help="Completions per prompt (sets sample.samples_per_prompt).")
    ] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (sets sample.temperature).")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    db: DbOption = None,
) -> None:
    """Sample a model's completions for task prompts and queue them as compare/rank/rate/correct items."""
    from redraft.feedback.sampling import sample_into_store

    cfg = _config(
        config,
        set_,
        db,
        **{
            "sample.model": model,
            "sample.prompts": prompts,
            "sample.samples_per_prompt": samples,
            "sample.temperature": temperature,
        },
    )
    counts = sample_into_store(_sessions(cfg), cfg)
    console.print_json(json.dumps(counts))


@feedback_app.command()
def export(
    out: Annotated[Path, typer.Argument(help="Folder for pairs.jsonl, ratings.jsonl and sft.jsonl.")],
    config: ConfigOption = None,
    set_: SetOption = None,
    db: DbOption = None,
) -> None:
    """Write the labels as datasets: pairs.jsonl (prompt/chosen/rejected), ratings.jsonl, sft.jsonl."""
    from redraft.feedback.exchange import export_datasets

    counts = export_datasets(_sessions(_config(config, set_, db)), out)
    console.print_json(json.dumps(counts))


@feedback_app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="A Label Studio or Argilla JSON export.")],
    format_: Annotated[str, typer.Option("--format", help="label-studio | argilla")],
    annotator: Annotated[str, typer.Option(help="Annotator name the imported labels are recorded under.")] = "imported",
    config: ConfigOption = None,
    set_: SetOption = None,
    db: DbOption = None,
) -> None:
    """Import preference labels from a Label Studio (pairwise) or Argilla (ranking) export."""
    from redraft.feedback.exchange import import_file

    counts = import_file(_sessions(_config(config, set_, db)), path, format_, annotator)
    console.print_json(json.dumps(counts))


@feedback_app.command()
def annotate(
    url: Annotated[
        str | None, typer.Option(help="Base URL of a running app; default: serve the store in-process.")
    ] = None,
    token: Annotated[list[str] | None, typer.Option(help="Annotator token (repeatable).")] = None,
    annotators: Annotated[int, typer.Option(help="Without --token: create this many simulated annotators.")] = 2,
    policy: Annotated[
        str, typer.Option(help="correct_then_shorter | shorter | longer | random")
    ] = "correct_then_shorter",
    noise: Annotated[float, typer.Option(help="Probability of flipping a preference / moving a rating.")] = 0.0,
    max_labels: Annotated[
        int | None, typer.Option(help="Labels per annotator (default: until the queue is empty).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Annotators working at once (default: all).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    config: ConfigOption = None,
    set_: SetOption = None,
    db: DbOption = None,
) -> None:
    """Label the queue with simulated annotators through the HTTP API (for demos and CI)."""
    from redraft.errors import RedraftError
    from redraft.feedback.annotators import simulate_annotators
    from redraft.feedback.app import running_server
    from redraft.feedback.security import add_annotator

    if policy not in ("correct_then_shorter", "shorter", "longer", "random"):
        raise RedraftError(f"unknown policy {policy!r}; expected correct_then_shorter, shorter, longer or random")
    cfg = _config(config, set_, db)
    match = cfg.task.match
    kwargs = {
        "policy": policy,
        "noise": noise,
        "max_labels": max_labels,
        "concurrency": concurrency,
        "seed": seed,
        "match": match,
    }
    if url is not None:
        if not token:
            raise RedraftError("--url needs at least one --token")
        report = simulate_annotators(url, list(token), **kwargs)
    else:
        sessions = _sessions(cfg)
        tokens = list(token or [])
        if not tokens:
            from uuid import uuid4

            tokens = [add_annotator(sessions, f"sim-{policy}-{uuid4().hex[:8]}") for _ in range(annotators)]
        with running_server(config=cfg) as base_url:
            report = simulate_annotators(base_url, tokens, **kwargs)
    console.print_json(json.dumps(report.summary()))
