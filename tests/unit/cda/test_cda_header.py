"""parse_header / extract_level1_body on real ANS examples (tests/fixtures/cda) and bad input."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from carnet.cda import header as header_module
from carnet.cda.header import (
    FORMAT_PDF,
    FORMAT_SYSTEM_ANS,
    FORMAT_SYSTEM_IHE,
    FORMAT_UNREFERENCED,
    CdaError,
    extract_level1_body,
    format_hl7_ts,
    oid_to_system,
    parse_header,
    parse_hl7_ts,
)
from carnet.domain.errors import Invalid as InvalidInput

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cda"
CET = timezone(timedelta(hours=1))
CEST = timezone(timedelta(hours=2))
TEST_NIR = "1.2.250.1.213.1.4.10"
NIR = "1.2.250.1.213.1.4.8"

IMG_N1 = "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml"
BIO_TSH = "BIO-CR-BIO_2024.01_TSH_1.xml"
VAC = "VAC-NOTE_2023.01.xml"
IMG_DA = "IMG-DA-IMG_2024.01_Mammo-Echo-Seins.xml"
CSE8 = "CSE-CS8_2025.01.xml"
EPMED = "eP-MED-DM_2022.01_PosoNonStruct.xml"
PPS = "CANCER-PPS_2022.01_Autopresentable.xml"
CNAM = "CNAM-HR_2021.01_sans-info.xml"
MDM_N1 = "Volets_TRANS_DOC_CDA_HL7V2_V2.0_MDM_Transmission_initiale_MDM_CR_Radio_CDAN1_v1.XML"
ORU_N1 = "Volets_TRANS_DOC_CDA_HL7V2_V2.0_ORU_Transmission_initiale_ORU_CR_Bio_CDA_Niv1_v1.XML"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# file, unique id, type code, INS, INS OID, author id, level, formatCode
CASES = [
    (IMG_N1, "1.2.250.1.213.1.1.1.45.2024.2.1", "18748-4", "279035121518989", TEST_NIR,
     "801234560801", 1, FORMAT_PDF),
    (BIO_TSH, "1.2.250.1.213.1.1.1.55.2024.9.1", "11502-2", "279035121518989", TEST_NIR,
     "801234534765", 3, "urn:ihe:lab:xd-lab:2008"),
    (VAC, "1.2.250.1.213.1.1.1.46.2023.1.1", "87273-9", "279035121518989", TEST_NIR,
     "801234567897", 3, "urn:asip:ci-sis:vac-note:2021"),
    (IMG_DA, "1.2.250.1.213.1.1.1.47.2024.1.1", "55115-0", "279035121518989", TEST_NIR,
     "801234567897", 3, "urn:ans:ci-sis:img-da:2022"),
    (CSE8, "1.2.250.1.213.1.1.1.5.1.2024.2.1", "CERT_DECL", "221042545611404", TEST_NIR,
     "801234567897", 3, "urn:asip:ci-sis:cse-cs8:2017"),
    (EPMED, "1.2.250.1.213.1.1.1.39.2022.1.1", "57833-6", "279035121518989", TEST_NIR,
     "801234567897", 3, "urn:ihe:pharm:pre:2010"),
    (PPS, "1.2.250.1.213.1.1.1.26.2022.1.1", "18776-5", "279035121518989", TEST_NIR,
     "801234567897", 3, "urn:asip:ci-sis:pps-cancer:2017"),
    (CNAM, "1.2.250.1.213.1.1.1.36.2021.2.1", "REMB", "279035121518989", TEST_NIR,
     "518003502400041/1.2.250.1.215.1.2", 3, "urn:asip:ci-sis:hr:2019"),
    (MDM_N1, "1.2.250.1.71.4.2.2.120456789^A71024000081", "18748-4", "274075176079430", NIR,
     "801234564895", 1, FORMAT_PDF),
    (ORU_N1, "1.2.250.1.213.1.1.10", "11502-2", "277076322082910", NIR,
     "801234534765", 1, FORMAT_PDF),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "unique_id", "type_code", "ins", "ins_oid", "author_id", "level", "format_code"),
    CASES,
    ids=[c[0][:40] for c in CASES],
)
def test_every_fixture(
    name: str,
    unique_id: str,
    type_code: str,
    ins: str,
    ins_oid: str,
    author_id: str,
    level: int,
    format_code: str,
) -> None:
    h = parse_header(load(name))
    assert h.unique_id == unique_id
    assert h.type_code == type_code
    assert h.patient_ins == ins
    assert h.patient_ins_oid == ins_oid
    assert h.author_id == author_id
    assert h.author_id_root == "1.2.250.1.71.4.2.1"
    assert h.level == level
    assert h.format_code == format_code
    assert h.confidentiality_code == "N"
    assert h.language_code == "fr-FR"
    assert h.media_type == ("application/pdf" if level == 1 else None)


def test_imaging_level1_all_fields() -> None:
    h = parse_header(load(IMG_N1))
    assert h.set_id == "1.2.250.1.213.1.1.1.45.2024.2"
    assert h.version_number == 2
    assert h.type_system == "http://loinc.org"
    assert h.type_display == "CR d’imagerie médicale"
    assert h.title == "CR d’imagerie médicale - Scanner Tête + Cou + Thorax avec injection"
    assert h.effective_time == datetime(2021, 1, 8, 11, 17, tzinfo=CET)
    assert h.patient_ids == (
        ("1.2.250.1.213.1.4.10", "279035121518989"),
        ("1.2.3.4.567.8.9.10", "1234567890121"),
    )
    assert (h.patient_family, h.patient_given) == ("PAT-TROIS", "DOMINIQUE MARIE-LOUISE")
    assert h.patient_birth_date == "1979-03-28"
    assert h.patient_gender == "female"
    assert (h.author_family, h.author_given) == ("BIDEAULT", "Jacques")
    assert h.author_role_code == "G15_10/SM44"
    assert h.author_profession_code == "10"
    assert h.author_speciality_code == "SM44"
    assert h.author_institution == "Centre de radiologie Ambroise"
    assert h.author_institution_id == "1750803447"
    assert h.legal_authenticator_id == "801234560801"
    assert h.legal_authenticator_family == "BIDEAULT"
    assert h.service_start == datetime(2021, 1, 8, 10, 25, tzinfo=CET)
    assert h.service_end == datetime(2021, 1, 8, 11, 17, tzinfo=CET)
    assert (h.facility_type_code, h.facility_type_system) == ("SA08", "urn:oid:1.2.250.1.71.4.2.4")
    assert h.practice_setting_code == "AMBULATOIRE"
    assert h.practice_setting_system == "urn:oid:1.2.250.1.213.1.1.4.9"
    assert h.format_code_system == FORMAT_SYSTEM_IHE
    # the IMG-CR-IMG model templateId is commented out in the example: comments are dropped
    assert h.template_ids == (
        "2.16.840.1.113883.2.8.2.1",
        "1.2.250.1.213.1.1.1.1",
        "1.3.6.1.4.1.19376.1.2.20",
    )
    assert h.self_presenting is False
    assert h.warnings == ()


def test_biology_level3() -> None:
    h = parse_header(load(BIO_TSH))
    assert h.title == "Compte rendu d'examens biologiques"
    assert h.effective_time == datetime(2021, 4, 1, 17, 10, tzinfo=CET)
    assert (h.author_family, h.author_role_code) == ("CAMPARINI", "G15_10/SM03")
    assert h.author_institution == "Laboratoire des charmes"
    assert (h.facility_type_code, h.practice_setting_code) == ("SA25", "AMBULATOIRE")
    assert h.service_start == datetime(2021, 1, 4, 9, 22, tzinfo=CET)
    assert h.service_end == datetime(2021, 1, 4, 16, 5, tzinfo=CET)
    # both the IHE XD-LAB and the ANS CR-BIO templates map to the same formatCode
    assert "1.3.6.1.4.1.19376.1.3.3" in h.template_ids
    assert "1.2.250.1.213.1.1.1.55" in h.template_ids
    assert h.warnings == ()


def test_vaccination_note() -> None:
    h = parse_header(load(VAC))
    assert h.title == "NOTE DE VACCINATION"
    assert h.type_display == "Note de vaccination"
    assert h.format_code_system == FORMAT_SYSTEM_ANS
    assert h.service_start == datetime(2021, 4, 9, 15, 35, tzinfo=CET)
    assert h.service_end is None
    assert (h.author_family, h.author_given) == ("MULLER", "Charles")
    assert h.facility_type_code == "SA07"
    assert h.warnings == ()


def test_prescription_spans_its_validity() -> None:
    h = parse_header(load(EPMED))
    assert h.service_start == datetime(2021, 12, 1, 9, 10, tzinfo=CET)
    assert h.service_end == datetime(2022, 11, 30, 9, 10, tzinfo=CET)
    assert (h.author_family, h.author_given) == ("PIOU", "Romain")
    # the example's legal authenticator is the same person with another RPPS number
    assert h.legal_authenticator_id == "807505123456"
    assert h.legal_authenticator_family == "PIOU"


def test_imaging_request_level3() -> None:
    h = parse_header(load(IMG_DA))
    assert h.title == "Demande d'acte d'imagerie"
    assert h.author_family == "BOILEAU"
    assert (h.facility_type_code, h.practice_setting_code) == ("SA08", "AMBULATOIRE")
    assert "1.2.840.10008.9.20" in h.template_ids


def test_reimbursement_data_from_a_device_author() -> None:
    h = parse_header(load(CNAM))
    assert h.type_system == "urn:oid:1.2.250.1.213.1.1.4.12"
    assert h.version_number == 2
    assert h.author_family is None  # assignedAuthoringDevice, no person
    assert h.author_role_code == "ALIM_AM"
    assert h.author_profession_code is None
    assert (h.author_institution, h.author_institution_id) == (
        "Assurance Maladie",
        "318003502400041",
    )
    assert (h.facility_type_code, h.practice_setting_code) == ("SA24", "AMO")
    assert h.legal_authenticator_family == "Assurance Maladie"


def test_self_presenting_document() -> None:
    h = parse_header(load(PPS))
    assert h.self_presenting is True
    assert h.title == "PROGRAMME PERSONNALISÉ DE SOINS EN CANCEROLOGIE"
    assert h.author_institution == "Clinique du Dr. MULLER"
    # ANS example fault: INS 279035121518989 is born 1979-03, birthTime says 1976-05-31
    assert h.patient_birth_date == "1976-05-31"
    assert h.warnings == (
        "recordTarget/patientRole/id: INS 279035121518989 gives birth year/month 79/03 but "
        "birthTime is 1976-05-31",
    )


def test_cse_certificate_faults_are_reported() -> None:
    h = parse_header(load(CSE8))
    assert (h.patient_family, h.patient_given) == ("DECOURCY", "Ruth Isabelle")
    assert h.patient_birth_date == "2023-04-25"
    assert h.effective_time == datetime(2021, 5, 3, 11, 45, tzinfo=CET)
    assert h.warnings == (
        "recordTarget/patientRole/id: INS 221042545611404 (root 1.2.250.1.213.1.4.10) has key "
        "04, the key of 2210425456114 is 83",
        "recordTarget/patientRole/id: INS 221042545611404 gives birth year/month 21/04 but "
        "birthTime is 2023-04-25",
        "recordTarget/patientRole/patient/birthTime 2023-04-25 is after the document's "
        "effectiveTime 2021-05-03",
    )


def test_hl7v2_radiology_level1_faults_are_reported() -> None:
    h = parse_header(load(MDM_N1))
    # no UTC offset: Europe/Paris assumed (summer time in April 2005)
    assert h.effective_time == datetime(2005, 4, 11, 10, 33, 28, tzinfo=CEST)
    assert h.set_id is None
    assert h.version_number == 1
    assert (h.patient_family, h.patient_given, h.patient_gender) == ("PatA", "DOMINIQUE", "male")
    assert h.author_role_code is None
    assert h.author_institution_id == "120456789"
    assert h.service_start == datetime(2023, 2, 27, 10, 28, 27, tzinfo=CEST)
    assert h.warnings == (
        "ClinicalDocument/setId and versionNumber go together (CDA R2): setId is missing",
        "ClinicalDocument/effectiveTime/@value '20050411103328' has no UTC offset; "
        "Europe/Paris assumed",
        "recordTarget/patientRole/id: INS 274075176079430 is a female NIR (first digit 2) but "
        "administrativeGenderCode says male",
        "recordTarget/patientRole/id: INS 274075176079430 gives birth year/month 74/07 but "
        "birthTime is 2005-01-01",
        "author/assignedAuthor/code (profession and speciality) is missing: the CI-SIS requires "
        "it for a health professional",
    )


def test_hl7v2_biology_level1_with_a_structured_template() -> None:
    h = parse_header(load(ORU_N1))
    assert h.set_id == "1.2.250.1.213.1.1.10"
    assert (h.patient_family, h.patient_given) == ("NESSI", "ISABELLE")
    assert h.format_code == FORMAT_PDF
    assert h.warnings == (
        "level 1 document (nonXMLBody) without the templateId 1.3.6.1.4.1.19376.1.2.20 "
        "(CDA à corps non structuré)",
        "templateId 1.3.6.1.4.1.19376.1.3.3 names a structured model (formatCode "
        "urn:ihe:lab:xd-lab:2008) but the body is a nonXMLBody; formatCode taken from the "
        "body's mediaType",
    )


@pytest.mark.parametrize(
    ("name", "size", "sha256_prefix", "version"),
    [
        (IMG_N1, 61736, "ce6c6ca921589099", b"%PDF-1.7"),
        (MDM_N1, 179764, "3e540bee78dc6d37", b"%PDF-1.5"),
        (ORU_N1, 326650, "72cbc4c926baf281", b"%PDF-1.5"),
    ],
)
def test_extract_level1_pdf(name: str, size: int, sha256_prefix: str, version: bytes) -> None:
    media_type, content = extract_level1_body(load(name))
    assert media_type == "application/pdf"
    assert len(content) == size
    assert content.startswith(version)
    assert b"%%EOF" in content[-16:]
    assert hashlib.sha256(content).hexdigest().startswith(sha256_prefix)


def test_extract_level1_refuses_level3() -> None:
    with pytest.raises(CdaError, match="not a level 1 document: the body is a structuredBody"):
        extract_level1_body(load(BIO_TSH))


def test_header_never_decodes_the_body(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the level 1 body was decoded")

    monkeypatch.setattr(header_module.base64, "b64decode", boom)
    assert parse_header(load(IMG_N1)).level == 1


def test_large_level1_header() -> None:
    big = load(IMG_N1).replace(b"</text>", b"QUFB" * 3_000_000 + b"\n</text>", 1)
    assert len(big) > 12_000_000
    h = parse_header(big)
    assert (h.level, h.format_code) == (1, FORMAT_PDF)


# -- bad input -------------------------------------------------------------------------------

MINIMAL = (
    b'<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3"/>'
    b"<component><structuredBody/></component></ClinicalDocument>"
)


def test_minimal_document() -> None:
    h = parse_header(MINIMAL)
    assert (h.unique_id, h.level, h.format_code) == ("1.2.3", 3, FORMAT_UNREFERENCED)
    assert h.warnings == (
        "ClinicalDocument/code is missing (required by CDA R2)",
        "ClinicalDocument/effectiveTime is missing (required by CDA R2)",
        "ClinicalDocument/confidentialityCode is missing (required by CDA R2)",
        "ClinicalDocument/recordTarget is missing (required by CDA R2)",
        "ClinicalDocument/author is missing (required by CDA R2)",
        "ClinicalDocument/custodian is missing (required by CDA R2)",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty document: no XML content"),
        (b"   \n", "empty document: no XML content"),
        (b"%PDF-1.4 not xml", "not well-formed XML: "),
        (b"<ClinicalDocument xmlns='urn:hl7-org:v3'><id root='1'/>", "not well-formed XML: "),
        (
            b"<Bundle xmlns='http://hl7.org/fhir'/>",
            "not a CDA R2 document: the root element is 'Bundle' in namespace "
            "'http://hl7.org/fhir', expected ClinicalDocument in namespace 'urn:hl7-org:v3'",
        ),
        (
            b"<ClinicalDocument><id root='1.2'/></ClinicalDocument>",
            "not a CDA R2 document: ClinicalDocument is in namespace '(none)', "
            "expected 'urn:hl7-org:v3'",
        ),
        (
            b"<xsl:stylesheet xmlns:xsl='http://www.w3.org/1999/XSL/Transform' version='1.0'/>",
            "not a CDA document: the root is an XSL stylesheet without the ANS self-presenting",
        ),
        (
            b"<ClinicalDocument xmlns='urn:hl7-org:v3'><title>x</title></ClinicalDocument>",
            "ClinicalDocument/id is missing",
        ),
        (
            b"<ClinicalDocument xmlns='urn:hl7-org:v3'><id nullFlavor='NI'/></ClinicalDocument>",
            "ClinicalDocument/id has no @root (nullFlavor NI)",
        ),
        (
            b"<ClinicalDocument xmlns='urn:hl7-org:v3'><id root='1.2'/></ClinicalDocument>",
            "ClinicalDocument/component is missing",
        ),
        (
            b"<ClinicalDocument xmlns='urn:hl7-org:v3'><id root='1.2'/><component/>"
            b"</ClinicalDocument>",
            "ClinicalDocument/component has neither nonXMLBody nor structuredBody",
        ),
        (
            MINIMAL.replace(b"<component>", b"<effectiveTime value='2021-01-22'/><component>"),
            "ClinicalDocument/effectiveTime/@value: '2021-01-22' is not an HL7 TS",
        ),
        (
            MINIMAL.replace(b"<component>", b"<effectiveTime value='20211322'/><component>"),
            "ClinicalDocument/effectiveTime/@value: '20211322' is not a valid date/time",
        ),
        (
            MINIMAL.replace(b"<component>", b"<versionNumber value='v2'/><component>"),
            "ClinicalDocument/versionNumber/@value 'v2' is not an integer",
        ),
    ],
)
def test_invalid_input(data: bytes, message: str) -> None:
    with pytest.raises(CdaError) as info:
        parse_header(data)
    assert info.value.message.startswith(message), info.value.message
    assert isinstance(info.value, InvalidInput)
    assert isinstance(info.value, InvalidInput)


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3"/><title>&xxe;</title>
<component><structuredBody/></component></ClinicalDocument>"""


