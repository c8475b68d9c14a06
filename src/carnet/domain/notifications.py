"""Notifications (dmp.md §5): who is told what, written to the outbox in the caller's transaction.

The patient is told at once of every emergency access (and the médecin traitant too), of other
professionals' accesses in a daily digest by default (or at once, or not at all, by preference),
and of new documents if they asked for it. Nothing here sends anything: the rows are written in
the same write as the event they tell of, and ``carnet notify run``
(:mod:`carnet.notify.worker`) delivers them, so that a notification exists if and only if its
event was committed. See docs/notifications.md.

This module is pure: it says which outbox rows an event makes (:func:`access_notices`,
:func:`new_document_notices`); the core writes them with the event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import orjson

from carnet.domain.actors import AccessMode, Actor, ActorKind
from carnet.domain.clock import iso, ordered_id, utcnow
from carnet.domain.errors import Invalid


class Kind(StrEnum):
    EMERGENCY_ACCESS = "emergency_access"
    ACCESS = "access"
    NEW_DOCUMENT = "new_document"
    DIGEST = "digest"


class Channel(StrEnum):
    EMAIL = "email"
    PORTAL = "portal"


class Status(StrEnum):
    PENDING = "pending"  # due at next_attempt_at
    SENDING = "sending"  # claimed by a worker until lease_until
    SENT = "sent"
    FAILED = "failed"  # an attempt failed; retried at next_attempt_at
    DEAD = "dead"  # given up: too many attempts, or refused for good
    SKIPPED = "skipped"  # not deliverable by configuration (no SMTP server, no address)
    HELD = "held"  # an access waiting for the daily digest
    DIGESTED = "digested"  # an access told in a digest (the digest row is delivered instead)


class AccessNotices(StrEnum):
    """How the patient hears of ordinary professionals' accesses by e-mail."""

    DIGEST = "digest"
    IMMEDIATE = "immediate"
    NONE = "none"


class Role(StrEnum):
    """Whom a notification speaks to: it decides the wording (carnet.notify.messages)."""

    PATIENT = "patient"
    TREATING_PHYSICIAN = "treating_physician"


EMERGENCY_MODES: Final = frozenset({AccessMode.BRIS_DE_GLACE, AccessMode.CENTRE_15})

# a document with one of these labels is not told to the patient (nor its title): the patient
# may not see it yet (INVISIBLE_PATIENT) or their legal representatives, who may read their
# mail, may not (INVISIBLE_REPRESENTANTS_LEGAUX)
HIDDEN_FROM_PATIENT: Final = frozenset({"INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"})


@dataclass(frozen=True, slots=True)
class Preferences:
    """The patient's choices. Whether they gave an address, not the address: it is stored
    sealed with the record's key, and only the delivery of an e-mail opens it."""

    has_email: bool = False
    new_documents: bool = False
    access_mode: AccessNotices = AccessNotices.DIGEST
    portal: bool = True


DEFAULT_PREFERENCES: Final = Preferences()


@dataclass(frozen=True, slots=True)
class Recipient:
    """One outbox row to write: one person, one channel."""

    actor_id: str
    channel: Channel
    # e-mail address (channel email) of a professional; never the patient's: the worker opens
    # the record's sealed address when it delivers (docs/notifications.md)
    address: str | None = None
    role: Role = Role.PATIENT
    held: bool = False  # wait for the daily digest instead of being delivered


@dataclass(frozen=True, slots=True)
class Contact:
    """A professional to tell, e.g. the médecin traitant: an actor id and, if known, an
    e-mail address (MSSanté)."""

    actor_id: str
    email: str | None = None
    name: str | None = None


class _Unset:
    pass


UNSET: Final = _Unset()


def check_email(value: str) -> str:
    """A plausible single address, never anything that could smuggle a mail header."""
    v = value.strip()
    local, at, domain = v.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain
        or len(v) > 320
        or any(c.isspace() or c in "<>,;\"'()[]\\" or ord(c) < 32 for c in v)
    ):
        raise Invalid(f"not an e-mail address: {value!r}", field="patient.email")
    return v


