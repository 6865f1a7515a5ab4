"""Configuration of the feedback store, queue, web app, sampling and simulated annotators.

Loaded like the stage configs (pydantic defaults <- user YAML <- ``--set`` overrides) but kept
in this package: the feedback app is not a training stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from redraft.config import Section, TaskConfig, layered_config, read_yaml

ItemKind = Literal["compare", "rank", "rate", "correct"]


class StoreConfig(Section):
    # SQLite file by default (nothing to start); any SQLAlchemy URL, e.g. postgresql://user@host/db.
    url: str = "sqlite:///feedback.db"
    busy_timeout_s: float = Field(30.0, gt=0)
    pool_size: int = Field(10, ge=1)


class QueueConfig(Section):
    labels_per_item: int = Field(1, ge=1, le=50)  # distinct annotators per item; >= 2 gives agreement
    lease_seconds: int = Field(1800, ge=1)  # an unanswered item goes back to the queue after this


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    max_text_chars: int = Field(8000, ge=1)  # corrections and imported texts
    max_body_bytes: int = Field(1_000_000, ge=1024)
    secure_cookies: bool = False  # set when served over HTTPS
    access_log: bool = True  # a log line per request (uvicorn's access log)
    workers: int = Field(1, ge=1)  # server processes sharing the port (each its own interpreter and DB connections)


class SampleSettings(Section):
    """`redraft feedback sample`: completions of a local model for task prompts, queued as items."""

    model: str | None = None  # HF checkpoint folder
    run_id: str | None = None  # recorded with every output (defaults to the folder name)
    split: Literal["train", "val", "test"] = "val"
    prompts: int = Field(16, ge=1)
    samples_per_prompt: int = Field(4, ge=2)
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(16, ge=1)
    kinds: list[ItemKind] = Field(default_factory=lambda: ["compare", "rank", "rate", "correct"])
    seed: int = 0


class FeedbackConfig(Section):
    store: StoreConfig = StoreConfig()
    queue: QueueConfig = QueueConfig()
    server: ServerConfig = ServerConfig()
    task: TaskConfig = TaskConfig()
    sample: SampleSettings = SampleSettings()


def load_feedback_config(path: str | Path | None = None, overrides: list[str] | None = None) -> FeedbackConfig:
    layers = [(str(path), read_yaml(path))] if path is not None else []
    return layered_config(FeedbackConfig, layers, overrides, "feedback config")
