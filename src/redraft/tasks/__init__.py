"""Tasks: the built-in arithmetic family and custom JSONL/Parquet files."""

from redraft.config import TaskConfig
from redraft.tasks.base import Example, Task


def build_task(cfg: TaskConfig) -> Task:
    if cfg.kind == "arithmetic":
        from redraft.tasks.arithmetic import arithmetic_task

        task = arithmetic_task(cfg)
    else:
        from redraft.tasks.files import file_task

        task = file_task(cfg)
    task.demonstrations = cfg.demonstrations
    task.reward = cfg.reward
    return task


__all__ = ["Example", "Task", "build_task"]
