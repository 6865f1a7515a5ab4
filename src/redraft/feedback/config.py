"""Configuration of the feedback store, queue, web app, sampling and simulated annotators.

Loaded like the stage configs (pydantic defaults <- user YAML <- ``--set`` overrides) but kept
in this package: the feedback app is not a training stage.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from redraft.config import Section, TaskSection

ItemKind = Literal["compare", "rank", "rate", "correct"]


class StoreSection(Section):
    url: str = Field(
        "sqlite:///feedback.db",
        description="the store's SQLAlchemy URL: a SQLite file by default (nothing to start), or e.g. "
        "postgresql://user@host/db (--db sets it)",
    )
    busy_timeout_s: float = Field(
        30.0, gt=0, description="SQLite: how long a writer waits for the database lock, seconds"
    )
    pool_size: int = Field(
        10, ge=1, description="database connections kept open per process (up to twice as many more under load)"
    )


class QueueSection(Section):
    labels_per_item: int = Field(
        1, ge=1, le=50, description="distinct annotators per item; 2 or more gives inter-annotator agreement"
    )
    lease_seconds: int = Field(
        1800, ge=1, description="an item served but not answered goes back to the queue after this"
    )


class ServerSection(Section):
    host: str = Field(
        "127.0.0.1", description="address the app binds (the default is reachable from this machine only)"
    )
    port: int = Field(8765, ge=0, le=65535, description="port the app listens on (0: any free port)")
    max_text_chars: int = Field(8000, ge=1, description="longest correction or imported text, in characters")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="largest request body; larger ones get 413")
    secure_cookies: bool = Field(False, description="mark cookies Secure: set when the app is served over HTTPS")
    access_log: bool = Field(True, description="a log line per request (uvicorn's access log)")
    workers: int = Field(
        1, ge=1, description="server processes sharing the port, each with its own interpreter and database connections"
    )


class SampleSection(Section):
    """`redraft feedback sample`: completions of a local model for task prompts, queued as items."""

    model: str | None = Field(None, description="the HF checkpoint folder whose completions are queued (--model)")
    dtype: Literal["fp32", "bf16"] = Field("fp32", description="the dtype the model's weights load in")
    run_id: str | None = Field(None, description="recorded with every output (None: the model folder's name)")
    split: Literal["train", "val", "test"] = Field("val", description="the task split the prompts come from")
    prompts: int = Field(16, ge=1, description="prompts taken from the split")
    samples_per_prompt: int = Field(4, ge=2, description="completions sampled per prompt")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    max_new_tokens: int = Field(16, ge=1, description="most tokens per completion")
    stop: list[str] = Field(
        [], description="strings that end a completion, cut from its text (special tokens such as <|im_end|> too)"
    )
    kinds: list[ItemKind] = Field(
        default_factory=lambda: ["compare", "rank", "rate", "correct"],
        description="item kinds queued per prompt: compare two outputs, rank all, rate one 1–7, correct one",
    )
    seed: int = Field(0, description="seed of the sampling and of which outputs each item shows")


class FeedbackConfig(Section):
    """`redraft feedback ...`: every subcommand reads this one config."""

    store: StoreSection = Field(
        StoreSection(), description="the database that holds prompts, outputs, items and labels"
    )
    queue: QueueSection = Field(QueueSection(), description="how items are handed to annotators")
    server: ServerSection = Field(ServerSection(), description="the web app (`redraft feedback serve`)")
    task: TaskSection = Field(
        TaskSection(), description="the task `feedback sample` takes prompts (and reference answers) from"
    )
    sample: SampleSection = Field(SampleSection(), description="`redraft feedback sample`: what is sampled and queued")
