"""wrap_pdf, build_level3 and make_pdf: outputs read back through parse_header."""

from __future__ import annotations

import dataclasses
import re
import zlib
from datetime import date, datetime, timedelta, timezone

import pytest
from lxml import etree

from carnet.cda.header import (
    FORMAT_PDF,
    FORMAT_UNREFERENCED,
    CdaError,
    extract_level1_body,
    parse_header,
)
from carnet.cda.level1 import Level1Meta, wrap_pdf
from carnet.cda.level3 import Observation, Section, build_level3
from carnet.cda.pdf import make_pdf, to_core_font_text

CET = timezone(timedelta(hours=1))
H = "{urn:hl7-org:v3}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
WHEN = datetime(2024, 3, 1, 10, 0, tzinfo=CET)

META = Level1Meta(
    unique_id_root="1.2.250.1.999.1.2.3.4",
    type_code="11502-2",
    type_display="CR d'examens biologiques",
    title="Compte rendu d'examens biologiques",
    effective_time=WHEN,
    patient_ins="279035121518989",
    patient_ins_oid="1.2.250.1.213.1.4.10",
    patient_family="PAT-TROIS",
    patient_given="DOMINIQUE MARIE-LOUISE",
    patient_birth_date=date(1979, 3, 28),
    patient_gender="female",
    author_rpps="01234534765",
    author_family="CAMPARINI",
    author_given="Marcel",
    author_profession_code="10",
    author_speciality_code="SM03",
    institution_name="Laboratoire des charmes",
    institution_finess="120459876",
    service_start=datetime(2024, 3, 1, 8, 5, tzinfo=CET),
    service_end=datetime(2024, 3, 1, 9, 40, tzinfo=CET),
    facility_type_code="SA25",
    practice_setting_code="AMBULATOIRE",
)
PDF_DATE = datetime(2024, 3, 1, 10, 0, tzinfo=CET)


def sample_pdf() -> bytes:
    return make_pdf(
        "Compte rendu d’examens — hématologie",
        ["Hémoglobine : 13,5 g/dL", "", "Conclusion : numération sans particularité, ça va."],
        author="Dr Marcel CAMPARINI",
        patient="Dominique PAT-TROIS, née le 28/03/1979",
        creation_date=PDF_DATE,
    )


def check_header(data: bytes, level: int) -> None:
    h = parse_header(data)
    assert h.level == level
    assert h.unique_id == "1.2.250.1.999.1.2.3.4"
    assert h.set_id is not None and h.set_id.startswith("2.25.")
    assert h.version_number == 1
    assert (h.type_code, h.type_system) == ("11502-2", "http://loinc.org")
    assert h.type_display == "CR d'examens biologiques"
    assert h.title == "Compte rendu d'examens biologiques"
    assert h.effective_time == WHEN
    assert (h.confidentiality_code, h.language_code) == ("N", "fr-FR")
    assert (h.patient_ins, h.patient_ins_oid) == ("279035121518989", "1.2.250.1.213.1.4.10")
    assert (h.patient_family, h.patient_given) == ("PAT-TROIS", "DOMINIQUE MARIE-LOUISE")
    assert (h.patient_birth_date, h.patient_gender) == ("1979-03-28", "female")
    assert (h.author_id, h.author_id_root) == ("801234534765", "1.2.250.1.71.4.2.1")
    assert (h.author_family, h.author_given) == ("CAMPARINI", "Marcel")
    assert h.author_role_code == "G15_10/SM03"
    assert (h.author_institution, h.author_institution_id) == (
        "Laboratoire des charmes",
        "1120459876",
    )
    assert (h.legal_authenticator_id, h.legal_authenticator_family) == (
        "801234534765",
        "CAMPARINI",
    )
    assert h.service_start == datetime(2024, 3, 1, 8, 5, tzinfo=CET)
    assert h.service_end == datetime(2024, 3, 1, 9, 40, tzinfo=CET)
    assert (h.facility_type_code, h.facility_type_system) == ("SA25", "urn:oid:1.2.250.1.71.4.2.4")
    assert h.practice_setting_code == "AMBULATOIRE"
    assert h.practice_setting_system == "urn:oid:1.2.250.1.213.1.1.4.9"
    assert h.warnings == ()


# -- level 1 ---------------------------------------------------------------------------------


def test_level1_round_trip() -> None:
    pdf = sample_pdf()
    cda = wrap_pdf(pdf, META)
    check_header(cda, 1)
    h = parse_header(cda)
    assert (h.media_type, h.format_code) == ("application/pdf", FORMAT_PDF)
    assert h.template_ids == (
        "2.16.840.1.113883.2.8.2.1",
        "1.2.250.1.213.1.1.1.1",
        "1.3.6.1.4.1.19376.1.2.20",
    )
    assert extract_level1_body(cda) == ("application/pdf", pdf)


