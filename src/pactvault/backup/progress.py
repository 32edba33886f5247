"""Progress reports of long backup work (phases with done/total), for bars and lease renewal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "Step", "ignore"]


@dataclass(frozen=True)
class Step:
    phase: str
    done: int
    total: int | None = None
    #: Free text for a human (an object name, a destination label); never secrets.
    detail: str = ""


Progress = Callable[[Step], None]


def ignore(_step: Step) -> None:
    return None