# -- the outbox ---------------------------------------------------------------------------------
def outbox_rows(
    *,
    record_id: str,
    kind: Kind | str,
    payload: Mapping[str, Any],
    recipients: Sequence[Recipient],
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """One outbox row per recipient (every column of the table). Each row's payload is
    ``payload`` plus ``"to"``: the role of its recipient, which picks the wording. An e-mail to
    the patient carries no address (the record's sealed one is opened at delivery); an e-mail
    to anyone else without an address is not written."""
    at = now or utcnow()
    rows: list[dict[str, Any]] = []
    for r in recipients:
        if r.channel is Channel.EMAIL and r.role is Role.PATIENT:
            address = None  # never in clear in a row: opened from the preferences at delivery
        elif r.channel is Channel.EMAIL and not r.address:
            continue  # nobody to write to
        else:
            address = r.address
        rows.append(
            {
                "record_id": record_id,
                "event_id": ordered_id(),
                "kind": str(kind),
                "channel": r.channel.value,
                "recipient": r.actor_id,
                "address": address,
                "payload": orjson.dumps({**payload, "to": r.role.value}).decode(),
                "status": (Status.HELD if r.held else Status.PENDING).value,
                "attempts": 0,
                "next_attempt_at": at,
                "last_error": None,
                "created_at": at,
                "sent_at": None,
                "lease_until": None,
                "lease_owner": None,
            }
        )
    return rows


def actor_payload(actor: Actor) -> dict[str, Any]:
    """Who acted, as told to the patient: identity, profession, structure (never a reason: it
    may be medical)."""
    return {
        "id": actor.id,
        "name": actor.name,
        "rpps": actor.rpps,
        "profession": actor.profession,
        "specialty": actor.specialty,
        "structure": actor.structure,
    }


def _contact(value: str | Contact | None) -> Contact | None:
    if value is None or isinstance(value, Contact):
        return value
    return Contact(actor_id=value)


# -- the policy: who is told what ---------------------------------------------------------------
def access_notices(
    actor: Actor,
    record_id: str,
    patient: str,
    prefs: Preferences,
    doc_id: str | None = None,
    treating_physician: str | Contact | None = None,
    *,
    title: str | None = None,
    labels: Iterable[str] = (),
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """A professional read the record of ``patient`` (an actor id, ``ins:<INS>``): ``doc_id``
    which document, ``labels`` its confidentiality codes; ``title`` is not written (an outbox
    row is stored in clear). Patients' own reads and systems tell nobody. The access to a
    document hidden from the patient is told without naming the document.

    - emergency access (bris de glace, centre 15): at once, whatever the preferences, by e-mail
      if the patient gave an address and in the portal; and the médecin traitant (an actor id,
      or a :class:`Contact` with an e-mail address) in their portal and by e-mail if known;
    - any other access: by e-mail in the daily digest (default), at once, or not at all
      (preference ``access_mode``), and in the portal if the patient keeps it on.
    """
    if actor.kind is not ActorKind.PROFESSIONAL:
        return []
    at = now or utcnow()
    if HIDDEN_FROM_PATIENT & set(labels):
        doc_id = None
    payload: dict[str, Any] = {
        "actor": actor_payload(actor),
        "mode": actor.mode.value,
        "at": iso(at),
        "doc_id": doc_id,
        # never the title: outbox rows are not sealed, and a title is medical data (issue 7);
        # the portal entry links to the document, whose title its reader may see there
    }
    recipients: list[Recipient] = []
    if actor.mode in EMERGENCY_MODES:
        kind = Kind.EMERGENCY_ACCESS
        if prefs.has_email:
            recipients.append(Recipient(patient, Channel.EMAIL))
        recipients.append(Recipient(patient, Channel.PORTAL))
        doctor = _contact(treating_physician)
        if doctor is not None and doctor.actor_id != actor.id:
            payload["patient"] = patient
            recipients.append(
                Recipient(doctor.actor_id, Channel.PORTAL, role=Role.TREATING_PHYSICIAN)
            )
            if doctor.email:
                recipients.append(
                    Recipient(
                        doctor.actor_id,
                        Channel.EMAIL,
                        check_email(doctor.email),
                        role=Role.TREATING_PHYSICIAN,
                    )
                )
    else:
        kind = Kind.ACCESS
        if prefs.has_email and prefs.access_mode is not AccessNotices.NONE:
            held = prefs.access_mode is AccessNotices.DIGEST
            recipients.append(Recipient(patient, Channel.EMAIL, held=held))
        if prefs.portal:
            recipients.append(Recipient(patient, Channel.PORTAL))
    return outbox_rows(
        record_id=record_id, kind=kind, payload=payload, recipients=recipients, now=at
    )


def new_document_notices(
    actor: Actor,
    record_id: str,
    patient: str,
    prefs: Preferences,
    doc_id: str,
    title: str | None,
    *,
    labels: Iterable[str] = (),
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """A document was added to the record: the patient is told only if they asked for it
    (preference ``new_documents``), and never of a document hidden from them (``labels``).
    No row carries the title (an outbox row is stored in clear)."""
    if HIDDEN_FROM_PATIENT & set(labels) or not prefs.new_documents or actor.id == patient:
        return []
    at = now or utcnow()
    recipients: list[Recipient] = []
    if prefs.has_email:
        recipients.append(Recipient(patient, Channel.EMAIL))
    if prefs.portal:
        recipients.append(Recipient(patient, Channel.PORTAL))
    payload = {
        "actor": actor_payload(actor),
        "at": iso(at),
        "doc_id": doc_id,  # never the title (see access_notices)
    }
    return outbox_rows(
        record_id=record_id,
        kind=Kind.NEW_DOCUMENT,
        payload=payload,
        recipients=recipients,
        now=at,
    )
