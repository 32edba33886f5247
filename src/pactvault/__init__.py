"""pactvault: security-first, self-hostable electronic contract signing."""

__version__ = "0.1.0"