def test_xxe_entity_is_not_expanded() -> None:
    root = header_module._parse_xml(XXE)
    title = root.find("{urn:hl7-org:v3}title")
    assert title is not None
    assert "root:" not in (title.xpath("string()") or "")
    assert b"root:" not in header_module.etree.tostring(root)
    with pytest.raises(CdaError) as info:
        parse_header(XXE)
    assert info.value.message.startswith("the document declares a DOCTYPE")
    assert "root:" not in info.value.message


def test_external_dtd_is_refused() -> None:
    data = b'<!DOCTYPE ClinicalDocument SYSTEM "http://127.0.0.1:9/cda.dtd">' + MINIMAL
    with pytest.raises(CdaError, match="declares a DOCTYPE"):
        parse_header(data)


def test_billion_laughs_is_refused() -> None:
    lol = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2"/><title>&b;</title>'
        b"<component><structuredBody/></component></ClinicalDocument>"
    )
    with pytest.raises(CdaError, match="DOCTYPE"):
        parse_header(lol)


# -- HL7 TS ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected", "has_tz"),
    [
        ("2021", datetime(2021, 1, 1, tzinfo=CET), False),
        ("202107", datetime(2021, 7, 1, tzinfo=CEST), False),
        ("20210122", datetime(2021, 1, 22, tzinfo=CET), False),
        ("202101221017+0100", datetime(2021, 1, 22, 10, 17, tzinfo=CET), True),
        ("20210122101700+0100", datetime(2021, 1, 22, 10, 17, tzinfo=CET), True),
        ("20210122101700-0330", datetime(2021, 1, 22, 13, 47, tzinfo=UTC), True),
        ("20210409094914.827+0100", datetime(2021, 4, 9, 9, 49, 14, 827000, tzinfo=CET), True),
        ("20210122101700+0000", datetime(2021, 1, 22, 10, 17, tzinfo=UTC), True),
    ],
)
def test_parse_hl7_ts(value: str, expected: datetime, has_tz: bool) -> None:
    parsed, tz = parse_hl7_ts(value)
    assert parsed == expected
    assert parsed.tzinfo is not None
    assert tz is has_tz


@pytest.mark.parametrize(
    "value", ["2021-01-22", "21", "2021012210170", "20210122101700+2500", "202101221.5", "x"]
)
def test_parse_hl7_ts_rejects(value: str) -> None:
    with pytest.raises(ValueError, match=r"'"):
        parse_hl7_ts(value)


def test_format_hl7_ts() -> None:
    assert format_hl7_ts(datetime(2024, 7, 1, 8, 5, 9, tzinfo=CEST)) == "20240701080509+0200"
    assert format_hl7_ts(datetime(2024, 1, 1, 8, 0)) == "20240101080000+0100"  # Paris


def test_oid_to_system() -> None:
    assert oid_to_system("2.16.840.1.113883.6.1") == "http://loinc.org"
    assert oid_to_system("2.16.840.1.113883.6.96") == "http://snomed.info/sct"
    assert oid_to_system("1.2.250.1.213.1.1.4.12") == "urn:oid:1.2.250.1.213.1.1.4.12"
