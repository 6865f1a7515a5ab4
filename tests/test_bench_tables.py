"""bench/README.md's results tables are bench/tables.py's rendering of the saved benchmark JSON."""

import importlib.util
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "tables.py"
_spec = importlib.util.spec_from_file_location("bench_tables", _SCRIPT)
tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tables)


def test_readme_tables_are_the_saved_json():
    readme = tables.README.read_text()
    assert tables.render(readme) == readme, "run python bench/tables.py after saving a benchmark's JSON"


def test_render_replaces_only_the_marked_stretch(tmp_path):
    for name in tables.TABLES:
        (tmp_path / f"{name}.latest.json").write_text((tables.BENCH / f"{name}.latest.json").read_text())
    stale = "\n".join(f"<!-- {name} results -->\n| old |\n<!-- end {name} results -->" for name in tables.TABLES)
    rendered = tables.render("before\n" + stale + "\nafter\n", tmp_path)
    assert rendered.startswith("before\n") and rendered.endswith("\nafter\n") and "| old |" not in rendered
    assert "| **median (min–max)** | | | **2.40 (2.36–2.44)** |" in rendered
    with pytest.raises(SystemExit, match="no '<!-- main_job_seeds results -->'"):
        tables.render("no markers", tmp_path)
    (tmp_path / "train.latest.json").unlink()
    with pytest.raises(SystemExit, match="a train table but no train.latest.json"):
        tables.render(stale, tmp_path)


def test_rounding_and_rounds_that_miss_the_gain():
    assert tables._num(0.285, 2) == "0.29" and tables._num(1474.0, 0) == "1,474"  # half up, as a reader rounds
    side = {"curve": [[0.0, 0.1], [30.0, 0.15]], "seconds_to_gain": None, "final_gain_points": 5.0}
    result = {"gain_points": 10.0, "rounds": [{"trl": side, "redraft": {"error": "redraft exited 1"}}]}
    table = tables.time_to_accuracy_table(result)
    assert "| 1 (TRL) | redraft exited 1 | not reached / 30.0 s / +5.0 | – |" in table
    assert table.endswith("| **median (min–max)** | | | – |")
