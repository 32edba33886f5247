"""Unambiguous, type-tagged encoding of a tuple of fields, used for AEAD associated data.

Associated data binds a ciphertext to its context (org, object id, version, key id ...). Plain
concatenation is ambiguous — ("ab", "c") and ("a", "bc") would bind to the same bytes — so every
field is written as ``tag ‖ u32 length ‖ bytes``. The format is deliberately trivial so a restore
tool in any language can rebuild the exact AAD.
"""

from __future__ import annotations

import struct

Field = str | bytes | int

_STR = ord("s")
_BYTES = ord("b")
_INT = ord("i")
_LEN = struct.Struct(">I")


def encode_fields(*fields: Field) -> bytes:
    """Encode ``fields`` (str, bytes or int) into one canonical byte string."""
    out = bytearray()
    for field in fields:
        if isinstance(field, bool):
            raise TypeError("booleans are not encodable; use an int or str explicitly")
        if isinstance(field, str):
            tag, data = _STR, field.encode("utf-8")
        elif isinstance(field, bytes | bytearray | memoryview):
            tag, data = _BYTES, bytes(field)
        elif isinstance(field, int):
            tag, data = _INT, str(field).encode("ascii")
        else:
            raise TypeError(f"cannot encode field of type {type(field).__name__}")
        out.append(tag)
        out += _LEN.pack(len(data))
        out += data
    return bytes(out)


def decode_fields(data: bytes) -> list[Field]:
    """Inverse of :func:`encode_fields`; raises ``ValueError`` on any malformed or non-canonical
    input so that two different byte strings never decode to the same fields."""
    fields: list[Field] = []
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        if pos + 1 + _LEN.size > len(view):
            raise ValueError("truncated field header")
        tag = view[pos]
        (length,) = _LEN.unpack_from(view, pos + 1)
        start = pos + 1 + _LEN.size
        end = start + length
        if end > len(view):
            raise ValueError("truncated field")
        raw = bytes(view[start:end])
        if tag == _STR:
            fields.append(raw.decode("utf-8"))
        elif tag == _BYTES:
            fields.append(raw)
        elif tag == _INT:
            text = raw.decode("ascii")
            value = int(text)
            if str(value) != text:
                raise ValueError("non-canonical integer")
            fields.append(value)
        else:
            raise ValueError("unknown field tag")
        pos = end
    return fields
