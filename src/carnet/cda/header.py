"""Read the XDS metadata of a CDA R2 document from its header.

Implements the header of HL7 CDA Release 2 (ANSI/HL7 CDA R2-2005, namespace ``urn:hl7-org:v3``)
as constrained in France by the ANS CI-SIS "Volet Structuration Minimale des documents de
santé" and the "Modèles de contenus CDA" (INS in ``recordTarget``, RPPS in ``author``,
``healthCareFacility`` and practice-setting codes), and the extraction of IHE XDS document-entry
metadata from a CDA header (IHE ITI TF-3 §4.2.3, XDS-SD), with the ANS associations
ASS_A11 (model templateId → formatCode) and ASS_A12 (level 1 mediaType → formatCode) that give
the formatCode a DMP expects (JDV_J60-FormatCode-DMP). Choices are listed in README.md.

The parser never resolves entities, never loads a DTD, never touches the network and refuses
any DOCTYPE. The level 1 body is never decoded to read the header.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lxml import etree

from carnet.domain.errors import Invalid
from carnet.domain.ins import OID_NIA, OID_NIR, OID_NIR_TEST, nir_key

HL7_NS = "urn:hl7-org:v3"
XSL_NS = "http://www.w3.org/1999/XSL/Transform"
ANS_SELF_PRESENTING_NS = "urn:asip-sante:ci-sis"  # "document autoprésentable" wrapper
NS = {"h": HL7_NS}

LOINC_OID = "2.16.840.1.113883.6.1"
SNOMED_OID = "2.16.840.1.113883.6.96"
RPPS_OID = "1.2.250.1.71.4.2.1"  # IdNatPS (8 + RPPS number)
STRUCTURE_OID = "1.2.250.1.71.4.2.2"  # IdNatStruct (1 + FINESS, 3 + SIRET, ...)
INS_OIDS = (OID_NIR, OID_NIA, OID_NIR_TEST)

TEMPLATE_HL7_FRANCE = "2.16.840.1.113883.2.8.2.1"
TEMPLATE_CI_SIS = "1.2.250.1.213.1.1.1.1"
TEMPLATE_XDS_SD = "1.3.6.1.4.1.19376.1.2.20"  # CDA à corps non structuré (level 1)

FORMAT_PDF = "urn:ihe:iti:xds-sd:pdf:2008"
FORMAT_TEXT = "urn:ihe:iti:xds-sd:text:2008"
# "Document non référencé IHE ou CI-SIS" (JDV_J60-FormatCode-DMP)
FORMAT_UNREFERENCED = "urn:asipSante:modelesHorsProfils:2011"

FORMAT_SYSTEM_IHE = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
FORMAT_SYSTEM_IHE_FR = (
    "https://mos.esante.gouv.fr/NOS/TRE_A11-IheFormatCode/FHIR/TRE-A11-IheFormatCode"
)
FORMAT_SYSTEM_ANS = (
    "https://mos.esante.gouv.fr/NOS/TRE_A06-FormatCodeComplementaire/FHIR/"
    "TRE-A06-FormatCodeComplementaire"
)

# ASS_A12-CorresMediaTypeCDANonStructure-XdsFormatCode-CISIS: level 1 body mediaType → formatCode.
LEVEL1_FORMAT_CODES: dict[str, str] = {
    "application/pdf": FORMAT_PDF,
    "text/plain": FORMAT_TEXT,
    "text/rtf": "urn:ihe:iti-fr:xds-sd:rtf:2010",
    "image/jpeg": "urn:ihe:iti-fr:xds-sd:jpeg:2010",
    "image/tiff": "urn:ihe:iti-fr:xds-sd:tiff:2010",
}

_APSR = (  # IHE PAT APSR organ templates 1.3.6.1.4.1.19376.1.8.1.1.2.1 to .20, in order
    *("breast", "colon", "prostate", "thyroid", "lung", "skin", "kidney", "cervix"),
    *("endometrium", "ovary", "esophagus", "stomach", "liver", "pancreas", "testis"),
    *("urinary_bladder", "lip_oral_cavity", "pharynx", "salivary_gland", "larynx"),
)

# ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS (v5.0.0): structured model templateId → formatCode.
TEMPLATE_FORMAT_CODES: dict[str, str] = {
    "1.2.250.1.213.1.1.1.5.1": "urn:asip:ci-sis:cse-cs8:2017",
    "1.2.250.1.213.1.1.1.5.2": "urn:asip:ci-sis:cse-cs9:2017",
    "1.2.250.1.213.1.1.1.5.3": "urn:asip:ci-sis:cse-cs24:2017",
    "1.2.250.1.213.1.1.1.5.4": "urn:ans:ci-sis:cse-mde:2023",
    "1.2.250.1.213.1.1.1.8": "urn:asip:ci-sis:frcp:2011",
    "1.2.250.1.213.1.1.1.9": "urn:asip:ci-sis:idap:2011",
    "1.2.250.1.213.1.1.1.12.1": "urn:asip:ci-sis:obp-sap:2023",
    "1.2.250.1.213.1.1.1.12.2": "urn:asip:ci-sis:obp-snm:2023",
    "1.2.250.1.213.1.1.1.12.3": "urn:asip:ci-sis:obp-sne:2023",
    "1.2.250.1.213.1.1.1.12.4": "urn:asip:ci-sis:obp-scm:2023",
    "1.2.250.1.213.1.1.1.12.5": "urn:asip:ci-sis:obp-sem:2023",
    "1.2.250.1.213.1.1.1.13": "urn:asip:ci-sis:vsm:2012",
    "1.2.250.1.213.1.1.1.15": "urn:asip:ci-sis:aunv:2013",
    "1.2.250.1.213.1.1.1.16": "urn:asip:ci-sis:eunv:2013",
    "1.2.250.1.213.1.1.1.17": "urn:asip:ci-sis:sunv:2013",
    "1.2.250.1.213.1.1.1.18": "urn:asip:ci-sis:crrtn:2013",
    "1.2.250.1.213.1.1.1.2.1.1": "urn:asip:ci-sis:avk:2009",
    "1.2.250.1.213.1.1.1.2.1.2": "urn:asip:ci-sis:tap:2009",
    "1.2.250.1.213.1.1.1.2.1.3": "urn:asip:ci-sis:dci:2009",
    "1.2.250.1.213.1.1.1.2.1.4": "urn:asip:ci-sis:psc:2009",
    "1.2.250.1.213.1.1.1.2.1.5": "urn:asip:ci-sis:ppv:2009",
    "1.2.250.1.213.1.1.1.21": "urn:asip:ci-sis:ldl-ees:2017",
    "1.2.250.1.213.1.1.1.22": "urn:asip:ci-sis:dlu:2015",
    "1.2.250.1.213.1.1.1.23": "urn:asip:ci-sis:fludt:2017",
    "1.2.250.1.213.1.1.1.24": "urn:asip:ci-sis:fludr:2017",
    "1.2.250.1.213.1.1.1.25": "urn:asip:ci-sis:pavc:2016",
    "1.2.250.1.213.1.1.1.26": "urn:asip:ci-sis:pps-cancer:2017",
    "1.2.250.1.213.1.1.1.27": "urn:asip:ci-sis:d2lm-fin:2017",
    "1.2.250.1.213.1.1.1.28": "urn:asip:ci-sis:d2lm-fidd:2017",
    "1.2.250.1.213.1.1.1.29": "urn:asip:ci-sis:ldl-ses:2017",
    "1.2.250.1.213.1.1.1.30": "urn:asip:ci-sis:sdm-mr:2017",
    "1.2.250.1.213.1.1.1.32": "urn:asip:ci-sis:crgm:2018",
    "1.2.250.1.213.1.1.1.36": "urn:asip:ci-sis:hr:2019",
    "1.2.250.1.213.1.1.1.37": "urn:asip:ci-sis:vac:2019",
    "1.2.250.1.213.1.1.1.38": "urn:asip:ci-sis:tlm-da:2020",
    "1.2.250.1.213.1.1.1.40": "urn:asip:ci-sis:cr-anest:2020",
    "1.2.250.1.213.1.1.1.41": "urn:asip:ci-sis:cr-cpa:2020",
    "1.2.250.1.213.1.1.1.46": "urn:asip:ci-sis:vac-note:2021",
    "1.2.250.1.213.1.1.1.47": "urn:ans:ci-sis:img-da:2022",
    "1.2.250.1.213.1.1.1.52": "urn:ans:ci-sis:bio-ep-bio:2022",
    "1.2.250.1.213.1.1.1.56": "urn:asip:ci-sis:ppp:2023",
    "1.2.250.1.213.1.1.1.58": "urn:asip:ci-sis:export-dui:2023",
    "1.2.250.1.213.1.1.1.59": "urn:ans:ci-sis:trod:2024",
    "1.2.250.1.213.1.1.1.61": "urn:asip:ci-sis:ft-su:2024",
    "1.2.250.1.213.1.1.1.62": "urn:asip:ci-sis:fr-su:2024",
    # IHE formatCodes (TRE_A11)
    "1.2.250.1.213.1.1.1.39": "urn:ihe:pharm:pre:2010",
    "1.2.250.1.213.1.1.1.54": "urn:ihe:pharm:dis:2010",
    "1.2.250.1.213.1.1.1.42": "urn:ihe:eyecare:geneyeevalcn:2014",
    "1.2.250.1.213.1.1.1.43": "urn:ihe:eyecare:geneyeevalcn:2014",
    "1.2.250.1.213.1.1.1.44": "urn:ihe:eyecare:geneyeevalcn:2014",
    "1.2.250.1.213.1.1.1.45": "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013",
    "1.2.250.1.213.1.1.1.51": "urn:ihe:pcc:ips:2020",
    "1.2.250.1.213.1.1.1.55": "urn:ihe:lab:xd-lab:2008",
    "1.2.250.1.213.1.1.1.57": "urn:ihe:palm:apsr:2016",
    "1.3.6.1.4.1.19376.1.3.3": "urn:ihe:lab:xd-lab:2008",
    "1.3.6.1.4.1.19376.1.8.1.1.1": "urn:ihe:pat:apsr:all:2010",
    **{
        f"1.3.6.1.4.1.19376.1.8.1.1.2.{i}": f"urn:ihe:pat:apsr:{n}:2010"
        for i, n in enumerate(_APSR, 1)
    },
}

_GENDERS = {"M": "male", "F": "female", "U": "unknown", "UN": "other"}
_TS = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?P<f>\.\d{1,6})?(?P<tz>[+-]\d{4})?$"
)
_WS = re.compile(r"\s+")


class CdaError(Invalid):
    """The bytes are not a usable CDA R2 document; the message says exactly why."""


@dataclass(frozen=True, slots=True)
class CdaHeader:
    """XDS metadata read from a CDA R2 header (XDS names in comments)."""

    unique_id: str  # uniqueId: id/@root, or root^extension
    level: int  # 1: nonXMLBody, 3: structuredBody
    set_id: str | None = None
    version_number: int | None = None
    type_code: str | None = None  # typeCode
    type_system: str | None = None  # FHIR system of code/@codeSystem
    type_display: str | None = None
    title: str | None = None  # title
    effective_time: datetime | None = None  # creationTime
    confidentiality_code: str | None = None  # confidentialityCode
    language_code: str | None = None  # languageCode
    patient_ins: str | None = None  # patientId (INS value)
    patient_ins_oid: str | None = None
    patient_ids: tuple[tuple[str, str], ...] = ()  # every patientRole/id as (root, extension)
    patient_family: str | None = None  # birth name (qualifier BR) when given
    patient_given: str | None = None  # birth first names (unqualified given) when given
    patient_birth_date: str | None = None  # YYYY-MM-DD (or YYYY-MM, YYYY)
    patient_gender: str | None = None  # FHIR administrative gender
    author_id: str | None = None  # author person (IdNatPS for the RPPS OID)
    author_id_root: str | None = None
    author_family: str | None = None
    author_given: str | None = None
    author_role_code: str | None = None  # authorRole/authorSpecialty, e.g. G15_10/SM26
    author_institution: str | None = None  # authorInstitution name
    author_institution_id: str | None = None  # IdNatStruct (e.g. 1 + FINESS)
    legal_authenticator_id: str | None = None  # legalAuthenticator
    legal_authenticator_family: str | None = None
    service_start: datetime | None = None  # serviceStartTime
    service_end: datetime | None = None  # serviceStopTime
    facility_type_code: str | None = None  # healthcareFacilityTypeCode
    facility_type_system: str | None = None
    practice_setting_code: str | None = None  # practiceSettingCode
    practice_setting_system: str | None = None
    media_type: str | None = None  # level 1 body mediaType
    format_code: str | None = None  # formatCode a DMP expects (ASS_A11 / ASS_A12)
    format_code_system: str | None = None
    template_ids: tuple[str, ...] = ()
    self_presenting: bool = False  # ANS "autoprésentable" wrapper (xsl:stylesheet)
    warnings: tuple[str, ...] = ()  # what is wrong but not fatal, each naming the element

    @property
    def author_profession_code(self) -> str | None:
        """TRE_G15 profession code from ``G15_10/SM26`` style role codes (here ``10``)."""
        code = self.author_role_code
        if not code or not code.startswith("G15_"):
            return None
        return code[4:].split("/", 1)[0] or None

    @property
    def author_speciality_code(self) -> str | None:
        """Speciality part of ``G15_10/SM26`` style role codes (here ``SM26``)."""
        code = self.author_role_code
        if not code or not code.startswith("G15_") or "/" not in code:
            return None
        return code.split("/", 1)[1] or None


def oid_to_system(oid: str) -> str:
    """FHIR system URI for a code system OID (LOINC and SNOMED CT by name, else urn:oid)."""
    if oid == LOINC_OID:
        return "http://loinc.org"
    if oid == SNOMED_OID:
        return "http://snomed.info/sct"
    return f"urn:oid:{oid}"


def format_code_system(code: str) -> str:
    """FHIR system of a formatCode: IHE's, the ANS's TRE_A11 (French IHE) or TRE_A06."""
    if code.startswith("urn:ihe:iti-fr:"):
        return FORMAT_SYSTEM_IHE_FR
    if code.startswith("urn:ihe:"):
        return FORMAT_SYSTEM_IHE
    return FORMAT_SYSTEM_ANS


_local_tz: tzinfo | None = None


def local_tz() -> tzinfo:
    """Europe/Paris, the time zone assumed for an HL7 TS without UTC offset (UTC if absent)."""
    global _local_tz
    if _local_tz is None:
        try:
            _local_tz = ZoneInfo("Europe/Paris")
        except ZoneInfoNotFoundError:  # pragma: no cover - depends on the system's tz database
            _local_tz = UTC
    return _local_tz


def parse_hl7_ts(value: str) -> tuple[datetime, bool]:
    """Parse an HL7 v3 TS (``YYYY[MM[DD[HH[MM[SS[.F]]]]]][+/-ZZZZ]``).

    Returns a tz-aware datetime (missing parts are the start of the period) and whether the
    value carried a UTC offset; without one, Europe/Paris is assumed. Raises ValueError.
    """
    m = _TS.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not an HL7 TS (YYYYMMDDHHMMSS[+ZZZZ])")
    if m["f"] and not m["s"]:
        raise ValueError(f"{value!r}: fractional seconds need seconds")
    tz_text = m["tz"]
    tz: tzinfo
    if tz_text:
        minutes = int(tz_text[1:3]) * 60 + int(tz_text[3:5])
        if int(tz_text[3:5]) >= 60 or minutes > 14 * 60:
            raise ValueError(f"{value!r}: UTC offset {tz_text} is out of range")
        tz = timezone(timedelta(minutes=-minutes if tz_text[0] == "-" else minutes))
    else:
        tz = local_tz()
    micro = int((m["f"] or ".0")[1:].ljust(6, "0"))
    try:
        dt = datetime(
            int(m["y"]),
            int(m["mo"] or 1),
            int(m["d"] or 1),
            int(m["h"] or 0),
            int(m["mi"] or 0),
            int(m["s"] or 0),
            micro,
            tzinfo=tz,
        )
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid date/time: {exc}") from None
    return dt, bool(tz_text)


def format_hl7_ts(dt: datetime) -> str:
    """An HL7 TS to the second with UTC offset (naive datetimes are taken as Europe/Paris)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=local_tz())
    return dt.strftime("%Y%m%d%H%M%S%z")


