"""A national-shaped population for measuring (``carnet demo --patients N --documents M``):
patients with valid NIR keys and plausible French identities, professionals of every profession
of the access matrix with valid RPPS keys, structures with valid FINESS, authorisations,
blocks, masked documents, emergency-consent choices, a few closed records, and documents of
varied types (CDA level 3, CDA level 1 wrapping a PDF, plain PDF), sizes and dates.

Pure and deterministic from ``seed``: the same seed makes the same people and documents (the
core gives the records their ids and keys). Document content comes from templates made once
per kind and size with placeholder identities, completed per document by byte substitution
(the CDA header's metadata is read once per template, as the publish path reads it, then
carried over with the document's own values): that is what makes millions of documents cheap.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from carnet.cda.header import format_hl7_ts
from carnet.cda.level1 import Level1Meta, wrap_pdf
from carnet.cda.level3 import Observation, Section, build_level3
from carnet.cda.metadata import complete_from_cda
from carnet.cda.pdf import make_pdf
from carnet.demo.people import DemoProfessional
from carnet.domain.actors import RPPS_OID, RPPS_SYSTEM, Actor, ActorKind
from carnet.domain.documents import MASKED, Author, DocumentEntry
from carnet.domain.imports import ImportedDocument, ImportedRecord
from carnet.domain.ins import OID_NIR_TEST, Ins, make_nir
from carnet.domain.professionals import make_finess, make_rpps
from carnet.domain.records import EmergencyConsents, Identity

PARIS = ZoneInfo("Europe/Paris")
CSV_HEADER = ("kind", "id", "oid", "profession", "specialty", "structure")
CLASS_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
FORMAT_SYSTEM = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"

FAMILIES = [
    "MARTIN",
    "BERNARD",
    "THOMAS",
    "PETIT",
    "ROBERT",
    "RICHARD",
    "DURAND",
    "DUBOIS",
    "MOREAU",
    "LAURENT",
    "SIMON",
    "MICHEL",
    "LEFEBVRE",
    "LEROY",
    "ROUX",
    "DAVID",
    "BERTRAND",
    "MOREL",
    "FOURNIER",
    "GIRARD",
    "BONNET",
    "DUPONT",
    "LAMBERT",
    "FONTAINE",
    "ROUSSEAU",
    "VINCENT",
    "MULLER",
    "LEFEVRE",
    "FAURE",
    "ANDRE",
    "MERCIER",
    "BLANC",
    "GUERIN",
    "BOYER",
    "GARNIER",
    "CHEVALIER",
    "FRANCOIS",
    "LEGRAND",
    "GAUTHIER",
    "GARCIA",
    "PERRIN",
    "ROBIN",
    "CLEMENT",
    "MORIN",
    "NICOLAS",
    "HENRY",
    "ROUSSEL",
    "MATHIEU",
    "GAUTIER",
    "MASSON",
    "MARCHAND",
    "DUVAL",
    "DENIS",
    "DUMONT",
    "MARIE",
    "LEMAIRE",
    "NOEL",
    "MEYER",
    "DUFOUR",
    "MEUNIER",
    "BRUN",
    "BLANCHARD",
    "GIRAUD",
    "JOLY",
    "RIVIERE",
    "LUCAS",
    "BRUNET",
    "GAILLARD",
    "BARBIER",
    "ARNAUD",
    "MARTINEZ",
    "GERARD",
    "ROCHE",
    "RENARD",
    "SCHMITT",
    "ROY",
    "LEROUX",
    "COLIN",
    "VIDAL",
    "CARON",
    "PICARD",
    "ROGER",
    "FABRE",
    "AUBERT",
    "LEMOINE",
    "RENAUD",
    "DUMAS",
    "LACROIX",
    "OLIVIER",
    "PHILIPPE",
    "BOURGEOIS",
    "PIERRE",
    "BENOIT",
    "REY",
    "LECLERC",
    "PAYET",
    "ROLLAND",
    "LECLERCQ",
    "GUILLAUME",
]
GIVEN_F = [
    "Marie",
    "Jeanne",
    "Françoise",
    "Monique",
    "Catherine",
    "Nathalie",
    "Isabelle",
    "Sylvie",
    "Anne",
    "Martine",
    "Christine",
    "Sophie",
    "Sandrine",
    "Céline",
    "Julie",
    "Camille",
    "Léa",
    "Manon",
    "Chloé",
    "Emma",
    "Inès",
    "Jade",
    "Louise",
    "Alice",
    "Lina",
    "Zoé",
    "Élodie",
    "Aurélie",
    "Hélène",
    "Valérie",
    "Brigitte",
    "Danielle",
    "Odile",
    "Agnès",
    "Margaux",
    "Anaïs",
]
GIVEN_M = [
    "Jean",
    "Pierre",
    "Michel",
    "André",
    "Philippe",
    "Alain",
    "Jacques",
    "Bernard",
    "Patrick",
    "Christophe",
    "Nicolas",
    "Stéphane",
    "Laurent",
    "Julien",
    "Thomas",
    "Lucas",
    "Hugo",
    "Louis",
    "Gabriel",
    "Arthur",
    "Jules",
    "Léo",
    "Raphaël",
    "Adam",
    "Nathan",
    "Théo",
    "Maxime",
    "Antoine",
    "François",
    "Olivier",
    "Sébastien",
    "Guillaume",
    "Rémi",
    "Benoît",
    "Cédric",
]
# INSEE department codes (Corsica: 2A, 2B), overseas 971-976 kept out: their NIR layout differs
DEPARTMENTS = [f"{d:02d}" for d in range(1, 96) if d != 20] + ["2A", "2B"]

# every profession of the access matrix (TRE_G15), médecins with several specialities
PROFESSIONS: tuple[tuple[str, str | None, str, int], ...] = (
    # code, speciality, label, weight
    ("10", "SM54", "médecin généraliste", 30),
    ("10", "SM26", "médecin généraliste", 8),
    ("10", "SM04", "cardiologue", 3),
    ("10", "SM03", "biologiste", 3),
    ("10", "SM40", "pédiatre", 3),
    ("10", "SM44", "radiologue", 3),
    ("21", None, "pharmacien", 10),
    ("26", None, "audioprothésiste", 1),
    ("28", None, "opticien-lunetier", 1),
    ("40", None, "chirurgien-dentiste", 5),
    ("50", None, "sage-femme", 3),
    ("60", None, "infirmier", 15),
    ("69", None, "infirmier psychiatrique", 1),
    ("70", None, "masseur-kinésithérapeute", 6),
    ("80", None, "pédicure-podologue", 1),
    ("81", None, "orthoprothésiste", 1),
    ("91", None, "orthophoniste", 2),
    ("92", None, "orthoptiste", 1),
    ("94", None, "ergothérapeute", 1),
    ("95", None, "psychomotricien", 1),
    ("96", None, "manipulateur ERM", 1),
    ("98", None, "diététicien", 1),
)
CDA_SPECIALTIES = ("SM54", "SM26", "SM40", "SM44", "SM03")  # those cda/level1 can name


Professional = DemoProfessional  # the demo cast's kind, generated


def professionals(seed: int, count: int) -> list[Professional]:
    """``count`` professionals (at least one of each profession), in structures of ~5."""
    rng = random.Random(f"pros/{seed}")
    weights = [w for *_, w in PROFESSIONS]
    out = []
    for i in range(count):
        code, spec, label, _ = (
            PROFESSIONS[i] if i < len(PROFESSIONS) else rng.choices(PROFESSIONS, weights)[0]
        )
        rpps = "8" + make_rpps(f"1{seed % 100:02d}{i:07d}")
        finess = make_finess(f"{rng.choice(DEPARTMENTS[:94]):0>2}{seed % 10}{i // 5:05d}")
        family = rng.choice(FAMILIES)
        given = rng.choice(GIVEN_F if rng.random() < 0.5 else GIVEN_M)
        name = f"Cabinet {rng.choice(FAMILIES).title()}" if i % 3 else "Centre hospitalier"
        out.append(Professional(rpps, family, given, code, spec, label, finess, name))
    return out


# -- document templates ---------------------------------------------------------------------------
_T0 = datetime(2001, 2, 3, 4, 5, 6, tzinfo=PARIS)
_PH_INS = make_nir("1999999999999")
_PH_UID = "1.2.250.1.999.77.424242424242"
_PH_FAMILY, _PH_GIVEN = "XXFAMILYXX", "XXGIVENXX"
_PH_RPPS = "8" + make_rpps("1999999999")
_PH_AFAMILY, _PH_AGIVEN = "XXAUTHFAMXX", "XXAUTHGIVXX"
_PH_FINESS = make_finess("99999999")
_PH_ORG = "XXSTRUCTUREXX"
_PH_NUMBER = "999999999999"  # plain PDFs: the document's number, same length (xref stays right)


_UTF16_DIGITS = str.maketrans({d: f"{ord(d):04x}" for d in "0123456789"})


def _utf16_hex(digits: str) -> bytes:
    """How a PDF's /Title writes ``digits`` (UTF-16BE, hex)."""
    return digits.translate(_UTF16_DIGITS).encode()


