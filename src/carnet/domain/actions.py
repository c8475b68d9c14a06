"""Every action of the core: one vocabulary for the policy (``decide``) and for the traces.

Each value is what a trace records in ``action`` (dmp.md §5: "what: read, search, add, replace,
delete, mask, authorise, block, break the glass…"). The policy groups them by what they do
(:func:`carnet.access.policy.decide`); an interface never names an action of its own.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    # records (dmp.md §2; TD0.2, TD1.1, TD1.2)
    RECORD_CREATE = "record.create"
    RECORD_OBJECTION = "record.objection"  # a person objects to the creation of their record
    RECORD_WITHDRAW = "record.withdraw"  # an objection to creation is withdrawn
    RECORD_STATUS = "record.status"  # TD0.2: existence and state only
    RECORD_READ = "record.read"  # identity traits
    RECORD_UPDATE = "record.update"  # identity traits
    RECORD_CONTACT = "record.contact"  # contact details, notification preferences: the patient
    RECORD_DESIGNATE = "record.designate"  # the médecin traitant
    RECORD_CLOSE = "record.close"
    RECORD_REOPEN = "record.reopen"
    RECORD_DESTROY = "record.destroy"  # on the patient's request
    RECORD_PURGE = "record.purge"  # ten years after closure (R1111-48)
    RECORD_IMPORT = "record.import"  # bulk load by the operator (demo population, migration)
    # documents (dmp.md §4, §6; TD2.1, TD2.2, TD3.1 to TD3.3)
    DOCUMENT_CREATE = "document.create"
    DOCUMENT_SEARCH = "document.search"  # one record's documents
    DOCUMENT_READ = "document.read"  # metadata, history and content
    DOCUMENT_REPLACE = "document.replace"  # RPLC: the replaced one becomes superseded
    DOCUMENT_UPDATE = "document.update"  # status, archive, INVISIBLE_* flags: the author
    DOCUMENT_MASK = "document.mask"  # MASQUE_PS on or off: the patient; on: the author too
    LIST_SEARCH = "list.search"  # submission sets
    BINARY_CREATE = "binary.create"  # content uploaded before its metadata
    BINARY_ATTACH = "binary.attach"  # a document names content uploaded before
    BINARY_PURGE = "binary.purge"  # uploaded content no document named in time: the operator
    # consents (dmp.md §2, §3; TD0.3)
    CONSENT_READ = "consent.read"
    CONSENT_AUTHORISE = "consent.authorise"  # a professional or a care team may read
    CONSENT_BLOCK = "consent.block"  # a professional may not read
    CONSENT_REVOKE = "consent.revoke"
    CONSENT_EMERGENCY = "consent.emergency"  # centre 15, bris de glace, masked documents
    # legal representatives (dmp.md §1)
    REPRESENTATIVE_ADD = "representative.add"
    REPRESENTATIVE_READ = "representative.read"
    REPRESENTATIVE_REMOVE = "representative.remove"
    # traces (dmp.md §5)
    AUDIT_READ = "audit.read"
    AUDIT_VERIFY = "audit.verify"

    @property
    def concern(self) -> str:
        """``record``, ``document``, ``consent``…: the part of the core that does it."""
        return self.value.split(".", 1)[0]

    @property
    def verb(self) -> str:
        return self.value.rsplit(".", 1)[-1]