# -- parsing ---------------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    # One parser per call: lxml parsers are not to be shared between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=True,
        remove_comments=True,
    )


def _parse_xml(data: bytes) -> etree._Element:
    """Parse bytes as XML with entities unresolved, no DTD, no network."""
    if not data or not data.strip():
        raise CdaError("empty document: no XML content")
    try:
        return etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise CdaError(f"not well-formed XML: {exc}") from None


MAX_HEADER_ELEMENTS = 10_000
"""Elements read before the body at most (real headers have a few hundred)."""
MAX_HEADER_DEPTH = 64
"""Nesting at most before the body (real headers nest about ten deep)."""
_FEED = 64 * 1024
_COMPONENT = f"{{{HL7_NS}}}component"
_CLINICAL_DOCUMENT = f"{{{HL7_NS}}}ClinicalDocument"
_NON_XML_BODY = f"{{{HL7_NS}}}nonXMLBody"
_STRUCTURED_BODY = f"{{{HL7_NS}}}structuredBody"


def _is_body(el: etree._Element) -> bool:
    """``ClinicalDocument/component/structuredBody`` or ``…/nonXMLBody``."""
    if el.tag not in (_STRUCTURED_BODY, _NON_XML_BODY):
        return False
    parent = el.getparent()
    grand = parent.getparent() if parent is not None else None
    return (
        parent is not None
        and parent.tag == _COMPONENT
        and (grand is not None and grand.tag == _CLINICAL_DOCUMENT)
    )


