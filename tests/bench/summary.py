"""Markdown tables (for the README) from the newest result file of each suite in bench-results/.

python -m tests.bench.summary [FILE.json ...]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from .harness import RESULTS_DIR, Row, format_markdown

SUITE_TITLES = {
    "memories": "Memories (issue 2): 16 agents, reads and GET+PUT If-Match, per server layout",
    "inbox": "Inbox loop (issue 3a): send + fetch unread + bulk ack",
    "inbox-scale": "Inbox fetch against table size (issue 3c)",
    "stream": "Websocket delivery (issue 3b): 100 sockets, 2,500 deliveries/s, 2 daphne + Redis",
    "coordination": "Locks and tasks (issue 4): 16 agents",
    "embedded": "The embedded server (issue 17): inbox loop on one SQLite file, next to gunicorn sync x4",
    "flood": "One agent flooding (issue 12): 8 victims' p99 with and without the flood",
}


def newest_files() -> list[Path]:
    newest: dict[str, Path] = {}
    for path in sorted(RESULTS_DIR.glob("*.json")):
        try:
            suite = json.loads(path.read_text())["suite"]
        except (ValueError, KeyError):
            continue
        newest[suite] = path
    return [newest[suite] for suite in SUITE_TITLES if suite in newest]


def rows_of(document: dict) -> list[Row]:
    names = {field.name for field in fields(Row)}
    return [Row(**{k: v for k, v in row.items() if k in names}) for row in document["rows"]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.summary")
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args(argv)
    for path in args.files or newest_files():
        document = json.loads(path.read_text())
        config = document.get("config", {})
        print(f"### {SUITE_TITLES.get(document['suite'], document['suite'])}\n")
        print(
            f"{document['at']}, {config.get('duration')}s measured after {config.get('warmup')}s warm-up, "
            f"{config.get('rounds')} round(s) (median), load average at the end "
            f"{', '.join(f'{x:.1f}' for x in document.get('machine', {}).get('loadavg_at_end', []))} "
            f"on {document.get('machine', {}).get('cpus')} CPUs; file `{path.name}`\n"
        )
        print(format_markdown(rows_of(document)))
        print()


if __name__ == "__main__":
    main()
