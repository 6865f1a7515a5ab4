"""Many simulated annotators at once through a real server: nothing lost, nothing duplicated."""

from __future__ import annotations

import json

import pytest

from redraft.feedback.loadtest import run_load

# The load: 50 concurrent annotators, 200 labels each, on every database (a few minutes
# each; bench/feedback_load.py runs the same load and reports throughput and latency).
ANNOTATORS, LABELS_EACH = 50, 200


@pytest.mark.slow
def test_concurrent_annotators_lose_and_duplicate_nothing(db_url):
    report, counts = run_load(db_url, ANNOTATORS, LABELS_EACH, labels_per_item=2)
    print(json.dumps({"db": db_url.split(":")[0], **report.summary()}))
    assert {len(labels) for labels in report.labels.values()} == {LABELS_EACH}
    assert all(label["created"] for labels in report.labels.values() for label in labels)
    label_ids = [label["label_id"] for labels in report.labels.values() for label in labels]
    assert len(set(label_ids)) == len(label_ids) == ANNOTATORS * LABELS_EACH
    for labels in report.labels.values():  # no annotator was served the same item twice
        items = [label["item_id"] for label in labels]
        assert len(set(items)) == len(items)
    assert counts["labels"] == counts["finished_assignments"] == ANNOTATORS * LABELS_EACH
    assert counts["duplicate_pairs"] == 0 and counts["max_labels_per_item"] <= 2
