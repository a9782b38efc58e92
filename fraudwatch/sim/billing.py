"""customers.csv: each account's balance (``money``) and credit limit (``limitmoney``), as in ``e_customer``.

The balances are a snapshot taken at the start of the period and are chosen after the traffic is known:
every account keeps its total spend well inside money + limitmoney, except the accounts of
credit_limit_breach incidents, whose money + limitmoney is crossed by one of the incident's own calls.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fraudwatch.sim.model import Model
from fraudwatch.sim.sink import Cdr, Incident


@dataclass(frozen=True, slots=True)
class Balance:
    account: str
    name: str
    money_e2: int  # in cents
    limit_e2: int


def _breach(rng: random.Random, rows: list[Cdr], call_ids: set[str]) -> int | None:
    """money + limitmoney (in cents) strictly between the spend before and after one incident call."""
    cum = 0
    candidates = []
    for row in sorted(rows, key=lambda r: r.stoptime):
        before, cum = cum, cum + row.fee_e4
        lo, hi = before // 100 + 1, (cum - 1) // 100  # cents c with before < c*100 < cum
        if row.callercallid in call_ids and hi >= lo:
            candidates.append((lo, hi))
    if not candidates:
        return None
    lo, hi = candidates[len(candidates) // 3 + rng.randrange(max(1, len(candidates) // 3))]
    return rng.randint(lo, hi)


def balances(rng: random.Random, model: Model, cdrs: list[Cdr],
             credit: dict[str, tuple[Incident, set[str]]]) -> list[Balance]:
    by_account: dict[str, list[Cdr]] = {}
    for row in cdrs:
        by_account.setdefault(row.customeraccount, []).append(row)
    out = []
    for acc in (*model.customers, *model.carriers):
        rows = by_account.get(acc.account, [])
        spend_e2 = sum(r.fee_e4 for r in rows) // 100 + 1
        threshold = _breach(rng, rows, credit[acc.account][1]) if acc.account in credit else None
        if threshold is not None:
            limit = min(rng.choice((0, 1000, 2000, 5000)), threshold // 2)
            out.append(Balance(acc.account, acc.name, threshold - limit, limit))
            credit[acc.account][0].notes += f" (money+limitmoney {threshold / 100:.2f})"
            continue
        if acc.kind == "carrier":
            limit, money = 1_000_000, rng.randint(50_000, 500_000) + 3 * spend_e2
        else:
            limit = rng.choice((0, 0, 5_000, 10_000, 50_000))
            money = max(2 * spend_e2 + rng.randint(1_000, 20_000), rng.randint(5_000, 150_000))
        out.append(Balance(acc.account, acc.name, money, limit))
    return out