def _parse_header_xml(data: bytes) -> etree._Element:
    """The document's tree up to the start of its body, read as a stream: what follows the
    header (a level 1 document's content, a level 3 document's sections) is never parsed.
    Bounded: at most :data:`MAX_HEADER_ELEMENTS` elements, :data:`MAX_HEADER_DEPTH` deep, and
    lxml's own limits on a text node (``huge_tree`` off)."""
    if not data or not data.strip():
        raise CdaError("empty document: no XML content")
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
    )
    root: etree._Element | None = None
    count = depth = 0
    try:
        for offset in range(0, len(data), _FEED):
            parser.feed(data[offset : offset + _FEED])
            for event, item in parser.read_events():
                if not isinstance(item, etree._Element):
                    continue  # only element events were asked for
                el = item
                if event == "end":
                    depth -= 1
                    if el.tag == _NON_XML_BODY and _is_body(el):
                        return el.getroottree().getroot()
                    continue
                count += 1
                depth += 1
                if root is None:
                    root = el
                top: etree._Element = root
                if count > MAX_HEADER_ELEMENTS or depth > MAX_HEADER_DEPTH:
                    raise CdaError(
                        f"the CDA header is too large: more than {MAX_HEADER_ELEMENTS} "
                        f"elements or {MAX_HEADER_DEPTH} levels before the body"
                    )
                if el.tag == _STRUCTURED_BODY and _is_body(el):
                    return top
                parent = el.getparent()
                if el.tag == f"{{{HL7_NS}}}text" and parent is not None and _is_body(parent):
                    return top
        parser.close()
    except etree.XMLSyntaxError as exc:
        raise CdaError(f"not well-formed XML: {exc}") from None
    if root is None:
        raise CdaError("empty document: no XML content")
    return root


