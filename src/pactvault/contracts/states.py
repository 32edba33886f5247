"""The contract state machine, in one table.

    draft ──send──▶ sent ──first signature──▶ partially_signed ──last signature──▶ completed
      │               │  └──────────── last signature (single group) ──────────────▶ completed
      ▼               ├──decline──▶ declined      (also from partially_signed)
    voided ◀──void────┤──void─────▶ voided        (also from partially_signed)
                      └──deadline─▶ expired       (also from partially_signed)

completed, declined, voided and expired are final.
"""

from __future__ import annotations

from enum import StrEnum

from pactvault.errors import ConflictError


class ContractStateError(ConflictError):
    slug = "illegal-state-transition"
    title = "Illegal state transition"


class Status(StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    PARTIALLY_SIGNED = "partially_signed"
    COMPLETED = "completed"
    DECLINED = "declined"
    VOIDED = "voided"
    EXPIRED = "expired"


FINAL = frozenset({Status.COMPLETED, Status.DECLINED, Status.VOIDED, Status.EXPIRED})
OPEN_FOR_SIGNING = frozenset({Status.SENT, Status.PARTIALLY_SIGNED})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.DRAFT: frozenset({Status.SENT, Status.VOIDED}),
    Status.SENT: frozenset(
        {Status.PARTIALLY_SIGNED, Status.COMPLETED, Status.DECLINED, Status.VOIDED, Status.EXPIRED}
    ),
    Status.PARTIALLY_SIGNED: frozenset(
        {Status.PARTIALLY_SIGNED, Status.COMPLETED, Status.DECLINED, Status.VOIDED, Status.EXPIRED}
    ),
    Status.COMPLETED: frozenset(),
    Status.DECLINED: frozenset(),
    Status.VOIDED: frozenset(),
    Status.EXPIRED: frozenset(),
}


def check_transition(current: str, target: Status) -> Status:
    """Return ``target`` if the move is legal, else raise a ContractStateError that says why."""
    try:
        state = Status(current)
    except ValueError:
        raise ContractStateError(f"contract is in an unknown state {current!r}") from None
    if target not in TRANSITIONS[state]:
        if state in FINAL:
            raise ContractStateError(
                f"the contract is {state.value}; no further changes are allowed"
            )
        raise ContractStateError(f"a contract that is {state.value} cannot become {target.value}")
    return target
