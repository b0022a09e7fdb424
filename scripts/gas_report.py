"""Gas of each adjudicator operation: our contracts next to the reference Nitro 2.x.

Runs the differential scenario (node.testing.run_scenarios) twice on a fresh
anvil, once per contract set, and prints a table; the last line is JSON:
{"ours": {op: gas}, "reference": {op: gas}}. Needs `npm ci` (anvil and the
reference artifacts).

    .venv/bin/python scripts/gas_report.py
"""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

from node.chain import running_anvil
from node.testing import run_scenarios


def main() -> int:
    with running_anvil() as anvil:
        ours = run_scenarios(anvil.url, reference=False)
        reference = run_scenarios(anvil.url, reference=True)
    table = Table(title="Adjudicator gas: scnode vs reference Nitro 2.0.1-alpha.6")
    table.add_column("operation")
    table.add_column("scnode", justify="right")
    table.add_column("reference", justify="right")
    table.add_column("difference", justify="right")
    ours_gas: dict[str, int] = {}
    reference_gas: dict[str, int] = {}
    for mine, theirs in zip(ours.steps, reference.steps, strict=True):
        if mine.result != "ok" or theirs.result != "ok":
            continue
        ours_gas[mine.name] = mine.gas_used
        reference_gas[theirs.name] = theirs.gas_used
        change = (mine.gas_used - theirs.gas_used) / theirs.gas_used
        table.add_row(mine.name, f"{mine.gas_used:,}", f"{theirs.gas_used:,}", f"{change:+.1%}")
    Console().print(table)
    print(json.dumps({"ours": ours_gas, "reference": reference_gas}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
