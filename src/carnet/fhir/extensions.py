"""URLs of the extensions carnet reads and writes (documented in docs/fhir.md)."""

from __future__ import annotations

CARNET = "https://carnet.health/fhir/StructureDefinition"

FR_CORE_IDENTITY_RELIABILITY = (
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"
)
FR_CORE_IDENTITY_STATUS_SYSTEM = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
FR_CORE_INSEE_CODE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"

# carnet's own
RECORD_STATUS = f"{CARNET}/dmp-record-status"
EMERGENCY_CONSENTS = f"{CARNET}/dmp-emergency-consents"
CREATION_CONSENT = f"{CARNET}/dmp-creation-consent"
CREATION_OBJECTION = f"{CARNET}/dmp-creation-objection"
CREATION_OBJECTION_WITHDRAWN = f"{CARNET}/dmp-creation-objection-withdrawn"
PROFESSIONAL_ACCESS = f"{CARNET}/dmp-professional-access"
NOTIFICATION_PREFERENCES = f"{CARNET}/dmp-notification-preferences"

# ANS PDSm (https://interop.esante.gouv.fr/ig/fhir/pdsm): the archive flag of a DocumentReference
# (or a List), PDSm_IsArchived; carnet's earlier ``dmp-archived`` is accepted as its alias
PDSM_IS_ARCHIVED = (
    "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-ext-is-archived"
)
DMP_ARCHIVED = f"{CARNET}/dmp-archived"

# IHE MHD
MHD_SOURCE_ID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId"
MHD_SOURCE_PATIENT_ID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourcePatientId"
MHD_DESIGNATION_TYPE = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType"
MHD_AUTHOR_ORG = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-authorOrg"
MHD_LIST_TYPES = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
CLASS_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def find_extension(extensions: object, url: str) -> dict[str, object] | None:
    if not isinstance(extensions, list):
        return None
    for ext in extensions:
        if isinstance(ext, dict) and ext.get("url") == url:
            return ext
    return None