@dataclass(frozen=True, slots=True)
class Template:
    kind: str  # cda3, cda1, pdf
    data: bytes
    entry: DocumentEntry  # as the publish path completes it from the CDA (or as a client sends)
    specialty: str | None  # CDA: the author's speciality named in it
    gender: str
    # CDA: the data cut at its placeholders; slots[i] is the placeholder between parts[i] and
    # parts[i + 1], an index into the values of :func:`_values` (one join per document)
    parts: tuple[bytes, ...] = ()
    slots: tuple[int, ...] = ()

    def fill(self, values: tuple[bytes, ...]) -> bytes:
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            out.append(values[slot])
            out.append(part)
        return b"".join(out)


def _placeholders() -> tuple[str, ...]:
    """What a CDA template says in place of the document's own values, in :func:`_values`'s
    order."""
    return (
        _PH_UID,
        _PH_INS,
        _PH_FAMILY,
        _PH_GIVEN,
        _PH_RPPS,
        _PH_AFAMILY,
        _PH_AGIVEN,
        _PH_FINESS,
        _PH_ORG,
        format_hl7_ts(_T0),
        format_hl7_ts(_T0 - timedelta(minutes=30)),
        "19000101",
    )


def _cut(data: bytes) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
    marks = [m.encode() for m in _placeholders()]
    found = re.compile(b"|".join(re.escape(m) for m in sorted(marks, key=len, reverse=True)))
    parts, slots, pos = [], [], 0
    for m in found.finditer(data):
        parts.append(data[pos : m.start()])
        slots.append(marks.index(m.group()))
        pos = m.end()
    parts.append(data[pos:])
    return tuple(parts), tuple(slots)


