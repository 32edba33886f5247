"""api layer."""

# Path convertors must exist before any route module compiles its paths.
from pactvault.api import query as _query  # noqa: F401