def _clinical_document(data: bytes, *, header_only: bool = False) -> tuple[etree._Element, bool]:
    root = _parse_header_xml(data) if header_only else _parse_xml(data)
    if root.getroottree().docinfo.internalDTD is not None:
        raise CdaError(
            "the document declares a DOCTYPE: DTDs and entity declarations are refused in CDA "
            "documents (entities are never expanded)"
        )
    tag = etree.QName(root)
    if tag.namespace == HL7_NS and tag.localname == "ClinicalDocument":
        return root, False
    if tag.namespace == XSL_NS and tag.localname == "stylesheet":
        inner = root.find(f"{{{ANS_SELF_PRESENTING_NS}}}Contenu/{{{HL7_NS}}}ClinicalDocument")
        if inner is None:
            raise CdaError(
                "not a CDA document: the root is an XSL stylesheet without the ANS "
                "self-presenting content (data:Contenu/ClinicalDocument, "
                f"data = {ANS_SELF_PRESENTING_NS})"
            )
        return inner, True
    if tag.localname == "ClinicalDocument":
        raise CdaError(
            f"not a CDA R2 document: ClinicalDocument is in namespace {tag.namespace or '(none)'!r}"
            f", expected {HL7_NS!r}"
        )
    raise CdaError(
        f"not a CDA R2 document: the root element is {tag.localname!r}"
        f"{f' in namespace {tag.namespace!r}' if tag.namespace else ''}, expected "
        f"ClinicalDocument in namespace {HL7_NS!r}"
    )