def _meta(type_code: str, display: str, title: str, gender: str, specialty: str) -> Level1Meta:
    return Level1Meta(
        unique_id_root=_PH_UID,
        set_id_root=_PH_UID + ".0",
        type_code=type_code,
        type_display=display,
        title=title,
        effective_time=_T0,
        patient_ins=_PH_INS,
        patient_ins_oid=OID_NIR_TEST,
        patient_family=_PH_FAMILY,
        patient_given=_PH_GIVEN,
        patient_birth_date=date(1900, 1, 1),
        patient_gender=gender,
        author_rpps=_PH_RPPS,
        author_family=_PH_AFAMILY,
        author_given=_PH_AGIVEN,
        author_profession_code="10",
        author_speciality_code=specialty,
        institution_name=_PH_ORG,
        institution_finess=_PH_FINESS,
        service_start=_T0 - timedelta(minutes=30),
        service_end=_T0,
    )


_BIO = (
    ("718-7", "Hémoglobine", "g/dL", "12,0 - 16,0", (11.0, 17.0)),
    ("6690-2", "Leucocytes", "10*9/L", "4,0 - 10,0", (3.0, 12.0)),
    ("777-3", "Plaquettes", "10*9/L", "150 - 400", (120.0, 450.0)),
    ("2345-7", "Glucose", "mmol/L", "3,9 - 5,8", (3.5, 8.0)),
    ("2160-0", "Créatinine", "µmol/L", "45 - 90", (40.0, 130.0)),
    ("3016-3", "TSH", "mUI/L", "0,40 - 4,00", (0.2, 6.0)),
    ("2093-3", "Cholestérol total", "mmol/L", "< 5,2", (3.5, 7.5)),
    ("1742-6", "ALAT", "UI/L", "< 35", (10.0, 80.0)),
)


