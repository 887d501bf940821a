"""The cost ledger: budget arithmetic, the SQLite ledger, its async writer, the stand-in.

::

    protocol.py       Ledger: what a ledger backend implements (the seam)
    writes.py         Reserve, Settle, Release, CacheHit: the writes, as values
    budget.py         limits, periods, refusals and alerts, with no I/O
    sqlite_ledger.py  CostLedger: the ledger on one SQLite file
    schema.py         that file's migrations; statements.py: the SQL it runs
    writer.py         LedgerWorker: writes grouped on a thread (async client; settlements
                      written in the background)
    untracked.py      UntrackedLedger: the stand-in when cost tracking is off
    postgres.py       PostgresLedger: the same ledger on PostgreSQL (LLM_LEDGER_URL), with
                      postgres_schema.py, postgres_pool.py and postgres_writes.py
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
from .protocol import Ledger, PendingReservation, StartsReservations
from .schema import ledger_problem
from .sqlite_ledger import CostLedger
from .untracked import UntrackedLedger
from .writer import LedgerWorker
from .writes import Billing, CacheHit, LedgerWrite, Release, Reserve, Settle

__all__ = [
    "Billing",
    "Budget",
    "BudgetAlert",
    "CacheHit",
    "CostLedger",
    "Ledger",
    "LedgerBusyError",
    "LedgerWorker",
    "LedgerWrite",
    "PendingReservation",
    "Period",
    "Release",
    "Reservation",
    "Reserve",
    "Settle",
    "StartsReservations",
    "UntrackedLedger",
    "alerts_due",
    "budget_refusal",
    "ledger_problem",
    "period_bounds",
    "period_key",
    "utc_iso",
]
