"""The contract state machine: every legal move allowed, every other one refused."""

from __future__ import annotations

import itertools

import pytest

from pactvault.contracts.states import (
    FINAL,
    TRANSITIONS,
    ContractStateError,
    Status,
    check_transition,
)

LEGAL = {
    (Status.DRAFT, Status.SENT),
    (Status.DRAFT, Status.VOIDED),
    (Status.SENT, Status.PARTIALLY_SIGNED),
    (Status.SENT, Status.COMPLETED),
    (Status.SENT, Status.DECLINED),
    (Status.SENT, Status.VOIDED),
    (Status.SENT, Status.EXPIRED),
    (Status.PARTIALLY_SIGNED, Status.PARTIALLY_SIGNED),
    (Status.PARTIALLY_SIGNED, Status.COMPLETED),
    (Status.PARTIALLY_SIGNED, Status.DECLINED),
    (Status.PARTIALLY_SIGNED, Status.VOIDED),
    (Status.PARTIALLY_SIGNED, Status.EXPIRED),
}


@pytest.mark.parametrize("source,target", sorted(itertools.product(Status, Status)))
def test_every_pair_of_states(source: Status, target: Status) -> None:
    if (source, target) in LEGAL:
        assert check_transition(source.value, target) is target
    else:
        with pytest.raises(ContractStateError) as info:
            check_transition(source.value, target)
        assert source.value in info.value.detail


def test_final_states_have_no_exit_and_say_so() -> None:
    for state in FINAL:
        assert TRANSITIONS[state] == frozenset()
        with pytest.raises(ContractStateError, match="no further changes"):
            check_transition(state.value, Status.SENT)


def test_unknown_state_is_an_error_not_a_crash() -> None:
    with pytest.raises(ContractStateError, match="unknown state"):
        check_transition("archived", Status.SENT)


def test_state_error_is_a_409_conflict() -> None:
    assert ContractStateError.status == 409
