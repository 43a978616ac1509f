"""Contact import speed: rows per second for a fresh import and for a re-import.

    .venv/bin/python -m bench.import_contacts [--rows 100000] [--database-url URL]

Without --database-url it imports into a new SQLite file in a temporary folder.
With a PostgreSQL server URL (e.g. postgresql://postgres@127.0.0.1:5432/test) it
creates a scratch database on that server and drops it afterwards.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from pathlib import Path

from bench.harness import scratch_postgres
from carecast.contacts.csv_import import import_contacts
from carecast.contacts.kept import AddressKey
from carecast.store.db import make_engine, make_sessionmaker
from carecast.store.migrate import upgrade

ZONES = ["Europe/Paris", "America/New_York", "Asia/Kolkata", "", ""]


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(42)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(
            ["id", "email", "phone", "timezone", "locale", "lifecycle_stage", "preferences", "attr.first_name"]
        )
        for i in range(rows):
            prefs = json.dumps({"consent": {"sms": True}, "topics": {"offers": rng.random() > 0.1}})
            out.writerow([f"c-{i}", f"user{i}@example.com", f"+1415{rng.randrange(2000000, 9999999)}",
                          rng.choice(ZONES), "en-US", "active", prefs if i % 3 == 0 else "", f"Name{i}"])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", help="a PostgreSQL server URL; SQLite in a temp folder by default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "contacts.csv"
        write_csv(path, args.rows)
        url, drop = (scratch_postgres(args.database_url) if args.database_url
                     else (f"sqlite:///{folder}/bench.db", lambda: None))  # fmt: skip
        engine = make_engine(url)
        try:
            upgrade(engine)
            sessions = make_sessionmaker(engine)
            for label in ("fresh import", "re-import (unchanged)"):
                began = time.perf_counter()
                report = import_contacts(sessions, path, address_key=AddressKey("bench" * 8))
                elapsed = time.perf_counter() - began
                s = report.summary
                print(f"{engine.dialect.name:<10} {label:<22} {args.rows:>8} rows in {elapsed:6.1f}s = "
                      f"{args.rows / elapsed:>8,.0f} rows/s  (created {s.created}, unchanged {s.unchanged}, "
                      f"rejected {len(report.rejected)})")  # fmt: skip
        finally:
            engine.dispose()
            drop()


if __name__ == "__main__":
    main()