def _find(el: etree._Element | None, path: str) -> etree._Element | None:
    return None if el is None else el.find(path, NS)


def _attr(el: etree._Element | None, path: str, name: str) -> str | None:
    found = _find(el, path) if path else el
    if found is None:
        return None
    value = found.get(name)
    if value is None:
        return None
    return value.strip() or None


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    text = _WS.sub(" ", "".join(t for t in el.itertext() if isinstance(t, str))).strip()
    return text or None


def _ii(el: etree._Element | None) -> str | None:
    """An II as XDS writes it: root, or root^extension."""
    if el is None:
        return None
    root = (el.get("root") or "").strip()
    ext = (el.get("extension") or "").strip()
    if not root:
        return None
    return f"{root}^{ext}" if ext else root


def _pick(elements: Iterable[etree._Element], *qualifiers: str | None) -> etree._Element | None:
    """The first element whose @qualifier is the first of ``qualifiers`` found, in that order."""
    items = list(elements)
    for q in qualifiers:
        for item in items:
            if (item.get("qualifier") or None) == q:
                return item
    return items[0] if items else None


def _person_name(name: etree._Element | None) -> tuple[str | None, str | None]:
    if name is None:
        return None, None
    family = _pick(name.findall("h:family", NS), "BR", None, "SP", "CL")
    given = _pick(name.findall("h:given", NS), None, "BR", "CL")
    return _text(family), _text(given)


def _id_with_root(el: etree._Element | None, preferred: str) -> etree._Element | None:
    if el is None:
        return None
    ids = el.findall("h:id", NS)
    for i in ids:
        if i.get("root") == preferred:
            return i
    return ids[0] if ids else None


class _Reader:
    """Collects values and warnings while reading one ClinicalDocument."""

    def __init__(self, doc: etree._Element) -> None:
        self.doc = doc
        self.warnings: list[str] = []

    def ts(self, el: etree._Element | None, where: str) -> datetime | None:
        if el is None:
            return None
        value = el.get("value")
        if value is None or not value.strip():
            return None
        try:
            dt, has_tz = parse_hl7_ts(value)
        except ValueError as exc:
            raise CdaError(f"{where}/@value: {exc}", field=where) from None
        if not has_tz and len(value.strip()) > 8:
            self.warnings.append(
                f"{where}/@value {value.strip()!r} has no UTC offset; Europe/Paris assumed"
            )
        return dt


