"""Operations: readiness checks and structured logs.

Nothing here speaks HTTP. The API exposes readiness at ``/readyz`` (``api/routes/health.py``) and
writes one access-log line per request from its middleware (``api/middleware/``); a CLI command or
a background worker can run the same checks and use the same log format.
"""