def _bio_sections(rows: int, rng: random.Random) -> list[Section]:
    obs = []
    for i in range(rows):
        code, label, unit, ref, (lo, hi) = _BIO[i % len(_BIO)]
        value = f"{rng.uniform(lo, hi):.1f}".replace(".", ",")
        obs.append(Observation(code, label, value, unit, ref, "N"))
    return [
        Section("Résultats", "18719-5", "Chimie", observations=tuple(obs)),
        Section("Commentaire", paragraphs=("Résultats validés par le biologiste.",)),
    ]


_LINES = (
    "Motif : suivi de la pathologie chronique, renouvellement du traitement.",
    "Examen clinique : état général conservé, tension artérielle 128/76 mmHg, pouls régulier.",
    "Conclusion : évolution favorable, poursuite du traitement en cours.",
    "Conduite à tenir : bilan biologique de contrôle dans trois mois, revoir en consultation.",
    "Antécédents : hypertension artérielle traitée, appendicectomie dans l'enfance.",
    "Traitement : amlodipine 5 mg un comprimé le matin, paracétamol si douleurs.",
)


def _lines(count: int) -> list[str]:
    return [_LINES[i % len(_LINES)] for i in range(count)]


# plain PDFs: (type, display, class, title, who may write it: professions)
PDF_TYPES = (
    ("11488-4", "CR de consultation", "10", "Compte rendu de consultation"),
    ("57833-6", "Prescription de produits de santé", "42", "Ordonnance"),
    ("57832-8", "Prescription de soins", "42", "Prescription de soins infirmiers"),
    ("34749-2", "CR de consultation pré-anesthésique", "10", "Consultation d'anesthésie"),
    ("18748-4", "CR d'imagerie médicale", "31", "Compte rendu d'imagerie"),
    ("60591-5", "Synthèse médicale", "11", "Synthèse médicale"),
)
PATIENT_TYPE = ("51855-5", "Document déposé par le patient", "90", "Mes mesures de tension")


def _pdf_entry(type_code: str, display: str, class_code: str, title: str) -> DocumentEntry:
    return DocumentEntry(
        class_code=class_code,
        type_system="http://loinc.org",
        type_code=type_code,
        type_display=display,
        confidentiality=["N"],
        format_system=FORMAT_SYSTEM,
        format_code="urn:ihe:iti:xds-sd:pdf:2008",
        content_type="application/pdf",
        language="fr-FR",
        facility_system="urn:oid:1.2.250.1.71.4.2.4",
        facility_code="SA07",
        setting_system="urn:oid:1.2.250.1.213.1.1.4.9",
        setting_code="AMBULATOIRE",
        title=title,
    )


def _plain_pdf(title: str, lines: int) -> bytes:
    data = make_pdf(
        f"{title} n° {_PH_NUMBER}",
        _lines(lines),
        author="carnet demo",
        patient="",
        creation_date=_T0,
    )
    if data.count(_utf16_hex(_PH_NUMBER)) != 1:
        raise AssertionError("the PDF template lost its placeholder")
    return data


def make_templates(seed: int = 0) -> list[Template]:
    """The document templates: sizes from ~2 KB to ~40 KB."""
    rng = random.Random(f"templates/{seed}")
    out: list[Template] = []
    for gender in ("female", "male"):
        for rows in (2, 2, 3, 8):  # CDA level 3 biology, ~7 KB to ~12 KB (the small most)
            meta = _meta("11502-2", "CR d'examens biologiques", "Bilan biologique", gender, "SM03")
            data = build_level3(meta, _bio_sections(rows, rng))
            out.append(_cda_template("cda3", data, "SM03", gender))
        for spec in ("SM54", "SM26", "SM40", "SM44"):  # CDA level 1 (PDF inside)
            lines = rng.choice((3, 4, 8))
            meta = _meta(
                "11488-4", "CR de consultation", "Compte rendu de consultation", gender, spec
            )
            pdf = make_pdf(
                "Compte rendu de consultation",
                _lines(lines),
                author="",
                patient="",
                creation_date=_T0,
            )
            out.append(_cda_template("cda1", wrap_pdf(pdf, meta), spec, gender))
    for type_code, display, class_code, title in (*PDF_TYPES, PATIENT_TYPE):
        for lines in (3, 3, 3, 10, 40):  # ~1.7 KB to ~3 KB, the small most
            data = _plain_pdf(title, lines)
            entry = _pdf_entry(type_code, display, class_code, title)
            out.append(Template("pdf", data, entry, None, ""))
    return out