def parse_header(data: bytes) -> CdaHeader:
    """Read the XDS metadata of a CDA R2 document (level 1 or 3) from its header.

    Raises :class:`CdaError` when the bytes are not well-formed XML, not a ClinicalDocument
    in the HL7 v3 namespace, declare a DOCTYPE, have no usable ``id``, no body, or carry a
    malformed date or version number. Faults that leave the metadata usable are reported in
    ``warnings``.
    """
    doc, self_presenting = _clinical_document(data, header_only=True)
    r = _Reader(doc)
    w = r.warnings

    id_el = doc.find("h:id", NS)
    if id_el is None:
        raise CdaError("ClinicalDocument/id is missing", field="ClinicalDocument/id")
    unique_id = _ii(id_el)
    if unique_id is None:
        raise CdaError(
            "ClinicalDocument/id has no @root"
            + (f" (nullFlavor {id_el.get('nullFlavor')})" if id_el.get("nullFlavor") else ""),
            field="ClinicalDocument/id",
        )

    template_ids = tuple(
        root for t in doc.findall("h:templateId", NS) if (root := (t.get("root") or "").strip())
    )

    code = doc.find("h:code", NS)
    type_oid = _attr(code, "", "codeSystem")
    for required in ("code", "effectiveTime", "confidentialityCode", "recordTarget", "author"):
        if doc.find(f"h:{required}", NS) is None:
            w.append(f"ClinicalDocument/{required} is missing (required by CDA R2)")
    if doc.find("h:custodian", NS) is None:
        w.append("ClinicalDocument/custodian is missing (required by CDA R2)")

    version_text = _attr(doc, "h:versionNumber", "value")
    version: int | None = None
    if version_text is not None:
        try:
            version = int(version_text)
        except ValueError:
            raise CdaError(
                f"ClinicalDocument/versionNumber/@value {version_text!r} is not an integer",
                field="ClinicalDocument/versionNumber",
            ) from None

    has_set_id = doc.find("h:setId", NS) is not None
    if has_set_id != (doc.find("h:versionNumber", NS) is not None):
        w.append(
            "ClinicalDocument/setId and versionNumber go together (CDA R2): "
            + ("versionNumber is missing" if has_set_id else "setId is missing")
        )

    effective = r.ts(doc.find("h:effectiveTime", NS), "ClinicalDocument/effectiveTime")

    # Patient
    role = doc.find("h:recordTarget/h:patientRole", NS)
    patient_ids = tuple(
        ((i.get("root") or "").strip(), (i.get("extension") or "").strip())
        for i in (role.findall("h:id", NS) if role is not None else [])
    )
    ins_oid, ins = next(((o, v) for o, v in patient_ids if o in INS_OIDS and v), (None, None))
    patient = _find(role, "h:patient")
    family, given = _person_name(_find(patient, "h:name"))
    gender_el = _find(patient, "h:administrativeGenderCode")
    gender: str | None = None
    if gender_el is not None:
        g = (gender_el.get("code") or "").strip()
        gender = _GENDERS.get(g, "other") if g else "unknown"
    birth = _attr(patient, "h:birthTime", "value")
    birth_date = _birth_date(birth)
    if role is not None and ins is None:
        w.append(
            "recordTarget/patientRole/id: no INS (root 1.2.250.1.213.1.4.8, .9 or .10 "
            "with an extension)"
        )
    if ins is not None and ins_oid is not None:
        _check_ins(ins, ins_oid, gender, birth_date, w)
    if (
        birth_date
        and effective
        and len(birth_date) == 10
        and date.fromisoformat(birth_date) > effective.date()
    ):
        w.append(
            f"recordTarget/patientRole/patient/birthTime {birth_date} is after the "
            f"document's effectiveTime {effective.date().isoformat()}"
        )

    # Author (the first one) and legal authenticator
    assigned = doc.find("h:author/h:assignedAuthor", NS)
    author_id_el = _id_with_root(assigned, RPPS_OID)
    if (
        assigned is not None
        and assigned.find("h:assignedPerson", NS) is not None
        and assigned.find("h:code", NS) is None
    ):
        w.append(
            "author/assignedAuthor/code (profession and speciality) is missing: the CI-SIS "
            "requires it for a health professional"
        )
    a_family, a_given = _person_name(_find(assigned, "h:assignedPerson/h:name"))
    org = _find(assigned, "h:representedOrganization")
    legal = doc.find("h:legalAuthenticator/h:assignedEntity", NS)
    la_family, _ = _person_name(_find(legal, "h:assignedPerson/h:name"))

    # Service events
    starts: list[datetime] = []
    ends: list[datetime] = []
    for n, ev in enumerate(doc.findall("h:documentationOf/h:serviceEvent", NS), 1):
        where = f"documentationOf[{n}]/serviceEvent/effectiveTime"
        eff = ev.find("h:effectiveTime", NS)
        if eff is None:
            continue
        point = r.ts(eff, where)
        low = r.ts(eff.find("h:low", NS), f"{where}/low") or point
        high = r.ts(eff.find("h:high", NS), f"{where}/high") or point
        if low and high and low > high:
            w.append(f"{where}: low {low.isoformat()} is after high {high.isoformat()}")
        if low:
            starts.append(low)
        if high:
            ends.append(high)

    facility = doc.find(
        "h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:code", NS
    )
    setting = _practice_setting(doc)

    # Body
    level, media_type = _body(doc)
    format_code = _format_code(level, media_type, template_ids, w)

    return CdaHeader(
        unique_id=unique_id,
        level=level,
        set_id=_ii(doc.find("h:setId", NS)),
        version_number=version,
        type_code=_attr(code, "", "code"),
        type_system=oid_to_system(type_oid) if type_oid else None,
        type_display=_attr(code, "", "displayName"),
        title=_text(doc.find("h:title", NS)),
        effective_time=effective,
        confidentiality_code=_attr(doc, "h:confidentialityCode", "code"),
        language_code=_attr(doc, "h:languageCode", "code"),
        patient_ins=ins,
        patient_ins_oid=ins_oid,
        patient_ids=patient_ids,
        patient_family=family,
        patient_given=given,
        patient_birth_date=birth_date,
        patient_gender=gender,
        author_id=_attr(author_id_el, "", "extension"),
        author_id_root=_attr(author_id_el, "", "root"),
        author_family=a_family,
        author_given=a_given,
        author_role_code=_attr(assigned, "h:code", "code"),
        author_institution=_text(_find(org, "h:name")),
        author_institution_id=_attr(_id_with_root(org, STRUCTURE_OID), "", "extension"),
        legal_authenticator_id=_attr(_id_with_root(legal, RPPS_OID), "", "extension"),
        legal_authenticator_family=la_family,
        service_start=min(starts) if starts else None,
        service_end=max(ends) if ends else None,
        facility_type_code=_attr(facility, "", "code"),
        facility_type_system=_system(facility),
        practice_setting_code=_attr(setting, "", "code"),
        practice_setting_system=_system(setting),
        media_type=media_type,
        format_code=format_code,
        format_code_system=format_code_system(format_code) if format_code else None,
        template_ids=template_ids,
        self_presenting=self_presenting,
        warnings=tuple(w),
    )


