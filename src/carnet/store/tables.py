"""SQL tables (SQLAlchemy Core). The schema itself is created by the Alembic migrations in
``store/migrations``; a test checks that the two agree.

Every table that holds a patient's data carries ``record_id`` first in its primary key, so that
one patient's data lives together and the store can be distributed by record (PostgreSQL
partitioning, Citus) without a redesign. Resource ids are routable: a document id starts with its
record id (``<record>-<suffix>``), so a read by id never needs a global index.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

ID = String(64)

records = Table(
    "records",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("ins_oid", String(32), nullable=False),
    Column("ins_value", String(15), nullable=False),
    Column("identity_status", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("consent_by", String(64), nullable=False),
    Column("consent_by_kind", String(16), nullable=False),
    Column("consent_structure", String(64)),
    Column("consent_at", DateTime, nullable=False),
    Column("emergency_centre15", Boolean, nullable=False),
    Column("emergency_bris_de_glace", Boolean, nullable=False),
    Column("emergency_masked", Boolean, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_updated", DateTime, nullable=False),
    Column("closed_at", DateTime),
    Column("treating_physician", String(64)),  # actor id of the médecin traitant
    # sealed envelope: the identity traits and the interface's form of the patient
    Column("resource", LargeBinary, nullable=False),
    # bumped by every change of a fact the policy reads (state, médecin traitant, emergency
    # consents, authorisations and blocks, representatives): a write decided on facts of an
    # older rules_version is refused and retried (access/unit_of_work.py)
    Column("rules_version", Integer, nullable=False, server_default="1"),
    # one record per person: an INS value is one identity whatever its OID (migration 0007)
    UniqueConstraint("ins_value", name="uq_records_ins_value"),
    Index("ix_records_treating", "treating_physician"),
)

record_history = Table(
    "record_history",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("last_updated", DateTime, nullable=False),
    Column("resource", LargeBinary, nullable=False),
)

# professionals who opened or fed a record (the access rule of the foundation; the full DMP
# rules add authorisations, blocks and the médecin traitant next to it)
record_professionals = Table(
    "record_professionals",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("professional_id", String(64), primary_key=True),
    Column("relation", String(16), primary_key=True),
    Column("first_at", DateTime, nullable=False),
)

objections = Table(
    "objections",
    metadata,
    Column("ins_oid", String(32), primary_key=True),
    Column("ins_value", String(15), primary_key=True),
    Column("recorded_at", DateTime, nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Column("structure", String(64)),
    Index("ix_objections_value", "ins_value"),  # the person's, whatever the OID (0007)
)

# authorisations and blocks (dmp.md §3): a professional (RPPS) or a care team (structure)
consents = Table(
    "consents",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("consent_id", ID, primary_key=True),
    Column("decision", String(8), nullable=False),  # permit | deny
    Column("actor_system", String(128), nullable=False),
    Column("actor_value", String(64), nullable=False),
    Column("actor_kind", String(16), nullable=False),  # professional | structure
    Column("status", String(16), nullable=False),  # active | inactive
    Column("version_id", Integer, nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_updated", DateTime, nullable=False),
    Column("resource", LargeBinary),  # the interface's form of the consent, if any
    Index("ix_consents_actor", "record_id", "actor_value"),
    Index("ix_consents_actor_value", "actor_value"),
)

# legal representatives (dmp.md §1): a person (INS) who acts for the patient
representatives = Table(
    "representatives",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("representative_ins", String(15), primary_key=True),
    Column("relationship", String(32), nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_representatives_ins", "representative_ins"),
)

documents = Table(
    "documents",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("doc_id", ID, primary_key=True),
    Column("unique_id", String(256), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("status", String(24), nullable=False),
    Column("archived", Boolean, nullable=False, default=False),
    Column("class_code", String(64)),
    Column("type_system", String(128)),
    Column("type_code", String(64), nullable=False),
    Column("date", DateTime),
    Column("period_start", DateTime),
    Column("period_end", DateTime),
    Column("facility_code", String(64)),
    Column("setting_code", String(64)),
    Column("format_code", String(128)),
    Column("content_type", String(128), nullable=False),
    Column("security_labels", String(256), nullable=False),
    Column("author_id", String(64)),
    Column("submission_set_id", ID),
    Column("replaces_id", ID),
    Column("entry_uuid", String(64)),  # entryUUID, urn:uuid:… (NULL: stored before 0009)
    Column("binary_id", ID, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_updated", DateTime, nullable=False),
    # sealed envelope: the document entry (dmp.md §6) and the interface's form of it
    Column("resource", LargeBinary, nullable=False),
    Column("creation_time", DateTime),  # the entry's creationTime (migration 0010)
    UniqueConstraint("record_id", "unique_id", name="uq_documents_unique_id"),
    Index("ix_documents_record_date", "record_id", "date", "doc_id"),
    Index("ix_documents_binary", "record_id", "binary_id"),
    Index("ix_documents_author", "author_id"),
    Index("ix_documents_entry_uuid", "record_id", "entry_uuid"),
)

# past versions of a document: the state it had (its entry does not change; a new entry is a
# new document that replaces it). Rows written before migration 0006 hold a sealed resource.
document_history = Table(
    "document_history",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("doc_id", ID, primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("last_updated", DateTime, nullable=False),
    Column("resource", LargeBinary),
    Column("status", String(24)),
    Column("archived", Boolean),
    Column("security_labels", String(256)),
)

document_authors = Table(
    "document_authors",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("doc_id", ID, primary_key=True),
    Column("system", String(128), primary_key=True),
    Column("value", String(64), primary_key=True),
    # a professional's names (public directory data; never a patient's), as sent and folded
    # for FHIR string search (domain/records.py normalise_name); migration 0010
    Column("family", String(128)),
    Column("given", String(256)),
    Column("family_key", String(128)),
    Column("given_key", String(256)),
    Index("ix_document_authors_value", "value"),
)

# a document's event codes (eventCodeList, DocumentReference.context.event); migration 0010
document_events = Table(
    "document_events",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("doc_id", ID, primary_key=True),
    Column("system", String(128), primary_key=True),  # "" when the coding has none
    Column("code", String(64), primary_key=True),
    Index("ix_document_events_code", "record_id", "code"),
)

# a document's related objects (referenceIdList, DocumentReference.context.related): a
# reference (kind "reference", system "") or an identifier (kind "identifier"); migration 0010
document_related = Table(
    "document_related",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("doc_id", ID, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("system", String(256), primary_key=True),
    Column("value", String(256), primary_key=True),
    Index("ix_document_related_value", "record_id", "value"),
)

# content, stored once per record by SHA-256; a Binary is a name for stored content
contents = Table(
    "contents",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("blob_id", String(32), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha1", LargeBinary, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("store", String(8), nullable=False, server_default="file"),  # file | db
)

# content kept in the database (the ``db`` content store): encrypted chunks of 1 MiB
content_chunks = Table(
    "content_chunks",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("blob_id", String(32), primary_key=True),
    Column("chunk_no", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

binaries = Table(
    "binaries",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("binary_id", ID, primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("content_type", String(128), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

submission_sets = Table(
    "submission_sets",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("set_id", ID, primary_key=True),
    Column("unique_id", String(256), nullable=False),
    Column("source_id", String(256), nullable=False),
    Column("submission_time", DateTime, nullable=False),
    Column("author_id", String(64)),
    Column("created_at", DateTime, nullable=False),
    Column("resource", LargeBinary, nullable=False),
    Column("entry_uuid", String(64)),  # entryUUID, urn:uuid:… (NULL: stored before 0009)
    # searched by ITI-66 (migration 0010): codes, identifiers and a professional author's
    # names (public directory data; never a patient's); the title stays sealed
    Column("author_system", String(128)),
    Column("author_family", String(128)),
    Column("author_given", String(256)),
    Column("author_family_key", String(128)),
    Column("author_given_key", String(256)),
    Column("author_org_system", String(128)),
    Column("author_org_value", String(64)),
    Column("designation_system", String(128)),
    Column("designation_code", String(64)),
    UniqueConstraint("record_id", "unique_id", name="uq_submission_sets_unique_id"),
)

# folders (XDS Folder, IHE MHD Folder): what they hold is in the clear (the ids of the
# documents they file, for the searches); their title, codes and the interface's form of them
# are in the sealed envelope, as a submission set's are
folders = Table(
    "folders",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("folder_id", ID, primary_key=True),
    Column("unique_id", String(256), nullable=False),
    Column("entry_uuid", String(64), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_updated", DateTime, nullable=False),
    Column("resource", LargeBinary, nullable=False),
    UniqueConstraint("record_id", "unique_id", name="uq_folders_unique_id"),
    Index("ix_folders_entry_uuid", "record_id", "entry_uuid"),
)

folder_documents = Table(
    "folder_documents",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("folder_id", ID, primary_key=True),
    Column("doc_id", ID, primary_key=True),
    Column("added_at", DateTime, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("record_id", ID, primary_key=True),  # "" for events tied to no record
    Column("event_id", String(32), primary_key=True),  # time-ordered
    Column("recorded_at", DateTime, nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("profession", String(8)),
    Column("structure", String(64)),
    Column("mode", String(16)),
    Column("reason", Text),
    Column("action", String(32), nullable=False),
    Column("doc_id", ID),
    Column("outcome", String(8), nullable=False),
    Column("rule", String(64)),
    Column("detail", Text),
    # hash chain per record (docs/traces.md): seq 1, 2, 3… per record_id; hash = SHA-256 of
    # prev_hash and the event's canonical form. Append-only: triggers of migration 0002 refuse
    # UPDATE and DELETE (a SQLite batch migration that recreates this table must recreate them).
    Column("seq", Integer, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("record_id", "seq", name="uq_audit_events_seq"),
    Index("ix_audit_events_actor", "actor_id", "event_id"),
)

# the last event of each chain: appending compares and sets it (store/trace_chain.py)
audit_heads = Table(
    "audit_heads",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

# -- notifications (docs/notifications.md) ----------------------------------------------------
# written in the same transaction as the event they tell of, delivered by ``carnet notify run``
outbox = Table(
    "outbox",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("event_id", String(32), primary_key=True),  # time-ordered
    Column("kind", String(32), nullable=False),  # emergency_access, access, new_document, digest
    Column("channel", String(16), nullable=False),  # email, portal
    Column("recipient", String(64), nullable=False),  # actor id: ins:<INS>, rpps:<RPPS>
    # a professional's e-mail address (the médecin traitant's MSSanté); never the patient's:
    # the worker opens notification_preferences.email_sealed when it delivers (migration 0008)
    Column("address", String(320)),
    Column("payload", Text, nullable=False),  # JSON
    # pending, sending, sent, failed (retry due later), dead, skipped, held (for the digest),
    # digested
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Column("lease_until", DateTime),
    Column("lease_owner", String(64)),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)

notification_preferences = Table(
    "notification_preferences",
    metadata,
    Column("record_id", ID, primary_key=True),
    # before migration 0008: the address in clear; emptied once sealed into email_sealed
    # (store/preferences.py seal_clear_addresses, at start), never written since
    Column("email", String(320)),
    # the patient's address sealed with the record's key (store/preferences.py seal_email)
    Column("email_sealed", LargeBinary),
    Column("new_documents", Boolean, nullable=False, default=False),
    Column("access_mode", String(16), nullable=False, default="digest"),  # immediate, none
    Column("portal", Boolean, nullable=False, default=True),
    Column("updated_at", DateTime, nullable=False),
)

portal_notifications = Table(
    "portal_notifications",
    metadata,
    Column("record_id", ID, primary_key=True),
    Column("notification_id", String(32), primary_key=True),  # the outbox event id
    Column("recipient", String(64), nullable=False),  # the patient, or the médecin traitant
    Column("created_at", DateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("title", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("read_at", DateTime),
    Index("ix_portal_notifications_recipient", "recipient", "created_at"),
)
