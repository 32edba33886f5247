"""What every CLI command shares: consoles, exit codes, settings and error mapping.

Errors from the services are turned into readable messages and exit codes here (and only here):
0 success, 1 a verification that failed, 2 a usage or input error, 3 an operational error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pactvault.config import Settings
from pactvault.errors import PactvaultError

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_INVALID, EXIT_USAGE, EXIT_ERROR = 1, 2, 3

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Data directory (default: $PACTVAULT_HOME or ./pactvault-data)"),
]


def settings_for(home: Path | None, **overrides: object) -> Settings:
    """Settings from the environment, with ``--home`` and explicit overrides applied."""
    # Everything pactvault writes (database, keys, blobs, outbox) is private to its owner.
    os.umask(0o077)
    if home is not None:
        overrides["home"] = home
    return Settings.from_env(**overrides)


def fail(exc: PactvaultError) -> typer.Exit:
    """Print a service error readably and return the exit to raise (2 for 4xx, 3 for 5xx)."""
    err.print(f"[red]error:[/red] {exc.detail}")
    code = EXIT_USAGE if exc.status < 500 else EXIT_ERROR
    return typer.Exit(code)
