import json

import pytest

from redraft.config import TaskSection
from redraft.errors import DataError
from redraft.tasks import build_task


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_jsonl_task_with_extra_fields(tmp_path):
    rows = [{"prompt": f"What is {i} doubled?", "answer": str(2 * i), "source": "unit"} for i in range(50)]
    _write(tmp_path / "train.jsonl", rows)
    task = build_task(
        TaskSection(
            kind="file",
            train_path=str(tmp_path / "train.jsonl"),
            template="Q: {question}\nA:",
            test_size=10,
            val_size=5,
        )
    )
    assert len(task.test) == 10 and len(task.val) == 4 and len(task.train) == 36
    ex = task.train[0]
    assert ex.fields == {"source": "unit"}
    assert task.prompt(ex).startswith("Q: What is")
    assert task.check(f" {ex.answer}", ex)


def test_malformed_line_reports_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "answer": "1"}\n{"prompt": "b", "answer": \n')
    with pytest.raises(DataError, match=rf"{path}:2: invalid JSON"):
        build_task(TaskSection(kind="file", train_path=str(path)))


def test_line_that_is_not_utf8_reports_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"prompt": "a", "answer": "1"}\n{"prompt": "caf\xe9", "answer": "2"}\n')
    with pytest.raises(DataError, match=rf"{path}:2: not valid UTF-8 \(byte 0xe9 at column 16\)"):
        build_task(TaskSection(kind="file", train_path=str(path)))


def test_empty_task_file_is_named(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DataError, match=rf"{path}: no records \(the file is empty\)"):
        build_task(TaskSection(kind="file", train_path=str(path)))


def test_missing_field_reports_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "answer": "1"}\n\n{"prompt": "b"}\n')
    with pytest.raises(DataError, match=rf"{path}:3: missing or empty field 'answer'"):
        build_task(TaskSection(kind="file", train_path=str(path)))


def test_missing_file_and_parquet(tmp_path):
    with pytest.raises(DataError, match="task file not found"):
        build_task(TaskSection(kind="file", train_path=str(tmp_path / "none.jsonl")))
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"prompt": [f"{i}+1" for i in range(30)], "answer": [str(i + 1) for i in range(30)]})
    pq.write_table(table, tmp_path / "t.parquet")
    task = build_task(TaskSection(kind="file", train_path=str(tmp_path / "t.parquet"), test_size=5, val_size=0))
    assert len(task.test) == 5 and len(task.train) == 25
    bad = pa.table({"prompt": ["1+1", "2+2"], "answer": ["2", None]})
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="row 2: missing or empty field 'answer'"):
        build_task(TaskSection(kind="file", train_path=str(tmp_path / "bad.parquet")))
