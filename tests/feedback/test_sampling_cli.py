from __future__ import annotations

import json

from sqlalchemy import func, select
from typer.testing import CliRunner

from redraft.config import TaskSection
from redraft.feedback.cli import feedback_app
from redraft.feedback.config import FeedbackConfig, SampleSection, StoreSection
from redraft.feedback.loadtest import seed_arithmetic_items
from redraft.feedback.sampling import sample_into_store
from redraft.feedback.store import Item, Output
from redraft.models import save_model
from tests.feedback.conftest import open_store


def test_sample_queues_a_models_completions(micro_model, tokenizer, tmp_path, sqlite_url):
    save_model(micro_model, tokenizer, tmp_path / "model")
    config = FeedbackConfig(
        store=StoreSection(url=sqlite_url),
        task=TaskSection(train_size=600, val_size=32, test_size=64, max_digits=2),
        sample=SampleSection(model=str(tmp_path / "model"), prompts=3, samples_per_prompt=4, max_new_tokens=4),
    )
    engine, sessions = open_store(sqlite_url)
    counts = sample_into_store(sessions, config)
    assert counts == {"prompts": 3, "outputs": 12, "items": {"compare": 6, "rank": 3, "rate": 12, "correct": 3}}
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Item)) == 24
        assert set(session.scalars(select(Output.run_id))) == {"model"}
    engine.dispose()


def test_cli_creates_annotators_runs_simulated_ones_and_exports(tmp_path, sqlite_url):
    runner = CliRunner()
    assert runner.invoke(feedback_app, ["init-db", "--db", sqlite_url]).exit_code == 0
    token = runner.invoke(feedback_app, ["add-annotator", "alice", "--db", sqlite_url]).output.strip()
    assert len(token) > 20
    duplicate = runner.invoke(feedback_app, ["add-annotator", "alice", "--db", sqlite_url])
    assert duplicate.exit_code != 0 and "already exists" in str(duplicate.exception)
    engine, sessions = open_store(sqlite_url)
    seed_arithmetic_items(sessions, items=6, labels_per_item=1)  # 2 prompts: a right and a wrong sum each
    engine.dispose()
    annotate = runner.invoke(feedback_app, ["annotate", "--db", sqlite_url, "--annotators", "2"])
    assert annotate.exit_code == 0 and json.loads(annotate.output)["labels"] == 6
    exported = runner.invoke(feedback_app, ["export", str(tmp_path / "out"), "--db", sqlite_url])
    assert json.loads(exported.output) == {"pairs": 4, "ratings": 4, "sft": 0}  # 2 comparisons + 2 rating pairs
    for row in map(json.loads, (tmp_path / "out" / "pairs.jsonl").read_text().splitlines()):
        assert row["chosen"] == row["answer"] != row["rejected"]  # the noiseless annotators prefer the right sum
