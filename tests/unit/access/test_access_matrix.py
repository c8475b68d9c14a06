"""The access matrix (arrêté du 26 octobre 2023; dmp.md §3 rule 5): a test per row of the
packaged file, the facts dmp.md states, lookups (speciality, class fallback, fail closed), the
operator override file and the errors a malformed file gives."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

import pytest

import carnet
from carnet.access.matrix import (
    ANY_TYPE,
    AccessMatrix,
    MatrixRow,
    default_matrix,
    load_matrix,
)
from carnet.domain.errors import ConfigurationError

PACKAGED = Path(carnet.__file__).resolve().parent / "data" / "access_matrix.csv"
PROFESSION = re.compile(r"^[0-9]{2}$")
MEDECIN, PHARMACIEN, DENTISTE, SAGE_FEMME, INFIRMIER = "10", "21", "40", "50", "60"
RESIDENCE_CERTIFICATE = ("ATTEST-RESID", "95")
PSYCHIATRIC_SUMMARY = ("68599-0", "11")
PSYCHOLOGICAL_ASSESSMENT = ("83901-9", "11")
UNLISTED_TYPE = "00000-0"  # in no row: a class default row answers for it


def _packaged_rows() -> list[dict[str, str]]:
    """The packaged file read with csv alone, independently of the module under test."""
    with PACKAGED.open(encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f) if not r["type_code"].startswith("#")]


ROWS = _packaged_rows()
PROFESSIONS = [c for c in ROWS[0] if PROFESSION.match(c)]
TYPE_ROWS = [r for r in ROWS if r["type_code"] != ANY_TYPE]


@pytest.fixture(scope="module")
def matrix() -> AccessMatrix:
    return default_matrix()


# --- a test per row of the packaged file -----------------------------------------------------


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['type_code']}@{r['class_code']}" for r in ROWS])
def test_packaged_row(matrix: AccessMatrix, row: dict[str, str]) -> None:
    type_code = UNLISTED_TYPE if row["type_code"] == ANY_TYPE else row["type_code"]
    assert row["label"], "every row has a label"
    for column, value in row.items():
        if PROFESSION.match(column):
            assert value in ("Y", "N")
            assert matrix.allows(column, None, type_code, row["class_code"]) is (value == "Y"), (
                f"{row['label']}: profession {column} should be {value}"
            )
        elif "/" in column and value:
            profession, specialty = column.split("/")
            assert matrix.allows(profession, specialty, type_code, row["class_code"]) is (
                value == "Y"
            )


def test_the_packaged_file_covers_what_dmp_md_names() -> None:
    keys = {(r["type_code"], r["class_code"]) for r in ROWS}
    # the typeCodes of dmp.md §6, with their classes from ASS_X16 (JDV_J57)
    for key in [
        ("60591-5", "11"),
        ("11502-2", "10"),
        ("18748-4", "31"),
        ("34112-3", "10"),
        ("11488-4", "10"),
        ("87273-9", "52"),
        ("57833-6", "42"),
        ("60593-1", "43"),
        ("18776-5", "44"),
        ("11490-0", "10"),
        ("75320-2", "90"),
        ("REMB", "60"),
        RESIDENCE_CERTIFICATE,
        PSYCHIATRIC_SUMMARY,
        PSYCHOLOGICAL_ASSESSMENT,
    ]:
        assert key in keys, key
    # a default row for every JDV_J57 class, so that any type of a known class has an answer
    defaults = {r["class_code"] for r in ROWS if r["type_code"] == ANY_TYPE}
    assert defaults == {"10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95"}
    assert {MEDECIN, PHARMACIEN, DENTISTE, SAGE_FEMME, INFIRMIER, "70"} <= set(PROFESSIONS)


def test_rows_and_professions(matrix: AccessMatrix) -> None:
    assert len(matrix.rows) == len(ROWS)
    assert all(isinstance(r, MatrixRow) for r in matrix.rows)
    assert [(r.type_code, r.class_code) for r in matrix.rows] == [
        (r["type_code"], r["class_code"]) for r in ROWS
    ]
    assert list(matrix.professions) == sorted(PROFESSIONS)
    first = matrix.rows[0]
    assert first.origin == "carnet/data/access_matrix.csv:2"
    with pytest.raises(TypeError):
        first.allowed[MEDECIN] = False  # type: ignore[index]


def test_default_matrix_is_loaded_once() -> None:
    assert default_matrix() is default_matrix()


# --- the facts of dmp.md §3 --------------------------------------------------------------------


def _readable(matrix: AccessMatrix, profession: str) -> set[tuple[str, str]]:
    return {
        (r["type_code"], r["class_code"])
        for r in TYPE_ROWS
        if matrix.allows(profession, None, r["type_code"], r["class_code"])
    }


def test_medecins_read_every_type_except_the_residence_certificate(
    matrix: AccessMatrix,
) -> None:
    for r in ROWS:
        type_code = UNLISTED_TYPE if r["type_code"] == ANY_TYPE else r["type_code"]
        expected = (r["type_code"], r["class_code"]) != RESIDENCE_CERTIFICATE
        assert matrix.allows(MEDECIN, None, type_code, r["class_code"]) is expected, r["label"]
    assert not matrix.allows(MEDECIN, None, *RESIDENCE_CERTIFICATE)
    # whatever the speciality (none is configured to differ)
    assert not matrix.allows(MEDECIN, "SM54", *RESIDENCE_CERTIFICATE)
    assert matrix.allows(MEDECIN, "SM42", *PSYCHIATRIC_SUMMARY)


def test_chirurgiens_dentistes_read_no_psychiatric_summary_nor_psychological_assessment(
    matrix: AccessMatrix,
) -> None:
    for type_code, class_code in (PSYCHIATRIC_SUMMARY, PSYCHOLOGICAL_ASSESSMENT):
        assert not matrix.allows(DENTISTE, None, type_code, class_code)
        # filed under another class, the type still decides
        assert not matrix.allows(DENTISTE, None, type_code, "10")
        assert not matrix.allows(DENTISTE, None, type_code, None)
        assert matrix.allows(MEDECIN, None, type_code, class_code)
    assert matrix.allows(DENTISTE, None, "60591-5", "11")
    assert matrix.allows(DENTISTE, None, "18748-4", "31")


@pytest.mark.parametrize("profession", [PHARMACIEN, INFIRMIER])
def test_pharmaciens_and_infirmiers_read_a_narrower_set(
    matrix: AccessMatrix, profession: str
) -> None:
    theirs, medecins = _readable(matrix, profession), _readable(matrix, MEDECIN)
    assert theirs < medecins  # a strict subset
    assert not matrix.allows(profession, None, *PSYCHIATRIC_SUMMARY)
    # what their work needs
    for key in [("57833-6", "42"), ("87273-9", "52"), ("11502-2", "10"), ("60591-5", "11")]:
        assert matrix.allows(profession, None, *key), key


def test_what_pharmaciens_and_infirmiers_read(matrix: AccessMatrix) -> None:
    assert matrix.allows(PHARMACIEN, None, "60593-1", "43")  # dispensation
    assert matrix.allows(INFIRMIER, None, "18776-5", "44")  # plan de soins
    assert matrix.allows(INFIRMIER, None, "11490-0", "10")  # lettre de liaison / CR de sortie
    assert not matrix.allows(PHARMACIEN, None, "REMB", "60")
    assert not matrix.allows(INFIRMIER, None, "REMB", "60")


# --- lookups -------------------------------------------------------------------------------------


def test_class_fallback(matrix: AccessMatrix) -> None:
    for r in ROWS:
        if r["type_code"] != ANY_TYPE:
            continue
        for profession in PROFESSIONS:
            expected = r[profession] == "Y"
            assert matrix.allows(profession, None, "NOT-A-LISTED-TYPE", r["class_code"]) is (
                expected
            )
            assert matrix.allows(profession, None, None, r["class_code"]) is expected
    explanation = matrix.explain(INFIRMIER, None, "NOT-A-LISTED-TYPE", "42")
    assert explanation.startswith("allowed: ")
    assert "any other type, class 42" in explanation


def test_a_type_decides_whatever_class_the_document_claims(matrix: AccessMatrix) -> None:
    # ASS_X16 files a vaccination note under 52; a document saying 10 gets the same answer
    for profession in PROFESSIONS:
        assert matrix.allows(profession, None, "87273-9", "10") is matrix.allows(
            profession, None, "87273-9", "52"
        )
    assert not matrix.allows(MEDECIN, None, "ATTEST-RESID", "90")


@pytest.mark.parametrize(
    ("type_code", "class_code"),
    [("NOT-A-TYPE", "77"), (None, "77"), ("NOT-A-TYPE", None), (None, None), ("", " ")],
)
def test_unknown_type_of_unknown_class_is_denied(
    matrix: AccessMatrix, type_code: str | None, class_code: str | None
) -> None:
    for profession in PROFESSIONS:
        assert not matrix.allows(profession, None, type_code, class_code)
    assert matrix.explain(MEDECIN, None, type_code, class_code).startswith("denied: no row")


def test_a_literal_star_matches_nothing(matrix: AccessMatrix) -> None:
    assert not matrix.allows(MEDECIN, None, ANY_TYPE, "10")
    assert not matrix.allows(MEDECIN, None, "11502-2", ANY_TYPE)
    assert not matrix.allows(MEDECIN, None, None, ANY_TYPE)


@pytest.mark.parametrize("profession", ["33", "99", "", "  ", None, "médecin", "1"])
def test_unknown_profession_is_denied(matrix: AccessMatrix, profession: str | None) -> None:
    assert not matrix.allows(profession, None, "60591-5", "11")
    assert not matrix.allows(profession, None, UNLISTED_TYPE, "10")
    explanation = matrix.explain(profession, None, "60591-5", "11")
    assert explanation.startswith("denied: ")
    assert "has no column for profession" in explanation


def test_codes_are_trimmed_and_jdv_j01_spellings_accepted(matrix: AccessMatrix) -> None:
    assert matrix.allows(" 60 ", None, " 11502-2 ", " 10 ")
    assert matrix.allows("G15_40", None, "60591-5", "11")
    assert not matrix.allows("G15_40", "G15_40/SCD01", *PSYCHIATRIC_SUMMARY)


def test_explain_names_the_row_and_the_column(matrix: AccessMatrix) -> None:
    text = matrix.explain(DENTISTE, None, *PSYCHIATRIC_SUMMARY)
    assert text.startswith("denied: ")
    assert "Synthèse psychiatrique" in text
    assert "type 68599-0, class 11" in text
    assert "carnet/data/access_matrix.csv:" in text
    assert text.endswith("column 40 = N")
    assert matrix.explain(INFIRMIER, None, "11502-2", "10").endswith("column 60 = Y")


# --- the operator override file -----------------------------------------------------------------

HEADER = ["type_code", "type_system", "class_code", "label", *PROFESSIONS]


def _write(path: Path, header: list[str], rows: Iterable[Mapping[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow([r.get(c, "N" if PROFESSION.match(c) else "") for c in header])
    return path


def _row(type_code: str, class_code: str, label: str = "x", **cells: str) -> dict[str, str]:
    system = "" if type_code == ANY_TYPE else "http://loinc.org"
    values = {c.removeprefix("p").replace("_", "/"): v for c, v in cells.items()}
    return {
        "type_code": type_code,
        "type_system": system,
        "class_code": class_code,
        "label": label,
        **values,
    }


def test_override_replaces_and_adds_rows(tmp_path: Path) -> None:
    everyone = {f"p{p}": "Y" for p in PROFESSIONS}
    path = _write(
        tmp_path / "matrix.csv",
        HEADER,
        [
            # replaces the packaged row: pharmaciens now read psychiatric summaries
            _row(*PSYCHIATRIC_SUMMARY, "Synthèse psychiatrique", p10="Y", p21="Y"),
            # adds a type (a local code) and a class unknown to the packaged file
            _row("LOCAL-1", "10", "Document local", p60="Y"),
            _row(ANY_TYPE, "99", "Document technique", **everyone),
        ],
    )
    m = load_matrix(path)
    assert len(m.rows) == len(ROWS) + 2
    assert m.allows(PHARMACIEN, None, *PSYCHIATRIC_SUMMARY)
    assert not m.allows("69", None, *PSYCHIATRIC_SUMMARY)  # the whole row was replaced
    assert m.allows(INFIRMIER, None, "LOCAL-1", "10")
    assert not m.allows(MEDECIN, None, "LOCAL-1", "10")
    assert m.allows(DENTISTE, None, "ANY-TECHNICAL", "99")
    # everything else is the packaged matrix
    assert not m.allows(DENTISTE, None, *PSYCHOLOGICAL_ASSESSMENT)
    assert not m.allows(MEDECIN, None, *RESIDENCE_CERTIFICATE)
    replaced = m.row_for(*PSYCHIATRIC_SUMMARY)
    assert replaced is not None
    assert replaced.origin == f"{path}:2"
    assert f"{path}:2" in m.explain(PHARMACIEN, None, *PSYCHIATRIC_SUMMARY)
    # the packaged order is kept, the replaced row in place, the new ones at the end
    keys = [r.key for r in m.rows]
    assert keys.index(PSYCHIATRIC_SUMMARY) == [
        (r["type_code"], r["class_code"]) for r in ROWS
    ].index(PSYCHIATRIC_SUMMARY)
    assert keys[-2:] == [("LOCAL-1", "10"), (ANY_TYPE, "99")]


def test_override_may_add_profession_and_speciality_columns(tmp_path: Path) -> None:
    header = [*HEADER, "93", "10/SM25", "source"]
    path = _write(
        tmp_path / "m.csv",
        header,
        [
            _row("REMB", "60", "Données de remboursement", p10="Y", p93="Y", p10_SM25="N"),
            _row("11502-2", "10", "CR d'examens biologiques", p10="Y", p60="Y", p10_SM25=""),
        ],
    )
    m = load_matrix(path)
    assert m.allows(MEDECIN, None, "REMB", "60")
    assert m.allows(MEDECIN, "SM54", "REMB", "60")  # no column for SM54: the profession's
    assert not m.allows(MEDECIN, "SM25", "REMB", "60")  # médecine du travail
    assert not m.allows(MEDECIN, "G15_10/SM25", "REMB", "60")  # JDV_J01 spelling
    assert m.explain(MEDECIN, "SM25", "REMB", "60").endswith("column 10/SM25 = N")
    assert m.allows(MEDECIN, "SM25", "11502-2", "10")  # blank cell: the profession decides
    assert m.explain(MEDECIN, "SM25", "11502-2", "10").endswith("column 10 = Y")
    assert m.allows("93", None, "REMB", "60")
    assert not m.allows("93", None, "11502-2", "10")
    assert not m.allows("93", None, "60591-5", "11")  # packaged rows have no column 93


def test_override_with_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    cells = ",".join("Y" for _ in PROFESSIONS)
    path.write_text(
        "\ufeff# carnet access matrix, local changes\n"
        + ",".join(HEADER)
        + "\n\n# REMB: everyone\n"
        + f"REMB,,60,Données de remboursement,{cells}\n",
        encoding="utf-8",
    )
    m = load_matrix(path)
    assert m.allows(PHARMACIEN, None, "REMB", "60")
    row = m.row_for("REMB", "60")
    assert row is not None
    assert row.origin == f"{path}:5"


def test_an_empty_override_changes_nothing(tmp_path: Path) -> None:
    m = load_matrix(_write(tmp_path / "m.csv", HEADER, []))
    assert [r.key for r in m.rows] == [r.key for r in default_matrix().rows]


# --- malformed files -----------------------------------------------------------------------------


def _error(path: Path) -> str:
    with pytest.raises(ConfigurationError) as info:
        load_matrix(path)
    return info.value.message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"
    message = _error(path)
    assert message.startswith(f"{path}: cannot read")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    text = ",".join(HEADER) + "\nREMB,,60,Donn\xe9es," + ",".join("N" for _ in PROFESSIONS)
    path.write_bytes((text + "\n").encode("latin-1"))
    assert "not UTF-8" in _error(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("# nothing\n\n", encoding="utf-8")
    assert _error(path).startswith(f"{path}:1: empty file")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (["type_code", "class_code", "label", *PROFESSIONS], "missing column(s) type_system"),
        (["type_code", "type_system", "class_code", "label"], "no profession column"),
        ([*HEADER, "pharmacien"], "unknown column 'pharmacien'"),
        ([*HEADER, "notes"], "unknown column 'notes'"),
        ([*HEADER, "10/SM25", "33/SM01"], "speciality column '33/SM01'"),
        ([*HEADER, "10"], "column '10' appears twice"),
        ([*HEADER, ""], f"column {len(HEADER) + 1} has no name"),
        ([h for h in HEADER if h != "21"], "missing profession column(s) 21"),
    ],
)
def test_bad_header(tmp_path: Path, header: list[str], expected: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text("# a comment first\n" + ",".join(header) + "\n", encoding="utf-8")
    message = _error(path)
    assert message.startswith(f"{path}:2: bad header: ")
    assert expected in message


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ({"p21": "yes"}, "column 21: 'yes' is not Y or N"),
        ({"p21": "y"}, "column 21: 'y' is not Y or N"),
        ({"p60": ""}, "column 60: '' is not Y or N (blank is allowed in speciality columns only)"),
        ({"type_code": ""}, "type_code is empty"),
        ({"class_code": ""}, "class_code is empty"),
        ({"class_code": "*"}, "class_code may not be *"),
        ({"label": ""}, "label is empty"),
        ({"type_system": "loinc"}, "type_system 'loinc' is not a URI"),
        ({"type_code": "*"}, "a class default row (*) has no type_system"),
    ],
)
def test_bad_value(tmp_path: Path, cells: dict[str, str], expected: str) -> None:
    good = _row("LOCAL-1", "10", "Document local")
    bad = {**_row("LOCAL-2", "10", "Document local"), **_cells(cells)}
    path = _write(tmp_path / "m.csv", HEADER, [good, bad])
    assert _error(path).startswith(f"{path}:3: {expected}")


def _cells(cells: dict[str, str]) -> dict[str, str]:
    return {c.removeprefix("p"): v for c, v in cells.items()}


def test_wrong_number_of_values(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(",".join(HEADER) + "\nREMB,,60,Données de remboursement,Y,N\n", "utf-8")
    message = _error(path)
    assert message == f"{path}:2: 6 values but the header (line 1) has {len(HEADER)} columns"


def test_invalid_csv(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(",".join(HEADER) + '\nREMB,,60,"Données" de,Y\n', "utf-8")
    assert _error(path).startswith(f"{path}:2: not valid CSV")


def test_duplicate_contradictory_rows(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "m.csv",
        HEADER,
        [
            _row("LOCAL-1", "10", "Document local", p60="Y"),
            _row("LOCAL-2", "10", "Autre"),
            _row("LOCAL-1", "10", "Document local", p60="N"),
        ],
    )
    assert _error(path) == (
        f"{path}:4: a second row for type LOCAL-1 in class 10 (first at line 2, with different "
        "values); keep one"
    )


def test_duplicate_identical_rows_are_refused_too(tmp_path: Path) -> None:
    same = _row("LOCAL-1", "10", "Document local", p60="Y")
    path = _write(tmp_path / "m.csv", HEADER, [same, same])
    assert _error(path) == (
        f"{path}:3: a second row for type LOCAL-1 in class 10 (first at line 2); keep one"
    )


def test_rows_of_one_type_in_two_classes_must_agree(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "m.csv",
        HEADER,
        [
            _row("LOCAL-1", "10", "Document local", p60="Y"),
            _row("LOCAL-1", "11", "Document local", p60="N"),
        ],
    )
    message = _error(path)
    assert message.startswith(f"{path}:3: type LOCAL-1 (class 11) contradicts its row in class 10")
    assert f"({path}:2)" in message
    assert "column 60 is N here and Y there" in message
    # agreeing rows are fine
    path = _write(
        tmp_path / "ok.csv",
        HEADER,
        [
            _row("LOCAL-1", "10", "Document local", p60="Y"),
            _row("LOCAL-1", "11", "Document local", p60="Y"),
        ],
    )
    assert load_matrix(path).allows(INFIRMIER, None, "LOCAL-1", "44")


def test_an_override_row_may_not_contradict_a_packaged_row_of_the_same_type(
    tmp_path: Path,
) -> None:
    # the packaged matrix files 11502-2 under class 10; a row for class 52 must agree with it
    path = _write(tmp_path / "m.csv", HEADER, [_row("11502-2", "52", "CR de biologie")])
    message = _error(path)
    assert message.startswith(f"{path}:2: type 11502-2 (class 52) contradicts its row in class 10")
    assert "(carnet/data/access_matrix.csv:" in message


def test_constructing_a_matrix_with_two_rows_for_one_key_fails() -> None:
    row = MatrixRow("X", "", "10", "x", MappingProxyType({"10": True}), origin="here:2")
    with pytest.raises(ConfigurationError, match="a second row for type X in class 10"):
        AccessMatrix([row, row])