def _cda_template(kind: str, data: bytes, specialty: str, gender: str) -> Template:
    entry = DocumentEntry(
        class_code="10", patient_system=f"urn:oid:{OID_NIR_TEST}", patient_value=_PH_INS
    )
    complete_from_cda(entry, data, "text/xml")
    entry.content_type = entry.content_type or "text/xml"
    parts, slots = _cut(data)
    return Template(kind, data, entry, specialty, gender, parts, slots)


# -- people ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Patient:
    ins: str
    family: str
    given: str
    gender: str
    birth_date: date
    birth_place: str
    email: str | None

    oid = OID_NIR_TEST


def patient(seed: int, index: int, rng: random.Random) -> Patient:
    """The ``index``-th patient: the NIR's department, commune and order number encode the
    index (and the seed), so that no two patients of a population share an INS."""
    n = (seed % 97) * 10_000_000 + index
    order = n % 999 + 1
    commune = (n // 999) % 990 + 1
    dept = DEPARTMENTS[(n // (999 * 990)) % len(DEPARTMENTS)]
    female = rng.random() < 0.52
    birth = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 92 * 365))
    sex = "2" if female else "1"
    first13 = f"{sex}{birth.year % 100:02d}{birth.month:02d}{dept}{commune:03d}{order:03d}"
    family = rng.choice(FAMILIES)
    given = rng.choice(GIVEN_F if female else GIVEN_M)
    if rng.random() < 0.3:
        given += " " + rng.choice(GIVEN_F if female else GIVEN_M)
    email = f"patient{index}.{seed}@example.org" if rng.random() < 0.6 else None
    place = f"{'20' if dept in ('2A', '2B') else dept}{commune:03d}"
    return Patient(
        make_nir(first13), family, given, "female" if female else "male", birth, place, email
    )


# -- the population -------------------------------------------------------------------------------
class Population:
    """``patients`` patients sharing ``documents`` documents, deterministic from ``seed``."""

    def __init__(
        self, patients: int, documents: int, seed: int = 1, professionals_count: int | None = None
    ) -> None:
        if patients < 1 or documents < 0:
            raise ValueError("a population has at least one patient and no negative documents")
        self.patients = patients
        self.documents = documents
        self.seed = seed
        count = professionals_count or max(len(PROFESSIONS) * 2, patients // 40)
        self.professionals = professionals(seed, count)
        self.templates = make_templates(seed)
        self._cda = {
            (t.kind, t.specialty, t.gender): [
                x
                for x in self.templates
                if (x.kind, x.specialty, x.gender) == (t.kind, t.specialty, t.gender)
            ]
            for t in self.templates
            if t.kind != "pdf"
        }
        self._pdf = [t for t in self.templates if t.kind == "pdf" and t.entry.class_code != "90"]
        self._patient_pdf = [t for t in self.templates if t.entry.class_code == "90"]
        by_role: dict[str, list[Professional]] = {}
        for p in self.professionals:
            by_role.setdefault(p.specialty or p.profession, []).append(p)
        self._gps = by_role["SM54"] + by_role.get("SM26", [])
        self._cda_authors = {
            "cda1": [p for p in self.professionals if p.specialty in CDA_SPECIALTIES[:4]],
            "cda3": [p for p in self.professionals if p.specialty == "SM03"],
        }
        self._writers = [p for p in self.professionals if p.profession in ("10", "21", "60", "50")]

    def counts(self) -> list[int]:
        """Documents per patient: the total, spread unevenly (pairs of patients trade some)."""
        base, extra = divmod(self.documents, self.patients)
        counts = [base + (1 if i < extra else 0) for i in range(self.patients)]
        rng = random.Random(f"counts/{self.seed}")
        for i in range(0, self.patients - 1, 2):
            shift = rng.randint(0, counts[i + 1] * 3 // 4) if counts[i + 1] else 0
            counts[i] += shift
            counts[i + 1] -= shift
        return counts

    def batches(self, size: int = 500) -> Iterator[tuple[list[Patient], list[ImportedRecord]]]:
        counts = self.counts()
        for start in range(0, self.patients, size):
            yield self.batch(start, size, counts)

    def people(self, start: int, size: int) -> list[Patient]:
        """The patients of the batch that starts at ``start`` (as :meth:`batch` makes them)."""
        return [
            patient(self.seed, i, random.Random(self.seed * 1_000_003 + i))
            for i in range(start, min(start + size, self.patients))
        ]

    def batch(
        self, start: int, size: int, counts: list[int]
    ) -> tuple[list[Patient], list[ImportedRecord]]:
        people: list[Patient] = []
        records: list[ImportedRecord] = []
        for i in range(start, min(start + size, self.patients)):
            rng = random.Random(self.seed * 1_000_003 + i)
            p = patient(self.seed, i, rng)
            people.append(p)
            records.append(self.record(p, i, counts[i], rng))
        return people, records

    def record(self, p: Patient, index: int, docs: int, rng: random.Random) -> ImportedRecord:
        gp = self._gps[rng.randrange(len(self._gps))]
        ins = Ins(p.oid, p.ins)
        identity = Identity(
            ins, "VALI", p.family, p.given, p.birth_date.isoformat(), p.gender, p.birth_place
        )
        pros = self.professionals
        authorised = [pros[rng.randrange(len(pros))].rpps for _ in range(rng.randint(0, 3))]
        blocked = []
        if rng.random() < 0.05:
            blocked.append(pros[rng.randrange(len(pros))].rpps)
        blocked = [b for b in blocked if b != gp.rpps]
        emergency = EmergencyConsents(
            centre15=rng.random() >= 0.03,
            bris_de_glace=rng.random() >= 0.05,
            masked=rng.random() < 0.1,
        )
        opened = datetime(2011, 1, 1) + timedelta(seconds=rng.randrange(0, 14 * 365 * 86400))
        documents = []
        for n in range(docs):
            documents.append(self._document(p, index, n, gp, opened, rng))
        feeders = {d.author.rpps for d in documents if d.author.rpps}
        authorised += [f for f in sorted(feeders) if f not in blocked and rng.random() < 0.9]
        return ImportedRecord(
            identity=identity,
            opened_by=gp.actor(),
            opened_at=opened,
            treating_physician=f"rpps:{gp.rpps}" if rng.random() < 0.85 else None,
            emergency=emergency,
            email=p.email,
            authorised=authorised,
            blocked=blocked,
            closed=rng.random() < 0.005,
            documents=documents,
        )

    def _document(
        self, p: Patient, index: int, n: int, gp: Professional, opened: datetime, rng: random.Random
    ) -> ImportedDocument:
        span = max(1, int((datetime(2026, 1, 1) - opened).total_seconds()))
        when = (opened + timedelta(seconds=rng.randrange(span))).replace(tzinfo=UTC)
        uid = f"1.2.250.1.999.43.{self.seed}.{index}.{n}"
        roll = rng.random()
        if roll < 0.03:  # deposited by the patient
            t = self._patient_pdf[rng.randrange(len(self._patient_pdf))]
            author = Actor(
                kind=ActorKind.PATIENT,
                subject=f"ins:{p.ins}",
                issuer="demo",
                ins=p.ins,
                ins_oid=p.oid,
            )
            return self._pdf_document(t, p, uid, when, author, None, index, n)
        if roll < 0.19:  # CDA (a sixth of the documents), by a médecin
            kind = "cda3" if roll < 0.11 else "cda1"
            pool = self._cda_authors[kind]
            pro = gp if kind == "cda1" and rng.random() < 0.6 else pool[rng.randrange(len(pool))]
            choices = self._cda[(kind, pro.specialty, p.gender)]
            t = choices[rng.randrange(len(choices))]
            return self._cda_document(t, p, uid, when, pro, rng)
        t = self._pdf[rng.randrange(len(self._pdf))]
        pro = self._writers[rng.randrange(len(self._writers))] if rng.random() < 0.5 else gp
        return self._pdf_document(t, p, uid, when, pro.actor(), pro, index, n)

    def _cda_document(
        self,
        t: Template,
        p: Patient,
        uid: str,
        when: datetime,
        pro: Professional,
        rng: random.Random,
    ) -> ImportedDocument:
        local = when.astimezone(PARIS)
        subs = (
            (_PH_UID, uid),
            (_PH_INS, p.ins),
            (_PH_FAMILY, p.family),
            (_PH_GIVEN, p.given),
            (_PH_RPPS, pro.rpps),
            (_PH_AFAMILY, pro.family),
            (_PH_AGIVEN, pro.given),
            (_PH_FINESS, pro.structure),
            (_PH_ORG, pro.structure_name),
            (format_hl7_ts(_T0), format_hl7_ts(local)),
            (
                format_hl7_ts(_T0 - timedelta(minutes=30)),
                format_hl7_ts(local - timedelta(minutes=30)),
            ),
            ("19000101", p.birth_date.strftime("%Y%m%d")),
        )
        data = t.fill(tuple(new.encode() for _, new in subs))
        entry = _carry(t.entry, subs, when)
        if rng.random() < 0.04:
            entry.confidentiality = [*entry.confidentiality, MASKED]
        return ImportedDocument(entry, data, pro.actor())

    def _pdf_document(
        self,
        t: Template,
        p: Patient,
        uid: str,
        when: datetime,
        author: Actor,
        pro: Professional | None,
        index: int,
        n: int,
    ) -> ImportedDocument:
        number = f"{(index * 1000 + n) % 10**12:012d}"
        data = t.data.replace(_utf16_hex(_PH_NUMBER), _utf16_hex(number))
        naive = when.replace(tzinfo=None)
        entry = replace(
            t.entry,
            unique_id=uid,
            confidentiality=list(t.entry.confidentiality),
            creation_time=naive,
            service_start=naive - timedelta(minutes=20),
            service_stop=naive,
            date=naive,
            patient_system=f"urn:oid:{p.oid}",
            patient_value=p.ins,
            source_patient_id=f"urn:oid:{p.oid}|{p.ins}",
            authors=(
                [Author(RPPS_SYSTEM, pro.rpps, pro.family, pro.given)] if pro is not None else []
            ),
            author_has_role=pro is None,
            size=len(data),
        )
        if pro is not None and (index + n) % 29 == 0:
            entry.confidentiality.append(MASKED)
        return ImportedDocument(entry, data, author)


def _carry(
    template: DocumentEntry, subs: tuple[tuple[str, str], ...], when: datetime
) -> DocumentEntry:
    """The template's entry with the document's own values."""
    shift = when.replace(tzinfo=None) - _T0.astimezone(UTC).replace(tzinfo=None)

    def text(value: str | None) -> str | None:
        if value is None:
            return None
        for old, new in subs:
            value = value.replace(old, new)
        return value

    def moved(value: datetime | None) -> datetime | None:
        return value + shift if value is not None else None

    return replace(
        template,
        unique_id=text(template.unique_id),
        confidentiality=list(template.confidentiality),
        creation_time=moved(template.creation_time),
        service_start=moved(template.service_start),
        service_stop=moved(template.service_stop),
        date=moved(template.date),
        title=text(template.title),
        patient_value=text(template.patient_value),
        source_patient_id=text(template.source_patient_id),
        authors=[
            Author(a.system, text(a.value) or a.value, text(a.family), text(a.given))
            for a in template.authors
        ],
        legal_authenticator=text(template.legal_authenticator),
        size=None,
        hash_sha1=None,
    )


# -- the identities CSV ---------------------------------------------------------------------------
def professional_rows(pros: list[Professional]) -> list[tuple[str, ...]]:
    return [
        ("professional", p.rpps, RPPS_OID, p.profession, p.specialty or "", p.structure)
        for p in pros
    ]


def patient_rows(people: list[Patient]) -> list[tuple[str, ...]]:
    return [("patient", p.ins, p.oid, "", "", "") for p in people]