def test_level1_header_content() -> None:
    root = etree.fromstring(wrap_pdf(sample_pdf(), META))
    assert root.find(f"{H}realmCode").get("code") == "FR"
    type_id = root.find(f"{H}typeId")
    assert (type_id.get("root"), type_id.get("extension")) == (
        "2.16.840.1.113883.1.3",
        "POCD_HD000040",
    )
    assert root.find(f"{H}effectiveTime").get("value") == "20240301100000+0100"
    assert root.find(f"{H}confidentialityCode").get("codeSystem") == "2.16.840.1.113883.5.25"
    custodian = root.find(f"{H}custodian/{H}assignedCustodian/{H}representedCustodianOrganization")
    assert custodian.findtext(f"{H}name") == "Laboratoire des charmes"
    gender = root.find(f"{H}recordTarget/{H}patientRole/{H}patient/{H}administrativeGenderCode")
    assert (gender.get("code"), gender.get("codeSystem")) == ("F", "2.16.840.1.113883.5.1")
    role = root.find(f"{H}author/{H}assignedAuthor/{H}code")
    assert role.get("displayName") == "Médecin - Biologie médicale (SM)"
    facility = root.find(
        f"{H}componentOf/{H}encompassingEncounter/{H}location/{H}healthCareFacility/{H}code"
    )
    assert facility.get("displayName") == "Laboratoire de biologie médicale"
    text = root.find(f"{H}component/{H}nonXMLBody/{H}text")
    assert (text.get("mediaType"), text.get("representation")) == ("application/pdf", "B64")


def test_level1_is_deterministic_and_escapes_text() -> None:
    meta = dataclasses.replace(
        META,
        title="Résultats <urgent> & confidentiels",
        unique_id_extension="CR-2024-0042",
        set_id_root="1.2.250.1.999.1.2.3",
        version_number=2,
        patient_gender="other",
    )
    a = wrap_pdf(sample_pdf(), meta)
    assert a == wrap_pdf(sample_pdf(), meta)
    h = parse_header(a)
    assert h.title == "Résultats <urgent> & confidentiels"
    assert h.unique_id == "1.2.250.1.999.1.2.3.4^CR-2024-0042"
    assert (h.set_id, h.version_number) == ("1.2.250.1.999.1.2.3", 2)
    assert h.patient_gender == "unknown"  # CI-SIS has M, F, U only


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"author_rpps": "12345"}, "author RPPS '12345' is not 11 digits"),
        ({"institution_finess": "75"}, "FINESS '75' is not 9 characters"),
        ({"patient_ins_oid": "1.2.250.1.213.1.4.13"}, "patient INS OID '1.2.250.1.213.1.4.13'"),
        ({"unique_id_root": "not-an-oid"}, "unique_id_root 'not-an-oid' is not an OID or a UUID"),
        ({"unique_id_extension": "x" * 60}, "uniqueId '1.2.250.1.999.1.2.3.4^xxx"),
        ({"patient_gender": "F"}, "patient gender 'F' is not a FHIR gender"),
        ({"service_end": datetime(2024, 3, 1, 7, 0, tzinfo=CET)}, "service_end is before"),
    ],
)
def test_level1_meta_errors(change: dict[str, object], message: str) -> None:
    with pytest.raises(CdaError) as info:
        wrap_pdf(sample_pdf(), dataclasses.replace(META, **change))  # type: ignore[arg-type]
    assert info.value.message.startswith(message), info.value.message


def test_wrap_pdf_refuses_non_pdf() -> None:
    with pytest.raises(CdaError, match="not a PDF"):
        wrap_pdf(b"<html>hello</html>", META)


def test_author_id_accepts_idnatps() -> None:
    assert dataclasses.replace(META, author_rpps="801234534765").author_id == "801234534765"
    assert dataclasses.replace(META, institution_finess="1120459876").institution_id == (
        "1120459876"
    )


# -- level 3 ---------------------------------------------------------------------------------

BIOLOGY = [
    Section(
        title="Hématologie",
        code="18723-7",
        code_display="Hématologie",
        paragraphs=("Prélèvement veineux à jeun.",),
        observations=(
            Observation("718-7", "Hémoglobine", "13,5", "g/dL", "12,0 - 16,0", "N"),
            Observation("3016-3", "TSH", "5.2", "mU/L", "0.4 - 4.0", "H"),
            Observation("5778-6", "Couleur des urines", "jaune clair"),
        ),
    ),
    Section(title="Commentaire", paragraphs=("Contrôle de la TSH dans 3 mois.",)),
]


def test_level3_biology_round_trip() -> None:
    cda = build_level3(META, BIOLOGY)
    check_header(cda, 3)
    h = parse_header(cda)
    assert (h.media_type, h.format_code) == (None, FORMAT_UNREFERENCED)
    assert h.template_ids == ("2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1")
    with pytest.raises(CdaError, match="structuredBody"):
        extract_level1_body(cda)


