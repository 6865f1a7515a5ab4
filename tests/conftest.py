"""Shared fixtures: a micro task, tokenizer and model built in seconds."""

from __future__ import annotations

import pytest
import torch

from redraft.config import ModelSection, TaskSection
from redraft.models import build_model
from redraft.tasks import build_task
from redraft.text.tokenizer import train_tokenizer


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow (CI does: .ci/run)")


def pytest_collection_modifyitems(config, items):
    """Without --slow, the slow tests are deselected so a plain `pytest -q` stays a quick check."""
    if config.getoption("--slow"):
        return
    slow = [item for item in items if "slow" in item.keywords]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if "slow" not in item.keywords]


@pytest.fixture(autouse=True)
def _quiet_and_deterministic():
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def micro_task():
    # Unpadded: prompts and answers of several widths exercise the padding of batches.
    return build_task(TaskSection(train_size=600, val_size=32, test_size=64, max_digits=2, pad_digits=False))


@pytest.fixture(scope="session")
def tokenizer(micro_task):
    return train_tokenizer(micro_task.corpus(), vocab_size=280)


@pytest.fixture()
def micro_model(tokenizer):
    torch.manual_seed(0)
    return build_model(ModelSection(preset="micro"), tokenizer)