def _system(el: etree._Element | None) -> str | None:
    oid = _attr(el, "", "codeSystem")
    return oid_to_system(oid) if oid else None


def _practice_setting(doc: etree._Element) -> etree._Element | None:
    """standardIndustryClassCode of the performer's organisation (then author's, then legal
    authenticator's)."""
    for path in (
        "h:documentationOf/h:serviceEvent/h:performer/h:assignedEntity/"
        "h:representedOrganization/h:standardIndustryClassCode",
        "h:author/h:assignedAuthor/h:representedOrganization/h:standardIndustryClassCode",
        "h:legalAuthenticator/h:assignedEntity/h:representedOrganization/"
        "h:standardIndustryClassCode",
    ):
        found = doc.find(path, NS)
        if found is not None and found.get("code"):
            return found
    return None


def _birth_date(value: str | None) -> str | None:
    if not value:
        return None
    m = re.fullmatch(r"(\d{4})(\d{2})?(\d{2})?(?:\d*(?:\.\d+)?)?(?:[+-]\d{4})?", value)
    if not m:
        raise CdaError(
            f"recordTarget/patientRole/patient/birthTime/@value {value!r} is not an HL7 TS",
            field="recordTarget/patientRole/patient/birthTime",
        )
    y, mo, d = m.groups()
    try:
        date(int(y), int(mo or 1), int(d or 1))
    except ValueError:
        raise CdaError(
            f"recordTarget/patientRole/patient/birthTime/@value {value!r} is not a valid date",
            field="recordTarget/patientRole/patient/birthTime",
        ) from None
    return "-".join(p for p in (y, mo, d) if p)


def _check_ins(
    ins: str, oid: str, gender: str | None, birth_date: str | None, warnings: list[str]
) -> None:
    where = "recordTarget/patientRole/id"
    v = ins.upper()
    if not re.fullmatch(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}", v):
        warnings.append(f"{where}: INS {ins!r} (root {oid}) is not 13 characters and a 2-digit key")
        return
    expected = nir_key(v[:13])
    if int(v[13:]) != expected:
        warnings.append(
            f"{where}: INS {ins} (root {oid}) has key {v[13:]}, the key of {v[:13]} is "
            f"{expected:02d}"
        )
    sex = {"1": "male", "3": "male", "7": "male", "2": "female", "4": "female", "8": "female"}
    nir_gender = sex.get(v[0])
    if gender in ("male", "female") and nir_gender and nir_gender != gender:
        warnings.append(
            f"{where}: INS {ins} is a {nir_gender} NIR (first digit {v[0]}) but "
            f"administrativeGenderCode says {gender}"
        )
    month = int(v[3:5])
    if (
        birth_date
        and len(birth_date) >= 7
        and 1 <= month <= 12
        and (birth_date[2:4] != v[1:3] or int(birth_date[5:7]) != month)
    ):
        warnings.append(
            f"{where}: INS {ins} gives birth year/month {v[1:3]}/{v[3:5]} but birthTime "
            f"is {birth_date}"
        )