def test_level3_narrative_and_entries() -> None:
    root = etree.fromstring(build_level3(META, BIOLOGY))
    sections = root.findall(f"{H}component/{H}structuredBody/{H}component/{H}section")
    assert [s.findtext(f"{H}title") for s in sections] == ["Hématologie", "Commentaire"]
    first = sections[0]
    assert first.find(f"{H}code").get("code") == "18723-7"
    text = first.find(f"{H}text")
    assert text.findtext(f"{H}paragraph") == "Prélèvement veineux à jeun."
    headers = [th.text for th in text.iter(f"{H}th")]
    assert headers == ["Examen", "Résultat", "Unité", "Valeurs de référence", "Interprétation"]
    rows = {
        tr.get("ID"): [td.text or "" for td in tr.findall(f"{H}td")]
        for tr in text.iter(f"{H}tr")
        if tr.get("ID")
    }
    assert rows == {
        "s1-o1": ["Hémoglobine", "13,5", "g/dL", "12,0 - 16,0", "N"],
        "s1-o2": ["TSH", "5.2", "mU/L", "0.4 - 4.0", "H"],
        "s1-o3": ["Couleur des urines", "jaune clair", "", "", ""],
    }
    observations = first.findall(f"{H}entry/{H}observation")
    assert [o.find(f"{H}text/{H}reference").get("value") for o in observations] == [
        "#s1-o1",
        "#s1-o2",
        "#s1-o3",
    ]
    hb = observations[0].find(f"{H}value")
    assert (hb.get(XSI_TYPE), hb.get("value"), hb.get("unit")) == ("PQ", "13.5", "g/dL")
    assert observations[1].find(f"{H}interpretationCode").get("code") == "H"
    assert observations[0].findtext(f"{H}referenceRange/{H}observationRange/{H}text") == (
        "12,0 - 16,0"
    )
    colour = observations[2].find(f"{H}value")
    assert (colour.get(XSI_TYPE), colour.text) == ("ST", "jaune clair")
    assert observations[0].find(f"{H}effectiveTime").get("value") == "20240301080500+0100"
    assert sections[1].findall(f"{H}entry") == []


def test_level3_vaccination_note_with_model_template() -> None:
    meta = dataclasses.replace(
        META, type_code="87273-9", type_display="Note de vaccination", title="Note de vaccination"
    )
    section = Section(
        title="Vaccinations",
        code="11369-6",
        code_display="Historique des vaccinations",
        table_header=("Vaccin", "Date", "Lot", "Dose"),
        table_rows=(("Comirnaty", "01/03/2024", "FN1234", "1"),),
    )
    cda = build_level3(meta, [section], template_ids=("1.2.250.1.213.1.1.1.46",))
    h = parse_header(cda)
    assert (h.type_code, h.level) == ("87273-9", 3)
    assert h.format_code == "urn:asip:ci-sis:vac-note:2021"
    root = etree.fromstring(cda)
    cells = [td.text for td in root.iter(f"{H}td")]
    assert cells == ["Comirnaty", "01/03/2024", "FN1234", "1"]


def test_level3_needs_a_section() -> None:
    with pytest.raises(CdaError, match="at least one section"):
        build_level3(META, [])


# -- PDF -------------------------------------------------------------------------------------


def content_streams(pdf: bytes) -> bytes:
    out = b""
    for match in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            out += zlib.decompress(match.group(1))
        except zlib.error:
            continue
    return out


def test_make_pdf_is_deterministic_a4_with_french_text() -> None:
    pdf = sample_pdf()
    assert pdf.startswith(b"%PDF-1.")
    assert pdf == sample_pdf()
    assert b"/MediaBox [0 0 595.28 841.89]" in pdf  # A4 in points
    assert b"/Count 1" in pdf
    assert b"/Encoding /WinAnsiEncoding" in pdf
    assert b"/CreationDate (D:20240301100000+01'00')" in pdf
    text = content_streams(pdf)
    # Windows-1252: é = E9, ç = E7, typographic apostrophe = 92, em dash = 97
    assert b"Compte rendu d\x92examens \x97 h\xe9matologie" in text
    assert b"H\xe9moglobine : 13,5 g/dL" in text
    assert b"\xe7a va." in text
    assert b"Patient : Dominique PAT-TROIS, n\xe9e le 28/03/1979" in text


def test_make_pdf_changes_with_creation_date() -> None:
    other = make_pdf(
        "Compte rendu d’examens — hématologie",
        ["Hémoglobine : 13,5 g/dL", "", "Conclusion : numération sans particularité, ça va."],
        author="Dr Marcel CAMPARINI",
        patient="Dominique PAT-TROIS, née le 28/03/1979",
        creation_date=datetime(2024, 3, 2, 10, 0, tzinfo=CET),
    )
    assert other != sample_pdf()


def test_to_core_font_text() -> None:
    assert to_core_font_text("Élève à l’école : œuf, 5 €") == "Élève à l’école : œuf, 5 €"
    assert to_core_font_text("TSH ≥ 4 µUI/mL") == "TSH >= 4 µUI/mL"
    assert to_core_font_text("10\u202f% μg") == "10 % µg"
    assert to_core_font_text("Erdős ☺") == "Erdos ?"
