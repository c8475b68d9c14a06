"""What a reader sees of a trace (dmp.md §5 "the patient sees every trace of their record";
§3 "a refused document looks exactly like a missing one"; docs/traces.md "What a reader sees").

A stored trace keeps everything (who, which record, which document, the rule that decided), so
that the chain is complete and the patient sees every access to their record. What one reader is
shown of it is decided here, purely, from facts the core gathered:

- **A document the reader may not read now is never named or counted.** A trace about such a
  document is shown without it (``hidden``: "a document hidden from you for now"), without the
  rule that decided and without a detail naming it; a search's list of returned documents keeps
  only those the reader may read.
- **A refusal shown to its actor looks like a read of something missing** (the *refusal form*):
  what the actor named themselves (the document id of a read by id, the Binary of a content
  read), the action, the time, and ``refused``; neither the record, nor the rule, nor the detail.
  It applies to the actor's own refusals tied to no record (a read of a missing id is traced
  there), on records whose traces they do not read in full, and about documents hidden from
  them.
- **A trace shown in part carries no chain values** (``seq``, hashes): they could not be checked
  without the hidden part, and must not help guess it.

The grammar of ``detail`` that names things is here too (:func:`returned`, :func:`content`,
:func:`replaces`, :func:`binary`): writers build details with these functions and readers parse
them with :func:`refs_of`, so that a name cannot hide in free text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from carnet.domain.traces import DENY, StoredEvent

REFUSED = "refused"  # the rule a refusal shows its actor: no rule names what was refused
RETURNED = "returned"

# actions whose document the actor names in the request (a read by id, a change of a document)
NAMING_ACTIONS = frozenset(
    {"document.read", "document.update", "document.mask", "document.replace"}
)
_BINARY = re.compile(r"Binary/([A-Za-z0-9._-]+)")
_CONTENT = re.compile(r"^content Binary/([A-Za-z0-9._-]+)$")
_BARE_ID = re.compile(r"^[A-Za-z0-9._-]+$")


# -- writing details ------------------------------------------------------------------------------
def returned(ids: Iterable[str]) -> str:
    """A search's detail: what it returned (documents, or submission sets for ``list.search``)."""
    return " ".join([RETURNED, *ids])


def content(binary_id: str) -> str:
    """A content read's detail: the Binary named by the request."""
    return f"content Binary/{binary_id}"


def replaces(doc_id: str) -> str:
    return f"replaces {doc_id}"


def binary(binary_id: str, size: int | None = None) -> str:
    return f"Binary/{binary_id}" + (f" {size} bytes" if size is not None else "")


# -- reading details ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TraceRefs:
    """What a trace names besides its record."""

    doc_ids: tuple[str, ...] = ()  # documents: its doc_id, a search's returned documents…
    binary_ids: tuple[str, ...] = ()  # content, by Binary id
    set_ids: tuple[str, ...] = ()  # submission sets a list search returned
    listed: bool = False  # the detail is a search's list of what it returned

    def __bool__(self) -> bool:
        return bool(self.doc_ids or self.binary_ids or self.set_ids)


def refs_of(event: StoredEvent) -> TraceRefs:
    """The documents, contents and submission sets ``event`` names (its ``doc_id`` and its
    detail, whatever version of carnet wrote it)."""
    docs: list[str] = [event.doc_id] if event.doc_id else []
    binaries: list[str] = []
    sets: list[str] = []
    detail = (event.detail or "").split("; failed:", 1)[0]
    words = detail.split()
    listed = bool(words) and words[0] == RETURNED and event.action.endswith(".search")
    if listed:
        if event.action == "list.search":
            sets += words[1:]
        elif event.action == "document.search":
            docs += words[1:]
    elif words[:1] == ["replaces"] and len(words) == 2:
        docs.append(words[1])
    elif event.action == "binary.attach" and _BARE_ID.match(detail):
        binaries.append(detail)  # written before details named "Binary/…"
    binaries += _BINARY.findall(detail)
    return TraceRefs(tuple(docs), tuple(binaries), tuple(sets), listed)


# -- what one reader sees ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reading:
    """How one reader relates to the traces they are shown."""

    reader_id: str
    full_records: frozenset[str]  # records whose every trace the reader reads
    readable: Callable[[str], bool]  # may the reader read this document now
    binary_docs: Mapping[str, tuple[str, ...]]  # Binary id → the documents naming it
    set_docs: Mapping[str, tuple[str, ...]]  # submission set id → its documents


def refusal_form(event: StoredEvent, reading: Reading) -> bool:
    """Whether ``event`` is shown to ``reading``'s reader as a refusal of something missing."""
    if event.actor_id != reading.reader_id or event.outcome != DENY:
        return False
    if not event.record_id or event.record_id not in reading.full_records:
        return True
    return event.doc_id is not None and not reading.readable(event.doc_id)


def _names_hidden(refs: TraceRefs, reading: Reading) -> bool:
    """Whether the trace names a document the reader may not read now: one of its documents,
    or content none of whose documents the reader may read (content not yet named by a document
    is no document)."""
    if not all(reading.readable(d) for d in refs.doc_ids):
        return True
    for b in refs.binary_ids:
        docs = reading.binary_docs.get(b, ())
        if docs and not any(reading.readable(d) for d in docs):
            return True
    return False


def _set_visible(set_id: str, reading: Reading) -> bool:
    """A submission set is shown only with a document the reader may read (as ITI-66 does)."""
    return any(reading.readable(d) for d in reading.set_docs.get(set_id, ()))


def view(event: StoredEvent, reading: Reading) -> StoredEvent:
    """``event`` as ``reading``'s reader may see it."""
    if refusal_form(event, reading):
        named_doc = event.doc_id if event.action in NAMING_ACTIONS else None
        named_detail = None
        if event.action == "document.read" and event.detail:
            found = _CONTENT.match(event.detail.split("; failed:", 1)[0])
            if found:  # a content read names its Binary, not the document
                named_doc, named_detail = None, content(found.group(1))
            elif event.detail == "history":
                named_detail = "history"
        return replace(
            event,
            record_id="",
            doc_id=named_doc,
            rule=REFUSED,
            detail=named_detail,
            seq=0,
            prev_hash="",
            hash="",
            partial=True,
        )
    refs = refs_of(event)
    if not refs:
        return event
    if refs.listed:
        if refs.set_ids:
            shown = [s for s in refs.set_ids if _set_visible(s, reading)]
            hidden = len(shown) < len(refs.set_ids)
        else:
            listed = refs.doc_ids[1:] if event.doc_id else refs.doc_ids
            shown = [d for d in listed if reading.readable(d)]
            hidden = len(shown) < len(listed)
        doc_hidden = bool(event.doc_id) and not reading.readable(event.doc_id or "")
        if not hidden and not doc_hidden:
            return event
        return _partial(
            event,
            doc_id=None if doc_hidden else event.doc_id,
            rule=None if doc_hidden else event.rule,
            detail=returned(shown),
        )
    if not _names_hidden(refs, reading):
        return event
    doc_hidden = bool(event.doc_id) and not reading.readable(event.doc_id or "")
    return _partial(
        event,
        doc_id=None if doc_hidden else event.doc_id,
        rule=None if doc_hidden else event.rule,
        detail=None,
    )


def _partial(
    event: StoredEvent, *, doc_id: str | None, rule: str | None, detail: str | None
) -> StoredEvent:
    return replace(
        event,
        doc_id=doc_id,
        rule=rule,
        detail=detail,
        seq=0,
        prev_hash="",
        hash="",
        partial=True,
        hidden=True,
    )
