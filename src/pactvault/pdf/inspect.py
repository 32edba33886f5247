"""Gatekeeping for uploaded PDFs: is this a document we are willing to ask people to sign?

Everything a signer is shown must be static: a contract that runs JavaScript or carries hidden
attachments can display one thing and mean another, so those are detected here, before a
document enters a signing workflow. The checks walk the parsed object graph (not a byte grep)
so that compressed object streams cannot hide anything, and every failure — including pyHanko
parser exceptions on hostile input — becomes a :class:`PdfRejectedError` with a reason a user
can act on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Literal

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader

from pactvault.errors import PayloadTooLargeError, PdfRejectedError

HEADER_WINDOW = 1024
# Hostile files can nest page trees, outlines and name trees arbitrarily deep or in cycles;
# these bounds keep the walk linear and finite without rejecting any real-world contract.
MAX_PAGES = 10_000
MAX_VISITED_NODES = 200_000


@dataclass(frozen=True)
class PdfFacts:
    """What the gatekeeper learnt about an upload (sizes in PDF points, per page)."""

    size: int
    page_count: int
    page_sizes: tuple[tuple[float, float], ...]
    has_javascript: bool
    has_embedded_files: bool
    has_signatures: bool
    pdf_version: str


def inspect_pdf(data: bytes, *, max_bytes: int) -> PdfFacts:
    """Parse ``data`` and report its facts, or raise with the reason it cannot be accepted.

    Raises :class:`PayloadTooLargeError` for oversize input and :class:`PdfRejectedError` for
    everything else (empty, not a PDF, corrupt, encrypted, no pages).
    """
    if not data:
        raise PdfRejectedError("the file is empty")
    if len(data) > max_bytes:
        raise PayloadTooLargeError(f"the file is {len(data)} bytes; the limit is {max_bytes} bytes")
    if b"%PDF-" not in data[:HEADER_WINDOW]:
        raise PdfRejectedError("the file is not a PDF (no %PDF- header)")
    try:
        reader = PdfFileReader(BytesIO(data), strict=False)
        if reader.encrypted:
            raise PdfRejectedError(
                "the PDF is encrypted or password-protected; upload an unprotected copy"
            )
        return _facts(reader, len(data))
    except PdfRejectedError:
        raise
    except RecursionError:
        raise PdfRejectedError("the PDF structure is nested too deeply to be processed") from None
    except Exception:
        # Deliberately broad: the parser raises many exception types on malformed input
        # (PdfReadError, KeyError, ValueError, TypeError ...). None of them may escape as a 500.
        raise PdfRejectedError(
            "the PDF is damaged or could not be parsed; re-export it and try again"
        ) from None


def enforce_active_content_policy(facts: PdfFacts, policy: Literal["reject", "flag"]) -> list[str]:
    """Apply the organisation's policy on active content.

    ``"reject"`` refuses documents with JavaScript or attachments; ``"flag"`` lets them through
    and returns warnings to show to every signer (an empty list when nothing was found).
    """
    if policy not in ("reject", "flag"):
        raise ValueError("policy must be 'reject' or 'flag'")
    found: list[str] = []
    if facts.has_javascript:
        found.append("the document contains JavaScript")
    if facts.has_embedded_files:
        found.append("the document contains embedded files")
    if found and policy == "reject":
        raise PdfRejectedError("; ".join(found) + " — active content is not allowed")
    return found


# -- the walk -----------------------------------------------------------------------------------


def _facts(reader: PdfFileReader, size: int) -> PdfFacts:
    root = _dict(reader.root)
    if root is None:
        raise PdfRejectedError("the PDF has no document catalog")
    budget = _Budget()
    pages = list(_pages(root, budget))
    if not pages:
        raise PdfRejectedError("the PDF has no pages")

    annotations = [annot for page in pages for annot in _annotations(page)]
    fields = list(_form_fields(root, budget))
    has_javascript = _has_javascript(root, pages, annotations, fields, budget)
    has_embedded_files = (
        _name_tree_has_entries(_dict(_get(_dict(root.get("/Names")), "/EmbeddedFiles")), budget)
        or any(_name(annot.get("/Subtype")) == "/FileAttachment" for annot in annotations)
        or _nonempty_array(root.get("/AF"))
    )
    has_signatures = any(
        _name(_inherited_ft(field)) == "/Sig" and field.get("/V") is not None for field in fields
    )
    major, minor = reader.input_version
    return PdfFacts(
        size=size,
        page_count=len(pages),
        page_sizes=tuple(_page_size(page) for page in pages),
        has_javascript=has_javascript,
        has_embedded_files=has_embedded_files,
        has_signatures=has_signatures,
        pdf_version=f"{major}.{minor}",
    )


class _Budget:
    """Shared visited-set and node budget for one walk (cycles and bombs stop here)."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.count = 0

    def first_visit(self, obj: object) -> bool:
        self.count += 1
        if self.count > MAX_VISITED_NODES:
            raise PdfRejectedError("the PDF structure is too large to be processed")
        key = id(obj)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _resolve(obj: object) -> object:
    while isinstance(obj, generic.IndirectObject):
        obj = obj.get_object()
    return obj


def _dict(obj: object) -> generic.DictionaryObject | None:
    obj = _resolve(obj)
    return obj if isinstance(obj, generic.DictionaryObject) else None


def _array(obj: object) -> list[object]:
    obj = _resolve(obj)
    return list(obj) if isinstance(obj, generic.ArrayObject) else []


