"""The tables of docs/performance.md that a benchmark wrote (bench/results/*.json, `harness.Table`).

A generated table sits between `<!-- table: bench/results/NAME.json -->` and `<!-- /table -->`;
`python bench/tables.py` rewrites every such block from its JSON, `--check` only says which
differ (exit 1), as tests/test_docs.py does.

    python bench/bench_surface.py --repeats 5 --json bench/results/surface.json
    python bench/tables.py
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
BLOCK = re.compile(r"(<!-- table: (?P<src>[^ ]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def render(table: dict) -> str:
    """The markdown of one saved table: the table, then what made it."""
    lines = ["| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join(row) + " |" for row in table["rows"]]
    lines += ["", f"`{table['command']}` ({table['machine']}; {table['date']})"]
    if table.get("note"):
        lines += ["", table["note"]]
    return "\n".join(lines) + "\n"


def regenerate(text: str) -> str:
    """`text` with every generated block rendered again from its JSON."""

    def one(m: re.Match) -> str:
        table = json.loads((ROOT / m["src"]).read_text())
        return m.group(1) + render(table) + m.group(4)

    return BLOCK.sub(one, text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only say whether the docs match their JSON")
    args = ap.parse_args()
    text = DOC.read_text()
    new = regenerate(text)
    if args.check:
        stale = [m["src"] for m, n in zip(BLOCK.finditer(text), BLOCK.finditer(new)) if m.group(0) != n.group(0)]
        print("\n".join(f"stale: {s}" for s in stale) or "docs/performance.md matches its JSON")
        return 1 if stale else 0
    DOC.write_text(new)
    print(f"{len(BLOCK.findall(new))} tables written into {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
