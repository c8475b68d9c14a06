"""Documents the demo generates: plain PDFs, CDA level 1 (PDF inside) and CDA level 3."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from carnet.cda.level1 import Level1Meta, wrap_pdf
from carnet.cda.level3 import Observation, Section, build_level3
from carnet.cda.pdf import make_pdf
from carnet.demo.people import DemoPatient, DemoProfessional

PARIS = ZoneInfo("Europe/Paris")
CLASS_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
FORMAT_SYSTEM = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"


@dataclass(frozen=True)
class DemoDocument:
    unique_id: str
    title: str
    type_code: str
    type_display: str
    class_code: str
    content: bytes
    content_type: str
    format_code: str
    when: datetime
    author: DemoProfessional | None  # None: deposited by the patient
    labels: tuple[str, ...] = ("N",)


def _uid(*parts: str) -> str:
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return f"1.2.250.1.999.42.{int(digest[:15], 16)}"


def _meta(
    p: DemoPatient,
    a: DemoProfessional,
    uid: str,
    type_code: str,
    display: str,
    title: str,
    when: datetime,
) -> Level1Meta:
    return Level1Meta(
        unique_id_root=uid,
        type_code=type_code,
        type_display=display,
        title=title,
        effective_time=when,
        patient_ins=p.ins,
        patient_ins_oid=p.oid,
        patient_family=p.family,
        patient_given=" ".join(p.given),
        patient_birth_date=date.fromisoformat(p.birth_date),
        patient_gender=p.gender,
        author_rpps=a.rpps,
        author_family=a.family,
        author_given=a.given,
        author_profession_code=a.profession,
        author_speciality_code=a.specialty,
        institution_name=a.structure_name,
        institution_finess=a.structure,
        service_start=when - timedelta(minutes=30),
        service_end=when,
    )


def documents_for(
    p: DemoPatient, pros: dict[str, DemoProfessional], index: int
) -> list[DemoDocument]:
    gp, cardio, bio, pharma, nurse = (
        pros[k] for k in ("10/SM54", "10/SM04", "10/SM05", "21", "60")
    )
    base = datetime(2026, 3, 2, 9, 30, tzinfo=PARIS) + timedelta(days=11 * index)
    docs: list[DemoDocument] = []

    when = base
    uid = _uid(p.ins, "consultation")
    pdf = make_pdf(
        "Compte rendu de consultation",
        [
            f"Patient : {p.display}, né(e) le {p.birth_date}.",
            "Motif : bilan annuel. Tension artérielle 128/79 mmHg, poids stable.",
            "Examen clinique sans particularité. Poursuite du traitement habituel.",
            "Prochaine consultation dans six mois.",
        ],
        author=f"Dr {gp.display}, {gp.label}",
        patient=p.display,
        creation_date=when,
    )
    cda = wrap_pdf(
        pdf, _meta(p, gp, uid, "11488-4", "Consultation note", "Compte rendu de consultation", when)
    )
    docs.append(
        DemoDocument(
            uid,
            "Compte rendu de consultation",
            "11488-4",
            "Consultation note",
            "10",
            cda,
            "application/xml",
            "urn:ihe:iti:xds-sd:pdf:2008",
            when,
            gp,
        )
    )

    when = base + timedelta(days=2, hours=2)
    uid = _uid(p.ins, "biologie")
    obs = (
        Observation("2345-7", "Glucose [Masse/Volume] Sérum", "0.94", "g/L", "0,70 - 1,10", "N"),
        Observation("4548-4", "Hémoglobine A1c", "5.6", "%", "4,0 - 6,0", "N"),
        Observation("2093-3", "Cholestérol total", "2.31", "g/L", "< 2,00", "H"),
    )
    cda3 = build_level3(
        _meta(p, bio, uid, "11502-2", "Laboratory report", "Compte rendu de biologie", when),
        [Section("Biochimie", "18719-5", "Chemistry studies", observations=obs)],
    )
    docs.append(
        DemoDocument(
            uid,
            "Compte rendu de biologie",
            "11502-2",
            "Laboratory report",
            "10",
            cda3,
            "application/xml",
            "urn:asipSante:modelesHorsProfils:2011",
            when,
            bio,
        )
    )

    when = base + timedelta(days=5)
    uid = _uid(p.ins, "vaccination")
    cda3 = build_level3(
        _meta(p, nurse, uid, "87273-9", "Immunization note", "Note de vaccination", when),
        [
            Section(
                "Vaccinations",
                "11369-6",
                "History of Immunization",
                table_header=("Vaccin", "Date", "Lot", "Dose"),
                table_rows=(
                    ("Grippe saisonnière (Vaxigrip Tetra)", when.date().isoformat(), "X4F21", "1"),
                ),
            )
        ],
    )
    docs.append(
        DemoDocument(
            uid,
            "Note de vaccination",
            "87273-9",
            "Immunization note",
            "10",
            cda3,
            "application/xml",
            "urn:asipSante:modelesHorsProfils:2011",
            when,
            nurse,
        )
    )

    when = base + timedelta(days=8)
    uid = _uid(p.ins, "imagerie")
    pdf = make_pdf(
        "Compte rendu d'échocardiographie",
        [
            "Indication : souffle systolique.",
            "Ventricule gauche non dilaté, FEVG 62 %.",
            "Pas de valvulopathie significative.",
            "Conclusion : examen normal.",
        ],
        author=f"Dr {cardio.display}, {cardio.label}",
        patient=p.display,
        creation_date=when,
    )
    cda = wrap_pdf(
        pdf,
        _meta(
            p, cardio, uid, "18748-4", "Diagnostic imaging study", "Compte rendu d'imagerie", when
        ),
    )
    docs.append(
        DemoDocument(
            uid,
            "Compte rendu d'imagerie",
            "18748-4",
            "Diagnostic imaging study",
            "31",
            cda,
            "application/xml",
            "urn:ihe:iti:xds-sd:pdf:2008",
            when,
            cardio,
        )
    )

    when = base + timedelta(days=9)
    uid = _uid(p.ins, "dispensation")
    pdf = make_pdf(
        "Dispensation",
        ["Atorvastatine 10 mg, 1 boîte de 30 comprimés."],
        author=f"{pharma.display}, {pharma.label}",
        patient=p.display,
        creation_date=when,
    )
    docs.append(
        DemoDocument(
            uid,
            "Dispensation de médicaments",
            "60593-1",
            "Medication dispensed.extended Document",
            "43",
            pdf,
            "application/pdf",
            "urn:ihe:iti:xds:2017:mimeTypeSufficient",
            when,
            pharma,
        )
    )

    when = base + timedelta(days=10)
    uid = _uid(p.ins, "patient")
    pdf = make_pdf(
        "Mes directives anticipées",
        [
            "Je souhaite que ma personne de confiance soit consultée.",
            "Document rédigé et déposé par moi-même.",
        ],
        author=p.display,
        patient=p.display,
        creation_date=when,
    )
    docs.append(
        DemoDocument(
            uid,
            "Directives anticipées",
            "75320-2",
            "Advance directive",
            "90",
            pdf,
            "application/pdf",
            "urn:ihe:iti:xds:2017:mimeTypeSufficient",
            when,
            None,
        )
    )
    return docs


def bundle_for(p: DemoPatient, d: DemoDocument) -> dict[str, Any]:
    """An ITI-65 transaction bundle carrying one demo document, as an EHR would send it."""
    subject = {"reference": f"Patient?identifier=urn:oid:{p.oid}|{p.ins}"}
    when = d.when.isoformat()
    if d.author is not None:
        author_res: dict[str, Any] = {
            "resourceType": "Practitioner",
            "id": "author",
            "identifier": [{"system": RPPS_SYSTEM, "value": d.author.rpps}],
            "name": [{"family": d.author.family, "given": [d.author.given]}],
        }
        source_id = f"urn:oid:1.2.250.1.71.4.2.2.1{d.author.structure}"
    else:
        author_res = {
            "resourceType": "Patient",
            "id": "author",
            "identifier": [{"system": f"urn:oid:{p.oid}", "value": p.ins}],
        }
        source_id = "urn:oid:1.2.250.1.999.42.0"
    doc_url, bin_url = f"urn:uuid:{d.unique_id}-doc", f"urn:uuid:{d.unique_id}-bin"
    docref = {
        "resourceType": "DocumentReference",
        "contained": [
            author_res,
            {
                "resourceType": "Patient",
                "id": "src",
                "identifier": [{"system": f"urn:oid:{p.oid}", "value": p.ins}],
            },
        ],
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{d.unique_id}"},
        "status": "current",
        "type": {
            "coding": [
                {"system": "http://loinc.org", "code": d.type_code, "display": d.type_display}
            ]
        },
        "category": [{"coding": [{"system": CLASS_SYSTEM, "code": d.class_code}]}],
        "subject": subject,
        "date": when,
        "author": [{"reference": "#author"}],
        "securityLabel": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                        "code": c,
                    }
                ]
            }
            for c in d.labels
        ],
        "content": [
            {
                "attachment": {
                    "contentType": d.content_type,
                    "language": "fr-FR",
                    "url": bin_url,
                    "title": d.title,
                    "creation": when,
                },
                "format": {"system": FORMAT_SYSTEM, "code": d.format_code},
            }
        ],
        "context": {
            "period": {"start": when},
            "sourcePatientInfo": {"reference": "#src"},
            "facilityType": {
                "coding": [
                    {
                        "system": "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite",
                        "code": "SA07",
                    }
                ]
            },
            "practiceSetting": {
                "coding": [
                    {
                        "system": "https://mos.esante.gouv.fr/NOS/TRE_A00-ProducteurDocNonPS/FHIR/TRE-A00-ProducteurDocNonPS",
                        "code": "AMBULATOIRE",
                    }
                ]
            },
        },
    }
    submission = {
        "resourceType": "List",
        "identifier": [
            {"use": "official", "system": "urn:ietf:rfc:3986", "value": f"urn:oid:{d.unique_id}.1"}
        ],
        "extension": [
            {
                "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId",
                "valueIdentifier": {"system": "urn:ietf:rfc:3986", "value": source_id},
            }
        ],
        "status": "current",
        "mode": "working",
        "code": {
            "coding": [
                {
                    "system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes",
                    "code": "submissionset",
                }
            ]
        },
        "subject": subject,
        "date": when,
        "entry": [{"item": {"reference": doc_url}}],
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{d.unique_id}-set",
                "resource": submission,
                "request": {"method": "POST", "url": "List"},
            },
            {
                "fullUrl": doc_url,
                "resource": docref,
                "request": {"method": "POST", "url": "DocumentReference"},
            },
            {
                "fullUrl": bin_url,
                "resource": {
                    "resourceType": "Binary",
                    "contentType": d.content_type,
                    "data": base64.b64encode(d.content).decode(),
                },
                "request": {"method": "POST", "url": "Binary"},
            },
        ],
    }
