"""Build CDA R2 level 1 documents: a PDF wrapped in a French CDA header.

Implements HL7 CDA R2 with the ANS CI-SIS header constraints ("Volet Structuration Minimale",
"Modèles de contenus CDA": templateIds 2.16.840.1.113883.2.8.2.1 and 1.2.250.1.213.1.1.1.1)
and the unstructured-body model IHE XDS-SD / CI-SIS "CDA à corps non structuré" (templateId
1.3.6.1.4.1.19376.1.2.20, nonXMLBody with a base64 PDF, formatCode
``urn:ihe:iti:xds-sd:pdf:2008``). The output reads back through
:func:`carnet.cda.header.parse_header` with the same metadata.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from lxml import etree

from carnet.cda.header import (
    HL7_NS,
    INS_OIDS,
    LOINC_OID,
    RPPS_OID,
    STRUCTURE_OID,
    TEMPLATE_CI_SIS,
    TEMPLATE_HL7_FRANCE,
    TEMPLATE_XDS_SD,
    CdaError,
    format_hl7_ts,
)

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
CONFIDENTIALITY_OID = "2.16.840.1.113883.5.25"
GENDER_OID = "2.16.840.1.113883.5.1"
AUTHOR_ROLE_OID = "1.2.250.1.213.1.1.4.5"  # codes G15_<profession>[/<speciality>]
FACILITY_OID = "1.2.250.1.71.4.2.4"  # TRE_R02-SecteurActivite (healthcareFacilityTypeCode)
PRACTICE_SETTING_OID = "1.2.250.1.213.1.1.4.9"  # practiceSettingCode (JDV_J04)

_GENDER_CODES = {"male": ("M", "Masculin"), "female": ("F", "Féminin")}
_PROFESSIONS = {
    "10": "Médecin",
    "21": "Pharmacien",
    "40": "Chirurgien-Dentiste",
    "50": "Sage-Femme",
    "60": "Infirmier",
    "70": "Masseur-Kinésithérapeute",
}
_SPECIALITIES = {
    "SM03": "Biologie médicale (SM)",
    "SM26": "Qualifié en Médecine Générale (SM)",
    "SM40": "Pédiatrie (SM)",
    "SM44": "Radio-diagnostic (SM)",
    "SM54": "Médecine Générale (SM)",
}
FACILITY_DISPLAYS = {
    "SA01": "Etablissement public de santé",
    "SA03": "Etablissement privé PSPH",
    "SA04": "Etablissement privé non PSPH",
    "SA07": "Cabinet individuel",
    "SA08": "Cabinet de groupe",
    "SA25": "Laboratoire de biologie médicale",
    "SA33": "Pharmacie d'officine",
}
PRACTICE_SETTING_DISPLAYS = {
    "AMBULATOIRE": "Ambulatoire",
    "ETABLISSEMENT": "Etablissement de santé",
    "DEPISTAGE": "Dépistage",
}
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")


@dataclass(frozen=True, slots=True)
class Level1Meta:
    """What a CDA header needs; also used by :func:`carnet.cda.level3.build_level3`."""

    unique_id_root: str  # OID (or UUID) of this document version
    type_code: str  # LOINC document type, e.g. 11502-2
    type_display: str
    title: str
    effective_time: datetime  # creation; naive values are Europe/Paris
    patient_ins: str
    patient_ins_oid: str  # 1.2.250.1.213.1.4.8 (NIR), .9 (NIA), .10 (test NIR)
    patient_family: str  # birth name
    patient_given: str  # birth first names, space separated
    patient_birth_date: date
    patient_gender: str  # FHIR: male, female, other, unknown
    author_rpps: str  # 11-digit RPPS number, or the IdNatPS 8 + RPPS
    author_family: str
    author_given: str
    author_profession_code: str  # TRE_G15, e.g. 10 (médecin)
    institution_name: str
    institution_finess: str  # 9-character FINESS (IdNatStruct 1 + FINESS in the CDA)
    service_start: datetime
    service_end: datetime | None = None
    author_speciality_code: str | None = None  # e.g. SM26 (médecine générale)
    facility_type_code: str = "SA07"  # TRE_R02, cabinet individuel
    practice_setting_code: str = "AMBULATOIRE"
    unique_id_extension: str | None = None
    set_id_root: str | None = None  # default: an OID 2.25.<uuid5 of the document id>
    version_number: int = 1
    confidentiality_code: str = "N"
    language_code: str = "fr-FR"
    type_system_oid: str = LOINC_OID

    @property
    def author_id(self) -> str:
        """IdNatPS of the author: ``8`` followed by the 11-digit RPPS number."""
        rpps = self.author_rpps.strip()
        if re.fullmatch(r"[0-9]{11}", rpps):
            return f"8{rpps}"
        if re.fullmatch(r"8[0-9]{11}", rpps):
            return rpps
        raise CdaError(f"author RPPS {self.author_rpps!r} is not 11 digits (or 8 + 11 digits)")

    @property
    def institution_id(self) -> str:
        """IdNatStruct of the institution: ``1`` followed by the FINESS number."""
        finess = self.institution_finess.strip().upper()
        if re.fullmatch(r"[0-9]{2}[0-9AB][0-9]{6}", finess):
            return f"1{finess}"
        if re.fullmatch(r"1[0-9]{2}[0-9AB][0-9]{6}", finess):
            return finess
        raise CdaError(f"FINESS {self.institution_finess!r} is not 9 characters")

    @property
    def role_code(self) -> str:
        code = f"G15_{self.author_profession_code}"
        return f"{code}/{self.author_speciality_code}" if self.author_speciality_code else code

    @property
    def role_display(self) -> str | None:
        profession = _PROFESSIONS.get(self.author_profession_code)
        if profession is None:
            return None
        if not self.author_speciality_code:
            return profession
        speciality = _SPECIALITIES.get(self.author_speciality_code)
        return f"{profession} - {speciality}" if speciality else None

    @property
    def set_id(self) -> str:
        if self.set_id_root:
            return self.set_id_root
        return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'{self.unique_id_root}#setId').int}"


def _q(tag: str) -> str:
    return f"{{{HL7_NS}}}{tag}"


def sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    """Append an HL7 v3 element (attributes given as keywords, in order)."""
    el = etree.SubElement(parent, _q(tag))
    for key, value in attrs.items():
        el.set(key, value)
    if text is not None:
        el.text = text
    return el


def _check(meta: Level1Meta) -> None:
    for label, root in (("unique_id_root", meta.unique_id_root), ("set_id", meta.set_id)):
        if not (_OID.match(root) or _UUID.match(root)):
            raise CdaError(f"{label} {root!r} is not an OID or a UUID")
    unique = meta.unique_id_root + (
        f"^{meta.unique_id_extension}" if meta.unique_id_extension else ""
    )
    if len(unique) > 64:
        raise CdaError(f"uniqueId {unique!r} is longer than the 64 characters XDS allows")
    if meta.patient_ins_oid not in INS_OIDS:
        raise CdaError(
            f"patient INS OID {meta.patient_ins_oid!r} is not an INS OID ({', '.join(INS_OIDS)})"
        )
    if meta.patient_gender not in ("male", "female", "other", "unknown"):
        raise CdaError(f"patient gender {meta.patient_gender!r} is not a FHIR gender")
    if meta.version_number < 1:
        raise CdaError(f"version number {meta.version_number} must be 1 or more")
    if meta.service_end is not None and meta.service_end < meta.service_start:
        raise CdaError("service_end is before service_start")


def _person(parent: etree._Element, meta: Level1Meta, *, with_org: bool) -> None:
    sub(parent, "id", root=RPPS_OID, extension=meta.author_id)
    role_attrs = {"code": meta.role_code}
    if meta.role_display:
        role_attrs["displayName"] = meta.role_display
    role_attrs["codeSystem"] = AUTHOR_ROLE_OID
    sub(parent, "code", **role_attrs)
    name = sub(sub(parent, "assignedPerson"), "name")
    sub(name, "given", meta.author_given)
    sub(name, "family", meta.author_family)
    if with_org:
        org = sub(parent, "representedOrganization")
        sub(org, "id", root=STRUCTURE_OID, extension=meta.institution_id)
        sub(org, "name", meta.institution_name)
        setting = {"code": meta.practice_setting_code}
        if meta.practice_setting_code in PRACTICE_SETTING_DISPLAYS:
            setting["displayName"] = PRACTICE_SETTING_DISPLAYS[meta.practice_setting_code]
        setting["codeSystem"] = PRACTICE_SETTING_OID
        sub(org, "standardIndustryClassCode", **setting)


def _interval(parent: etree._Element, start: datetime, end: datetime | None) -> None:
    eff = sub(parent, "effectiveTime")
    sub(eff, "low", value=format_hl7_ts(start))
    if end is not None:
        sub(eff, "high", value=format_hl7_ts(end))


def header_element(meta: Level1Meta, *, template_ids: Sequence[str] = ()) -> etree._Element:
    """A ClinicalDocument with a complete French header and no body yet."""
    _check(meta)
    # lxml takes None as the default-namespace prefix; lxml-stubs' Mapping[str, str] omits it.
    nsmap = {None: HL7_NS, "xsi": XSI_NS}
    doc = etree.Element(_q("ClinicalDocument"), nsmap=nsmap)  # type: ignore[arg-type]
    sub(doc, "realmCode", code="FR")
    sub(doc, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    for template in (TEMPLATE_HL7_FRANCE, TEMPLATE_CI_SIS, *template_ids):
        sub(doc, "templateId", root=template)
    if meta.unique_id_extension:
        sub(doc, "id", root=meta.unique_id_root, extension=meta.unique_id_extension)
    else:
        sub(doc, "id", root=meta.unique_id_root)
    sub(
        doc,
        "code",
        code=meta.type_code,
        displayName=meta.type_display,
        codeSystem=meta.type_system_oid,
        **({"codeSystemName": "LOINC"} if meta.type_system_oid == LOINC_OID else {}),
    )
    sub(doc, "title", meta.title)
    created = format_hl7_ts(meta.effective_time)
    sub(doc, "effectiveTime", value=created)
    sub(doc, "confidentialityCode", code=meta.confidentiality_code, codeSystem=CONFIDENTIALITY_OID)
    sub(doc, "languageCode", code=meta.language_code)
    sub(doc, "setId", root=meta.set_id)
    sub(doc, "versionNumber", value=str(meta.version_number))

    role = sub(sub(doc, "recordTarget"), "patientRole")
    sub(role, "id", root=meta.patient_ins_oid, extension=meta.patient_ins)
    patient = sub(role, "patient", classCode="PSN")
    name = sub(patient, "name")
    sub(name, "family", meta.patient_family, qualifier="BR")
    sub(name, "given", meta.patient_given)
    first = meta.patient_given.split()
    if first:
        sub(name, "given", first[0], qualifier="BR")
    gender_code, gender_display = _GENDER_CODES.get(meta.patient_gender, ("U", "Inconnu"))
    sub(
        patient,
        "administrativeGenderCode",
        code=gender_code,
        displayName=gender_display,
        codeSystem=GENDER_OID,
    )
    sub(patient, "birthTime", value=meta.patient_birth_date.strftime("%Y%m%d"))

    author = sub(doc, "author")
    sub(author, "time", value=created)
    _person(sub(author, "assignedAuthor"), meta, with_org=True)

    custodian_org = sub(
        sub(sub(doc, "custodian"), "assignedCustodian"), "representedCustodianOrganization"
    )
    sub(custodian_org, "id", root=STRUCTURE_OID, extension=meta.institution_id)
    sub(custodian_org, "name", meta.institution_name)

    legal = sub(doc, "legalAuthenticator")
    sub(legal, "time", value=created)
    sub(legal, "signatureCode", code="S")
    _person(sub(legal, "assignedEntity"), meta, with_org=False)

    event = sub(sub(doc, "documentationOf"), "serviceEvent", classCode="ACT", moodCode="EVN")
    _interval(event, meta.service_start, meta.service_end)
    _person(sub(sub(event, "performer", typeCode="PRF"), "assignedEntity"), meta, with_org=True)

    encounter = sub(sub(doc, "componentOf"), "encompassingEncounter")
    _interval(encounter, meta.service_start, meta.service_end)
    facility = {"code": meta.facility_type_code}
    if meta.facility_type_code in FACILITY_DISPLAYS:
        facility["displayName"] = FACILITY_DISPLAYS[meta.facility_type_code]
    facility["codeSystem"] = FACILITY_OID
    sub(sub(sub(encounter, "location"), "healthCareFacility"), "code", **facility)
    return doc


def serialize(doc: etree._Element) -> bytes:
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def wrap_pdf(pdf: bytes, meta: Level1Meta) -> bytes:
    """A CDA R2 level 1 document carrying ``pdf`` (base64, application/pdf)."""
    if b"%PDF-" not in pdf[:1024]:
        raise CdaError("the content to wrap is not a PDF (no %PDF- header)")
    doc = header_element(meta, template_ids=(TEMPLATE_XDS_SD,))
    body = sub(sub(doc, "component"), "nonXMLBody")
    sub(
        body,
        "text",
        base64.encodebytes(pdf).decode("ascii"),
        mediaType="application/pdf",
        representation="B64",
    )
    return serialize(doc)
