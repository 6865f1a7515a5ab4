"""Feedback app under load: N simulated annotators label M items each at once, over HTTP.

Prints one JSON line per database with labels/s and request latency percentiles, after checking
that no label was lost or duplicated. PostgreSQL is measured when --postgres URL is given (a
server URL without a database; a fresh database is created on it).

    python bench/feedback_load.py --annotators 50 --labels 200 [--workers 2] [--postgres postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import uuid
from pathlib import Path

from redraft.feedback.loadtest import run_load


def postgres_database(server_url: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    plain = server_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{plain}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--labels", type=int, default=200, help="labels per annotator")
    parser.add_argument("--labels-per-item", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="server processes (redraft feedback serve --workers)")
    parser.add_argument("--postgres", help="PostgreSQL server URL (no database name)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        if args.postgres:
            urls["postgresql"] = postgres_database(args.postgres)
        for name, url in urls.items():
            report, counts = run_load(url, args.annotators, args.labels, args.labels_per_item, workers=args.workers)
            expected = args.annotators * args.labels
            ok = counts["labels"] == report.total_labels == expected and counts["duplicate_pairs"] == 0
            print(json.dumps({"db": name, "ok": ok, "workers": args.workers, **report.summary()}), flush=True)


if __name__ == "__main__":
    main()
