"""Tasks: the built-in arithmetic family and custom JSONL/Parquet files."""

from redraft.config import TaskConfig
from redraft.tasks.base import Example, Task


def build_task(cfg: TaskConfig) -> Task:
    if cfg.kind == "arithmetic":
        from redraft.tasks.arithmetic import arithmetic_task

        return arithmetic_task(cfg)
    from redraft.tasks.files import file_task

    return file_task(cfg)


__all__ = ["Example", "Task", "build_task"]