def _get(d: generic.DictionaryObject | None, key: str) -> object:
    return None if d is None else d.get(key)


def _name(obj: object) -> str | None:
    obj = _resolve(obj)
    return str(obj) if isinstance(obj, generic.NameObject) else None


def _nonempty_array(obj: object) -> bool:
    return bool(_array(obj))


def _pages(root: generic.DictionaryObject, budget: _Budget) -> Iterator[generic.DictionaryObject]:
    """Leaf /Page dictionaries in document order, with cycle protection."""
    stack: list[object] = [root.get("/Pages")]
    count = 0
    while stack:
        node = _dict(stack.pop())
        if node is None or not budget.first_visit(node):
            continue
        kids = node.get("/Kids")
        if _name(node.get("/Type")) == "/Pages" or (kids is not None and "/Type" not in node):
            stack.extend(reversed(_array(kids)))
            continue
        count += 1
        if count > MAX_PAGES:
            raise PdfRejectedError(f"the PDF has more than {MAX_PAGES} pages")
        yield node


def _inherited(page: generic.DictionaryObject, key: str) -> object:
    node: generic.DictionaryObject | None = page
    for _ in range(64):  # inheritance chains are short; a cycle must not hang us
        if node is None:
            return None
        if key in node:
            return node[key]
        node = _dict(node.get("/Parent"))
    return None


def _page_size(page: generic.DictionaryObject) -> tuple[float, float]:
    """Width and height of the (unrotated) MediaBox, the space signature boxes are given in."""
    box = [_resolve(v) for v in _array(_inherited(page, "/MediaBox"))]
    if len(box) != 4 or not all(isinstance(v, int | float) for v in box):
        raise PdfRejectedError("a page of the PDF has no valid MediaBox")
    x1, y1, x2, y2 = (float(v) for v in box)  # type: ignore[arg-type]
    return abs(x2 - x1), abs(y2 - y1)


def _annotations(page: generic.DictionaryObject) -> Iterator[generic.DictionaryObject]:
    for annot in _array(page.get("/Annots")):
        d = _dict(annot)
        if d is not None:
            yield d


def _form_fields(
    root: generic.DictionaryObject, budget: _Budget
) -> Iterator[generic.DictionaryObject]:
    stack = list(_array(_get(_dict(root.get("/AcroForm")), "/Fields")))
    while stack:
        field = _dict(stack.pop())
        if field is None or not budget.first_visit(field):
            continue
        yield field
        stack.extend(_array(field.get("/Kids")))


def _inherited_ft(field: generic.DictionaryObject) -> object:
    node: generic.DictionaryObject | None = field
    for _ in range(64):
        if node is None:
            return None
        if "/FT" in node:
            return node["/FT"]
        node = _dict(node.get("/Parent"))
    return None


def _name_tree_has_entries(tree: generic.DictionaryObject | None, budget: _Budget) -> bool:
    stack: list[object] = [tree]
    while stack:
        node = _dict(stack.pop())
        if node is None or not budget.first_visit(node):
            continue
        if _array(node.get("/Names")):
            return True
        stack.extend(_array(node.get("/Kids")))
    return False


def _is_javascript_action(action: object, budget: _Budget) -> bool:
    """True if ``action`` (or anything chained after it via /Next) runs JavaScript."""
    stack: list[object] = [action]
    while stack:
        node = _dict(stack.pop())
        if node is None or not budget.first_visit(node):
            continue
        if _name(node.get("/S")) == "/JavaScript" or "/JS" in node:
            return True
        nxt = node.get("/Next")
        stack.extend(_array(nxt) if isinstance(_resolve(nxt), generic.ArrayObject) else [nxt])
    return False


def _has_additional_action_js(holder: generic.DictionaryObject, budget: _Budget) -> bool:
    """/A (an action) and /AA (a dictionary of trigger → action) on one object."""
    if _is_javascript_action(holder.get("/A"), budget):
        return True
    aa = _dict(holder.get("/AA"))
    return aa is not None and any(_is_javascript_action(aa.get(k), budget) for k in aa)


def _outline_items(
    root: generic.DictionaryObject, budget: _Budget
) -> Iterator[generic.DictionaryObject]:
    outlines = _dict(root.get("/Outlines"))
    stack: list[object] = [] if outlines is None else [outlines.get("/First")]
    while stack:
        item = _dict(stack.pop())
        if item is None or not budget.first_visit(item):
            continue
        yield item
        stack.extend([item.get("/Next"), item.get("/First")])


def _has_javascript(
    root: generic.DictionaryObject,
    pages: list[generic.DictionaryObject],
    annotations: list[generic.DictionaryObject],
    fields: list[generic.DictionaryObject],
    budget: _Budget,
) -> bool:
    names = _dict(root.get("/Names"))
    if _name_tree_has_entries(_dict(_get(names, "/JavaScript")), budget):
        return True
    open_action = _resolve(root.get("/OpenAction"))
    # /OpenAction is either an action dictionary or a destination array (harmless).
    if isinstance(open_action, generic.DictionaryObject) and _is_javascript_action(
        open_action, budget
    ):
        return True
    holders = [root, *pages, *annotations, *fields, *_outline_items(root, budget)]
    # Action dictionaries are shared objects; a fresh budget per check keeps a dictionary seen
    # from one holder from being skipped when reached from another.
    return any(_has_additional_action_js(holder, _Budget()) for holder in holders)
