"""Request ids: echoed from the client when harmless, generated otherwise.

A caller (or the proxy in front of us) may send ``X-Request-ID`` so its logs and ours line up.
The value ends up in our logs, in problem responses and in a response header, so only a short
token of a small charset is taken as is; anything else is replaced, never echoed or truncated.
"""

from __future__ import annotations

import re
import uuid

HEADER = b"x-request-id"
_SAFE = re.compile(r"[A-Za-z0-9._\-]{1,64}")


def accept_request_id(presented: str | None) -> str:
    if presented is not None and _SAFE.fullmatch(presented):
        return presented
    return uuid.uuid4().hex
