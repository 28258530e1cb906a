"""Rich tables for the CLI's human-readable output (JSON output never goes through here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table


def rows_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(c) for c in row])
    return table


def records_table(title: str, records: Sequence[Mapping[str, Any]], first: str = "node") -> Table:
    """One row per record (e.g. per layer), ``first`` as the leading column when present."""
    keys = list(records[0]) if records else []
    columns = [first, *[k for k in keys if k != first]] if first in keys else keys
    return rows_table(title, columns, [[record[c] for c in columns] for record in records])


def metrics_table(title: str, metrics: Mapping[str, Any]) -> Table:
    """Two columns, metric and value; nested values (dicts, lists) are left to ``--json``."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if not isinstance(value, dict | list):
            table.add_row(key, str(value))
    return table
