"""The cost ledger: budget arithmetic, the SQLite ledger, its async writer, the stand-in.

::

    budget.py         limits, periods, refusals and alerts, with no I/O
    sqlite_ledger.py  CostLedger: the ledger on one SQLite file
    schema.py         that file's migrations; statements.py: the SQL it runs
    writer.py         LedgerWorker: the async client's writes, grouped on a thread
    untracked.py      UntrackedLedger: the stand-in when cost tracking is off
"""

from ..exceptions import LedgerBusyError
from .budget import (
    Budget,
    BudgetAlert,
    Period,
    Reservation,
    alerts_due,
    budget_refusal,
    period_bounds,
    period_key,
    utc_iso,
)
from .sqlite_ledger import CostLedger
from .untracked import UntrackedLedger
from .writer import LedgerWorker

__all__ = [
    "Budget",
    "BudgetAlert",
    "CostLedger",
    "LedgerBusyError",
    "LedgerWorker",
    "Period",
    "Reservation",
    "UntrackedLedger",
    "alerts_due",
    "budget_refusal",
    "period_bounds",
    "period_key",
    "utc_iso",
]
