"""The demo cast. Fictional people; INS-NIR *de test* with valid keys (Corsica included)."""

from __future__ import annotations

from dataclasses import dataclass

from carnet.domain.actors import Actor, ActorKind
from carnet.domain.ins import OID_NIR_TEST, make_nir


@dataclass(frozen=True)
class DemoPatient:
    family: str
    given: tuple[str, ...]
    gender: str
    birth_date: str
    birth_place: str
    first13: str
    email: str

    @property
    def ins(self) -> str:
        return make_nir(self.first13)

    oid = OID_NIR_TEST

    @property
    def display(self) -> str:
        return f"{' '.join(self.given)} {self.family}"


@dataclass(frozen=True)
class DemoProfessional:
    rpps: str  # IdNatPS: 8 + RPPS
    family: str
    given: str
    profession: str  # TRE_G15
    specialty: str | None
    label: str
    structure: str  # FINESS
    structure_name: str

    @property
    def display(self) -> str:
        return f"{self.given} {self.family}"

    def actor(self) -> Actor:
        """The professional as the demo issuer's tokens name them."""
        return Actor(
            kind=ActorKind.PROFESSIONAL,
            subject=f"rpps:{self.rpps}",
            issuer="demo",
            rpps=self.rpps,
            profession=self.profession,
            specialty=self.specialty,
            structure=self.structure,
            name=self.display,
        )


PATIENTS = (
    DemoPatient(
        "DUPONT",
        ("Jeanne", "Marie"),
        "female",
        "1958-03-14",
        "75056",
        "2580375056123",
        "jeanne.dupont@example.org",
    ),
    DemoPatient(
        "MARTIN",
        ("Lucas",),
        "male",
        "1992-11-02",
        "69123",
        "1921169123045",
        "lucas.martin@example.org",
    ),
    DemoPatient(
        "ROSSI",
        ("Antoine", "Paul"),
        "male",
        "1975-07-21",
        "2A004",
        "175072A004017",
        "antoine.rossi@example.org",
    ),
    DemoPatient(
        "N'DIAYE",
        ("Aïssatou",),
        "female",
        "2001-05-30",
        "13055",
        "2010513055089",
        "aissatou.ndiaye@example.org",
    ),
)

PROFESSIONALS = (
    DemoProfessional(
        "810100000016",
        "BERNARD",
        "Claire",
        "10",
        "SM54",
        "médecin généraliste",
        "750000010",
        "Cabinet du Dr Bernard",
    ),
    DemoProfessional(
        "810100000024",
        "LEROY",
        "Paul",
        "10",
        "SM04",
        "cardiologue",
        "750000028",
        "Hôpital Saint-Louis",
    ),
    DemoProfessional(
        "810100000032",
        "MOREAU",
        "Hélène",
        "10",
        "SM05",
        "biologiste",
        "750000036",
        "Laboratoire Pasteur-Lumière",
    ),
    DemoProfessional(
        "810100000040",
        "FAURE",
        "Sophie",
        "21",
        None,
        "pharmacienne",
        "750000044",
        "Pharmacie du Marché",
    ),
    DemoProfessional(
        "810100000057",
        "HADDAD",
        "Karim",
        "60",
        None,
        "infirmier",
        "750000051",
        "Cabinet infirmier des Lilas",
    ),
    DemoProfessional(
        "810100000065",
        "PETIT",
        "Laure",
        "50",
        None,
        "sage-femme",
        "750000069",
        "Maternité des Bluets",
    ),
    DemoProfessional(
        "810100000073",
        "GIRAUD",
        "Marc",
        "40",
        None,
        "chirurgien-dentiste",
        "750000077",
        "Cabinet dentaire Giraud",
    ),
)
