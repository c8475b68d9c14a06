"""The operator's bulk import (``record.import``): records, their authorisations, flags and
documents, written in batches by the bulk path (store/bulk.py: COPY on PostgreSQL) yet exactly as
the normal paths would have written them, so that the server reads them as if they had been
published through the API:

- each record under its own new key (wrapped in the key store), its envelope and its documents'
  envelopes sealed with it, each document's content encrypted with it (the configured content
  store: rows of ``content_chunks`` or files);
- the rows of a record's opening (TD1.1: ``records``, ``record_history``, the opener in
  ``record_professionals`` and authorised, notification preferences), of its consents
  (authorisations and blocks) and of each publish (``documents``, ``document_authors``,
  ``contents``, the author in ``record_professionals``);
- traces, hash-chained per record from the genesis as store/trace_chain.py chains them: the
  import itself (the operator), each document's creation by its author and the record's closing
  by the patient, each decided by the policy as the normal path decides it.

Everything is validated before anything is written (qualified INS with its key, IdNatPS with
their Luhn key, complete document metadata, a document's patient): invalid data is refused, and
a batch is written all or nothing. New records only: an INS that has a record already is
refused (so a second import of the same population is refused, not mixed in).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from carnet.access.context import Context
from carnet.access.documents.repository import author_rows, labels_text
from carnet.access.facts import record_facts
from carnet.access.policy import DocumentFacts, decide
from carnet.access.records.repository import history_row, record_values
from carnet.access.unit_of_work import Unit
from carnet.domain.actions import Action
from carnet.domain.actors import RPPS_SYSTEM, AccessMode, Actor, ActorKind
from carnet.domain.clock import new_id
from carnet.domain.documents import DocumentStatus, new_entry_uuid
from carnet.domain.errors import Conflict, CoreError, Refused, Rejected
from carnet.domain.imports import ImportedRecord, ImportResult
from carnet.domain.ins import INS_OIDS, OID_NIR_TEST, check_ins_value
from carnet.domain.professionals import check_idnatps, same_professional_id
from carnet.domain.records import CreationConsent, Record, RecordState
from carnet.domain.traces import TraceEvent, extend
from carnet.store.bulk import BulkStore, Duplicate, Row, columns, seal
from carnet.store.codec import entry_to_json, record_to_json
from carnet.store.envelope import pack
from carnet.store.preferences import default_row, preference_changes, sealed_columns

_TABLES = (
    "records",
    "record_history",
    "record_professionals",
    "consents",
    "notification_preferences",
    "contents",
    "content_chunks",
    "documents",
    "document_authors",
    "audit_events",
    "audit_heads",
)
_COLS = {name: columns(name) for name in _TABLES}


class _Ids:
    """Random and time-ordered ids for a batch, from one call to the system's random source
    (``new_id`` and ``ordered_id``'s formats; ordered ids also follow each other in the order
    they are made, as the events of a chain do)."""

    def __init__(self, count: int) -> None:
        self._random = os.urandom(16 * count).hex()
        self._next = 0
        self._ms = f"{int(time.time() * 1000):012x}"
        self._seq = 0

    def new(self) -> str:
        start = self._next * 32
        self._next += 1
        if start >= len(self._random):
            return new_id()
        return self._random[start : start + 32]

    def ordered(self) -> str:
        self._seq += 1
        return f"{self._ms}{self._seq:08x}{self.new()[:12]}"


def _row(table: str, values: dict[str, Any]) -> Row:
    return tuple(values[c] for c in _COLS[table])


class ImportService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.actor = ctx.actor
        self.guard = ctx.guard

    async def load(self, batch: Sequence[ImportedRecord]) -> ImportResult:
        """Write ``batch`` (new records and everything they hold) in one transaction."""
        decision = self.guard.allows(Action.RECORD_IMPORT, None)
        if not decision:

            async def trace(unit: Unit) -> None:
                self.guard.trace(unit, Action.RECORD_IMPORT, decision, record_id=None)

            await self.ctx.read(trace)
            raise Refused(f"not allowed: {decision.reason}")
        for index, rec in enumerate(batch):
            try:
                self._validate(rec)
            except CoreError as exc:
                exc.at(f"records[{index}]")
                raise
        bulk = self.ctx.bulk()
        taken = await bulk.existing_ins((r.identity.ins.oid, r.identity.ins.value) for r in batch)
        if taken:
            raise Conflict(
                f"{len(taken)} of these patients have a record already (e.g. {taken[0]}): "
                "an import adds new records only (another --seed makes another population)",
                field="patient.ins",
            )
        now = self.ctx.now()
        record_ids = [new_id() for _ in batch]
        keys = await bulk.new_keys(record_ids, now)
        try:
            out, documents, traces = self._rows(bulk, batch, record_ids, keys, decision.rule)
            await bulk.write(out)
        except Duplicate as exc:
            await bulk.drop_keys(record_ids)
            raise Conflict(
                f"some of these patients were given a record meanwhile ({exc})",
                field="patient.ins",
            ) from None
        except BaseException:
            await bulk.drop_keys(record_ids)
            raise
        return ImportResult(record_ids, documents, traces)

    # -- validation ----------------------------------------------------------------------------
    def _validate(self, rec: ImportedRecord) -> None:
        ins = rec.identity.ins
        if ins.oid not in INS_OIDS:
            raise Rejected(f"{ins.oid} is not an INS OID", field="patient.ins")
        if ins.oid == OID_NIR_TEST and not self.ctx.limits.allow_test_ins:
            raise Rejected(
                "test INS are refused on this server (CARNET_ALLOW_TEST_INS=1 for demos)",
                field="patient.ins",
            )
        if check_ins_value(ins.value, field="patient.ins") != ins.value:
            raise Rejected(f"INS {ins.value!r} is not in its normal form", field="patient.ins")
        rec.identity.require_qualified("only a qualified INS may label health data (dmp.md §2)")
        _professional(rec.opened_by, "record.opened_by")
        for rpps in (*rec.authorised, *rec.blocked):
            check_idnatps(rpps, field="consent.actor")
        if rec.treating_physician is not None:
            check_idnatps(rec.treating_physician.removeprefix("rpps:"), field="treating_physician")
        for index, doc in enumerate(rec.documents):
            try:
                entry = doc.entry
                entry.validate()
                if entry.patient_value != ins.value or entry.patient_system not in (
                    None,
                    ins.system,
                ):
                    raise Rejected("the document is for another patient", field="document.patient")
                if entry.size is not None and entry.size != len(doc.content):
                    raise Rejected(
                        "the document's size is not its content's", field="document.size"
                    )
                if doc.author.kind is ActorKind.PROFESSIONAL:
                    _professional(doc.author, "document.author")
                elif doc.author.kind is not ActorKind.PATIENT or doc.author.ins != ins.value:
                    raise Rejected(
                        "a document is published by a professional or the patient",
                        field="document.author",
                    )
            except CoreError as exc:
                exc.at(f"documents[{index}]")
                raise

    # -- rows ----------------------------------------------------------------------------------
    def _rows(
        self,
        bulk: BulkStore,
        batch: Sequence[ImportedRecord],
        record_ids: list[str],
        keys: list[bytes],
        import_rule: str | None,
    ) -> tuple[dict[str, list[Row]], int, int]:
        out: dict[str, list[Row]] = {name: [] for name in _TABLES}
        matrix = self.guard.matrix.allows
        now = self.ctx.now()
        events: list[TraceEvent] = []
        size = sum(len(r.documents) + len(r.authorised) + len(r.blocked) + 3 for r in batch)
        ids = _Ids(2 * size)
        db_store = bulk.content_store == "db"
        n_docs = 0
        for rec, rid, key in zip(batch, record_ids, keys, strict=True):
            aad = rid.encode()
            record = Record(
                record_id=rid,
                identity=rec.identity,
                state=RecordState.ACTIVE,
                consent=CreationConsent(
                    by=rec.opened_by.id,
                    by_kind=rec.opened_by.kind.value,
                    structure=rec.opened_by.structure,
                    at=rec.opened_at,
                ),
                emergency=rec.emergency,
                version_id=1,
                created_at=now,
                last_updated=now,
                closed_at=None,
                treating_physician=rec.treating_physician,
                source=None,
            )
            sealed = seal(key, aad, pack(record_to_json(record), None))
            patient = Actor(
                kind=ActorKind.PATIENT,
                subject=f"ins:{rec.identity.ins.value}",
                issuer="import",
                ins=rec.identity.ins.value,
                ins_oid=rec.identity.ins.oid,
            )
            events.append(
                _event(
                    ids,
                    self.actor,
                    Action.RECORD_IMPORT,
                    rid,
                    import_rule,
                    now,
                    detail=(
                        f"opened by {rec.opened_by.id}; {len(rec.documents)} documents, "
                        f"{len(rec.authorised)} authorisations, {len(rec.blocked)} blocks"
                    ),
                )
            )
            pros = {rec.opened_by.id: "opened"}
            consent_rows: list[tuple[str, str, str]] = []
            permits = dict.fromkeys([rec.opened_by.rpps or "", *rec.authorised])
            permits.pop("", None)
            for value in permits:
                if value in rec.blocked:
                    continue
                by = rec.opened_by.id if value == rec.opened_by.rpps else patient.id
                out["consents"].append(_consent(ids, rid, "permit", value, by, now))
                consent_rows.append(("permit", "professional", value))
            for value in dict.fromkeys(rec.blocked):
                out["consents"].append(_consent(ids, rid, "deny", value, patient.id, now))
                consent_rows.append(("deny", "professional", value))
            prefs = {
                **default_row(rid, now),
                # the address sealed with the record's key, as the normal path seals it
                **sealed_columns(preference_changes(email=rec.email), key, rid),
            }
            out["notification_preferences"].append(_row("notification_preferences", prefs))
            stored: set[str] = set()
            facts_of: dict[str, Any] = {}
            for doc in rec.documents:
                entry = doc.entry
                author = doc.author
                facts = facts_of.get(author.id)
                if facts is None:
                    facts = facts_of[author.id] = record_facts(
                        author, record, consent_rows, False, now
                    )
                labels = labels_text(entry.confidentiality)
                decision = decide(
                    author,
                    Action.DOCUMENT_CREATE,
                    facts,
                    DocumentFacts(
                        doc_id="",
                        status=DocumentStatus.CURRENT.value,
                        author_id=None,
                        class_code=entry.class_code,
                        type_code=entry.type_code,
                    ),
                    matrix=matrix,
                )
                if not decision:
                    raise Rejected(
                        f"{author.id} may not publish in this record: {decision.reason}",
                        field="document.author",
                    )
                doc_id = f"{rid}-{ids.new()[:20]}"
                data = doc.content
                sha256 = hashlib.sha256(data).hexdigest()
                if sha256 not in stored:
                    stored.add(sha256)
                    blob_id, chunks, sha1 = bulk.encrypt(rid, key, data, sha256)
                    if db_store:
                        for n, chunk in enumerate(chunks):
                            out["content_chunks"].append((rid, blob_id, n, chunk))
                    else:
                        bulk.write_file(rid, blob_id, chunks)
                    out["contents"].append(
                        (rid, sha256, blob_id, len(data), sha1, now, bulk.content_store)
                    )
                else:
                    sha1 = hashlib.sha1(data).digest()  # noqa: S324 - FHIR Attachment.hash
                entry.hash_sha1, entry.size = sha1, len(data)
                if author.kind is ActorKind.PATIENT:
                    author_id = author.id
                else:
                    rpps = entry.author_rpps()
                    author_id = same_professional_id(rpps) if rpps else author.id
                    if author.id not in pros:
                        pros[author.id] = "fed"
                out["documents"].append(
                    _row(
                        "documents",
                        {
                            "record_id": rid,
                            "doc_id": doc_id,
                            "unique_id": entry.unique_id,
                            "version_id": 1,
                            "status": DocumentStatus.CURRENT.value,
                            "archived": False,
                            "class_code": entry.class_code,
                            "type_system": entry.type_system,
                            "type_code": entry.type_code,
                            "date": entry.date or entry.creation_time or now,
                            "period_start": entry.service_start,
                            "period_end": entry.service_stop,
                            "facility_code": entry.facility_code,
                            "setting_code": entry.setting_code,
                            "format_code": entry.format_code,
                            "content_type": entry.content_type,
                            "security_labels": labels,
                            "author_id": author_id,
                            "submission_set_id": None,
                            "replaces_id": None,
                            "entry_uuid": entry.entry_uuid or new_entry_uuid(),
                            "binary_id": doc_id,
                            "sha256": sha256,
                            "size": len(data),
                            "created_at": now,
                            "last_updated": now,
                            "resource": seal(key, aad, pack(entry_to_json(entry), None)),
                            "creation_time": entry.creation_time,
                        },
                    )
                )
                for a in author_rows(rid, doc_id, entry):
                    out["document_authors"].append(_row("document_authors", a))
                events.append(
                    _event(ids, author, Action.DOCUMENT_CREATE, rid, decision.rule, now, doc_id)
                )
                n_docs += 1
            for pro_id, relation in pros.items():
                out["record_professionals"].append((rid, pro_id, relation, now))
            if rec.closed:
                closing = decide(
                    patient,
                    Action.RECORD_CLOSE,
                    record_facts(patient, record, consent_rows, False, now),
                    matrix=matrix,
                )
                if not closing:
                    raise Rejected(f"the record cannot be closed: {closing.reason}")
                events.append(_event(ids, patient, Action.RECORD_CLOSE, rid, closing.rule, now))
                closed = replace(
                    record, state=RecordState.CLOSED, version_id=2, closed_at=now, last_updated=now
                )
                out["record_history"].append(_row("record_history", history_row(record, sealed)))
                record = closed
                sealed = seal(key, aad, pack(record_to_json(record), None))
            out["records"].append(
                _row("records", record_values(record, sealed, 2 if rec.closed else 1))
            )
            out["record_history"].append(_row("record_history", history_row(record, sealed)))
        chained, heads = extend({}, events)
        out["audit_events"] = [_row("audit_events", c.row()) for c in chained]
        out["audit_heads"] = [(rid, seq, digest) for rid, (seq, digest) in heads.items()]
        return out, n_docs, len(chained)


def _professional(actor: Actor, field: str) -> None:
    if actor.kind is not ActorKind.PROFESSIONAL or not actor.rpps:
        raise Rejected("a professional identified by IdNatPS is expected", field=field)
    if check_idnatps(actor.rpps, field=field) != actor.rpps:
        raise Rejected(f"{actor.rpps!r} is not an IdNatPS (8 + RPPS)", field=field)


def _consent(ids: _Ids, rid: str, decision: str, value: str, by: str, now: object) -> Row:
    return _row(
        "consents",
        {
            "record_id": rid,
            "consent_id": f"{rid}-{ids.new()[:20]}",
            "decision": decision,
            "actor_system": RPPS_SYSTEM,
            "actor_value": value,
            "actor_kind": "professional",
            "status": "active",
            "version_id": 1,
            "recorded_by": by,
            "created_at": now,
            "last_updated": now,
            "resource": None,
        },
    )


def _event(
    ids: _Ids,
    actor: Actor,
    action: Action,
    record_id: str,
    rule: str | None,
    now: Any,
    doc_id: str | None = None,
    detail: str | None = None,
) -> TraceEvent:
    return TraceEvent(
        record_id=record_id,
        event_id=ids.ordered(),
        recorded_at=now,
        actor_kind=actor.kind.value,
        actor_id=actor.id,
        profession=actor.profession,
        structure=actor.structure,
        mode=(actor.mode or AccessMode.NORMAL).value,
        reason=actor.reason,
        action=str(action),
        doc_id=doc_id,
        outcome="allow",
        rule=rule,
        detail=detail,
    )
