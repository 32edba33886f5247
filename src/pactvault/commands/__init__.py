"""Sub-commands of the ``pactvault`` CLI, one Typer app per area (registered in ``cli.py``)."""
