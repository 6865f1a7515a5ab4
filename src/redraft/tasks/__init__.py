"""Tasks: the built-in arithmetic family, GSM8K-style math word problems, code problems (HumanEval
built in, or HumanEval/MBPP-format files) and custom JSONL/Parquet files."""

from redraft.config import TaskSection
from redraft.tasks.base import Example, Task


def _default(name: str):
    return TaskSection.model_fields[name].default


def build_task(cfg: TaskSection) -> Task:
    # The arithmetic defaults of template ('{question}=') and match ('numeric') stand for each
    # kind's own: 'Question: {question}\nAnswer:' and math-verify for math, '{question}' and the
    # sandbox for code.
    template_given = cfg.template != _default("template")
    if cfg.kind == "arithmetic":
        from redraft.tasks.arithmetic import arithmetic_task

        task = arithmetic_task(cfg)
    elif cfg.kind == "math":
        from redraft.tasks.word_problems import MATH_TEMPLATE, word_problem_task

        match = "math" if cfg.match == _default("match") else cfg.match
        task = word_problem_task(cfg, cfg.template if template_given else MATH_TEMPLATE, match)
    elif cfg.kind == "code":
        from redraft.errors import ConfigError
        from redraft.tasks.code import CODE_TEMPLATE, code_task

        if cfg.match not in (_default("match"), "code"):
            raise ConfigError(f"task.kind 'code' is checked by running the tests (match 'code'), not {cfg.match!r}")
        task = code_task(cfg, cfg.template if template_given else CODE_TEMPLATE)
    else:
        from redraft.tasks.files import file_task

        task = file_task(cfg)
        if not template_given:
            _warn_doubled_equals(task, cfg.train_path)
    task.demonstrations = cfg.demonstrations
    task.reward = cfg.reward
    return task


def _warn_doubled_equals(task: Task, path: str | None) -> None:
    """The default template '{question}=' after prompts that already end in '=' gives '12+3=='."""
    rows = [ex for ex in task.train + task.val + task.test if isinstance(ex.question, str)]
    ending = sum(ex.question.rstrip().endswith("=") for ex in rows)
    if ending:
        from redraft.errors import warn

        warn(
            f"{ending} of the {len(rows)} prompts of {path} already end in '=', and the default task.template "
            "'{question}=' adds another ('12+3=='); if your prompts are complete, use them as they are: "
            "--set 'task.template=\"{question}\"'"
        )


__all__ = ["Example", "Task", "build_task"]