def _body(doc: etree._Element) -> tuple[int, str | None]:
    component = doc.find("h:component", NS)
    if component is None:
        raise CdaError(
            "ClinicalDocument/component is missing: a CDA document has a nonXMLBody or a "
            "structuredBody",
            field="ClinicalDocument/component",
        )
    if component.find("h:structuredBody", NS) is not None:
        return 3, None
    body_text = component.find("h:nonXMLBody/h:text", NS)
    if body_text is not None:
        return 1, (body_text.get("mediaType") or "text/plain").strip()
    if component.find("h:nonXMLBody", NS) is not None:
        raise CdaError(
            "ClinicalDocument/component/nonXMLBody has no text element",
            field="ClinicalDocument/component/nonXMLBody/text",
        )
    raise CdaError(
        "ClinicalDocument/component has neither nonXMLBody nor structuredBody",
        field="ClinicalDocument/component",
    )


def _format_code(
    level: int, media_type: str | None, template_ids: tuple[str, ...], warnings: list[str]
) -> str | None:
    mapped = [(t, TEMPLATE_FORMAT_CODES[t]) for t in template_ids if t in TEMPLATE_FORMAT_CODES]
    if level == 1:
        if TEMPLATE_XDS_SD not in template_ids:
            warnings.append(
                f"level 1 document (nonXMLBody) without the templateId {TEMPLATE_XDS_SD} "
                "(CDA à corps non structuré)"
            )
        for t, model_fc in mapped:
            warnings.append(
                f"templateId {t} names a structured model (formatCode {model_fc}) but the body "
                "is a nonXMLBody; formatCode taken from the body's mediaType"
            )
        fc = LEVEL1_FORMAT_CODES.get((media_type or "").lower())
        if fc is None:
            warnings.append(
                f"nonXMLBody/text/@mediaType {media_type!r} has no DMP formatCode "
                f"(expected one of {', '.join(LEVEL1_FORMAT_CODES)})"
            )
        return fc
    if TEMPLATE_XDS_SD in template_ids:
        warnings.append(
            f"templateId {TEMPLATE_XDS_SD} (CDA à corps non structuré) on a structuredBody"
        )
    if not mapped:
        return FORMAT_UNREFERENCED
    # A model template of the ANS (1.2.250.1.213.*) wins over an IHE one; document order next.
    ans = [m for m in mapped if m[0].startswith("1.2.250.1.213.")]
    chosen = (ans or mapped)[0]
    others = sorted({fc for _, fc in mapped} - {chosen[1]})
    if others:
        warnings.append(
            f"templateIds map to several formatCodes ({chosen[1]}, {', '.join(others)}); "
            f"{chosen[1]} taken from templateId {chosen[0]}"
        )
    return chosen[1]


# -- level 1 body ----------------------------------------------------------------------------


def extract_level1_body(data: bytes) -> tuple[str, bytes]:
    """The (mediaType, decoded content) of a level 1 document's inline nonXMLBody."""
    doc, _ = _clinical_document(data)
    component = doc.find("h:component", NS)
    if component is not None and component.find("h:structuredBody", NS) is not None:
        raise CdaError("not a level 1 document: the body is a structuredBody")
    text = _find(component, "h:nonXMLBody/h:text")
    if text is None:
        raise CdaError(
            "not a level 1 document: ClinicalDocument/component/nonXMLBody/text is missing",
            field="ClinicalDocument/component/nonXMLBody/text",
        )
    where = "ClinicalDocument/component/nonXMLBody/text"
    media_type = (text.get("mediaType") or "text/plain").strip()
    representation = (text.get("representation") or "TXT").strip().upper()
    if text.get("compression"):
        raise CdaError(
            f"{where}/@compression {text.get('compression')!r} is not supported: send the "
            "content uncompressed",
            field=where,
        )
    if text.find("h:reference", NS) is not None and not (text.text or "").strip():
        raise CdaError(
            f"{where} references external content; the content must be inline",
            field=where,
        )
    raw = text.text or ""
    if representation == "B64":
        compact = raw.translate(_B64_WS)
        try:
            content = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CdaError(f"{where}: the B64 content is not valid base64 ({exc})") from None
    elif representation == "TXT":
        content = raw.encode("utf-8")
    else:
        raise CdaError(
            f"{where}/@representation {representation!r} must be B64 or TXT", field=where
        )
    if not content:
        raise CdaError(f"{where} is empty", field=where)
    if media_type == "application/pdf" and b"%PDF-" not in content[:1024]:
        raise CdaError(
            f"{where}: mediaType is application/pdf but the content does not start like a PDF "
            "(%PDF- header missing)",
            field=where,
        )
    return media_type, content


_B64_WS = {ord(c): None for c in " \t\r\n"}
