"""The DMP access matrix: which profession (and, for médecins, which speciality) reads which
document type or class (arrêté du 26 octobre 2023 fixant les règles de gestion des droits
d'accès au dossier médical partagé, its annex "matrice d'habilitations"; dmp.md §3 rule 5).

The matrix is configuration, not code. The defaults ship in ``carnet/data/access_matrix.csv``
(one row per document type, one ``Y``/``N`` column per TRE_G15 profession code, optional
``<profession>/<speciality>`` columns; ``carnet/data/README.md`` says where each value comes
from); an operator file in the same format replaces the packaged rows it names and adds new ones
(``load_matrix(override)``, setting ``CARNET_ACCESS_MATRIX``).

A decision, in order:

1. the row: the document type's own row (``type_code``; when one type has rows in several
   classes they must agree, so the class does not change the answer); else the class's default
   row (``type_code`` ``*``); else nothing: an unknown type of an unknown class is denied;
2. the column: ``<profession>/<speciality>`` when the file has it and its cell is filled, else
   the profession's column; a profession without a column is denied;
3. the cell: ``Y`` allows, ``N`` denies.

Everything fails closed. A malformed file is refused at start with a
:class:`~carnet.domain.errors.ConfigurationError` naming the file, the line and what is wrong.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from carnet.domain.errors import ConfigurationError

PACKAGED_FILE = "access_matrix.csv"
ANY_TYPE = "*"
REQUIRED_COLUMNS = ("type_code", "type_system", "class_code", "label")
OPTIONAL_COLUMNS = ("source",)
_PROFESSION = re.compile(r"^[0-9]{2}$")  # TRE_G15 codes: 10 médecin, 21 pharmacien, ...
_SPECIALITY = re.compile(r"^([0-9]{2})/([A-Za-z0-9_.-]+)$")  # 10/SM54: TRE_R38 speciality
_SYSTEM = re.compile(r"^(https?://|urn:)\S+$")
_YES_NO = {"Y": True, "N": False}
_EXPECTED_HEADER = (
    "expected type_code,type_system,class_code,label, then one column per profession code "
    "(TRE_G15, two digits: 10, 21, ...), optional <profession>/<speciality> columns (10/SM54) "
    "and an optional source column"
)


@dataclass(frozen=True)
class MatrixRow:
    """One line of the matrix: a document type (or ``*``: any type of the class)."""

    type_code: str
    type_system: str
    class_code: str
    label: str
    allowed: Mapping[str, bool] = field(hash=False)  # column -> Y/N; blank speciality cells absent
    source: str = ""  # where the values come from (documentation)
    origin: str = ""  # "file:line", for errors and traces

    @property
    def key(self) -> tuple[str, str]:
        """What an override row replaces: the same type in the same class."""
        return (self.type_code, self.class_code)

    @property
    def is_class_default(self) -> bool:
        return self.type_code == ANY_TYPE

    def describe(self) -> str:
        what = "any other type" if self.is_class_default else f"type {self.type_code}"
        where = f" ({self.origin})" if self.origin else ""
        return f"row '{self.label}' [{what}, class {self.class_code}]{where}"


def _profession_of(column: str) -> str:
    return column.split("/", 1)[0]


def _effective(row: MatrixRow, column: str) -> bool:
    """What ``row`` answers for ``column``, a blank speciality cell inheriting the profession."""
    if column in row.allowed:
        return row.allowed[column]
    if "/" in column:
        return row.allowed.get(_profession_of(column), False)
    return False


def _normalise_profession(profession: str | None) -> str | None:
    """``10``; tolerates the JDV_J01 spelling ``G15_10``."""
    if profession is None:
        return None
    value = profession.strip()
    if value.upper().startswith("G15_"):
        value = value[4:]
    return value or None


def _normalise_speciality(specialty: str | None) -> str | None:
    """``SM54``; tolerates the JDV_J01 spelling ``G15_10/SM54``."""
    if specialty is None:
        return None
    value = specialty.strip().rsplit("/", 1)[-1].strip()
    return value or None


def _code(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


class AccessMatrix:
    """The matrix in memory. Build it with :func:`load_matrix` (or :func:`default_matrix`)."""

    def __init__(self, rows: Iterable[MatrixRow]) -> None:
        self._rows = tuple(rows)
        self._by_key: dict[tuple[str, str], MatrixRow] = {}
        self._by_type: dict[str, MatrixRow] = {}
        self._class_default: dict[str, MatrixRow] = {}
        for row in self._rows:
            first = self._by_key.get(row.key)
            if first is not None:
                raise ConfigurationError(
                    f"{row.origin or 'access matrix'}: a second row for type {row.type_code} "
                    f"in class {row.class_code} (the first is at {first.origin or '?'})"
                )
            self._by_key[row.key] = row
            if row.is_class_default:
                self._class_default[row.class_code] = row
                continue
            other = self._by_type.get(row.type_code)
            if other is None:
                self._by_type[row.type_code] = row
            else:
                _check_same_answers(row, other)
        columns: set[str] = set()
        for row in self._rows:
            columns.update(row.allowed)
        self._columns = frozenset(columns)

    @property
    def rows(self) -> tuple[MatrixRow, ...]:
        return self._rows

    @property
    def professions(self) -> tuple[str, ...]:
        """The profession columns (TRE_G15 codes), sorted."""
        return tuple(sorted(c for c in self._columns if "/" not in c))

    @property
    def columns(self) -> frozenset[str]:
        """Every profession and speciality column of any row."""
        return self._columns

    def row_for(self, type_code: str | None, class_code: str | None) -> MatrixRow | None:
        """The row that answers for a document: its type's, else its class's default, else
        ``None``. A literal ``*`` is no type nor class: it matches nothing."""
        t, c = _code(type_code), _code(class_code)
        if t == ANY_TYPE or c == ANY_TYPE:
            return None
        if t is not None:
            exact = self._by_key.get((t, c)) if c is not None else None
            row = exact or self._by_type.get(t)
            if row is not None:
                return row
        if c is not None:
            return self._class_default.get(c)
        return None

    def column_for(
        self, row: MatrixRow, profession: str | None, specialty: str | None = None
    ) -> str | None:
        """The column of ``row`` that decides for this professional, or ``None``."""
        p = _normalise_profession(profession)
        if p is None:
            return None
        s = _normalise_speciality(specialty)
        if s is not None and f"{p}/{s}" in row.allowed:
            return f"{p}/{s}"
        return p if p in row.allowed else None

    def allows(
        self,
        profession: str | None,
        specialty: str | None,
        type_code: str | None,
        class_code: str | None,
    ) -> bool:
        """Whether a professional of ``profession`` (TRE_G15; ``specialty``: TRE_R38 code for
        médecins) may read a document of this ``type_code`` and ``class_code`` (JDV_J57)."""
        row = self.row_for(type_code, class_code)
        if row is None:
            return False
        column = self.column_for(row, profession, specialty)
        return column is not None and row.allowed[column]

    def explain(
        self,
        profession: str | None,
        specialty: str | None,
        type_code: str | None,
        class_code: str | None,
    ) -> str:
        """Which row and column decided, in one line, for traces."""
        row = self.row_for(type_code, class_code)
        if row is None:
            return (
                f"denied: no row for type {type_code!r} nor for class {class_code!r} "
                "(unknown types of unknown classes are denied)"
            )
        column = self.column_for(row, profession, specialty)
        if column is None:
            given = _normalise_profession(profession)
            who = repr(given) if given else "(none given)"
            return f"denied: {row.describe()} has no column for profession {who}"
        verdict = "allowed" if row.allowed[column] else "denied"
        cell = "Y" if row.allowed[column] else "N"
        return f"{verdict}: {row.describe()}, column {column} = {cell}"


def _check_same_answers(row: MatrixRow, other: MatrixRow) -> None:
    """Rows of one type in several classes must answer alike (the type decides, not the class)."""
    for column in sorted(set(row.allowed) | set(other.allowed)):
        mine, theirs = _effective(row, column), _effective(other, column)
        if mine != theirs:
            raise ConfigurationError(
                f"{row.origin or 'access matrix'}: type {row.type_code} (class {row.class_code}) "
                f"contradicts its row in class {other.class_code} ({other.origin or '?'}): "
                f"column {column} is {'Y' if mine else 'N'} here and {'Y' if theirs else 'N'} "
                "there; the rows of one type must agree"
            )


@dataclass(frozen=True)
class _Parsed:
    name: str
    header_line: int
    columns: tuple[str, ...]
    rows: tuple[MatrixRow, ...]

    @property
    def professions(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if _PROFESSION.match(c))


def _error(name: str, line: int, what: str) -> ConfigurationError:
    return ConfigurationError(f"{name}:{line}: {what}")


def _parse(text: str, name: str) -> _Parsed:
    """Read one matrix file. ``name`` is how errors name the file."""

    def fail(line: int, what: str) -> ConfigurationError:
        return _error(name, line, what)

    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")), strict=True)
    header: list[str] | None = None
    header_line = 0
    rows: list[MatrixRow] = []
    seen: dict[tuple[str, str], int] = {}
    try:
        for raw in reader:
            line = reader.line_num
            cells = [c.strip() for c in raw]
            if not any(cells) or cells[0].startswith("#"):
                continue  # blank line or comment
            if header is None:
                header, header_line = cells, line
                _check_header(header, name, line)
                continue
            if len(cells) != len(header):
                raise fail(
                    line,
                    f"{len(cells)} values but the header (line {header_line}) has "
                    f"{len(header)} columns",
                )
            row = _row(dict(zip(header, cells, strict=True)), name, line)
            first = seen.get(row.key)
            if first is not None:
                earlier = next(r for r in rows if r.key == row.key)
                same = dict(earlier.allowed) == dict(row.allowed)
                raise fail(
                    line,
                    f"a second row for type {row.type_code} in class {row.class_code} (first at "
                    f"line {first}{'' if same else ', with different values'}); keep one",
                )
            seen[row.key] = line
            rows.append(row)
    except csv.Error as e:
        raise fail(reader.line_num, f"not valid CSV: {e}") from e
    if header is None:
        raise fail(1, f"empty file: no header ({_EXPECTED_HEADER})")
    return _Parsed(name, header_line, tuple(header), tuple(rows))


def _check_header(header: list[str], name: str, line: int) -> None:
    def bad(what: str) -> ConfigurationError:
        return _error(name, line, f"bad header: {what}")

    for index, column in enumerate(header, start=1):
        if not column:
            raise bad(f"column {index} has no name ({_EXPECTED_HEADER})")
        if header.count(column) > 1:
            raise bad(f"column {column!r} appears twice")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise bad(f"missing column(s) {', '.join(missing)} ({_EXPECTED_HEADER})")
    professions = [c for c in header if _PROFESSION.match(c)]
    if not professions:
        raise bad(f"no profession column ({_EXPECTED_HEADER})")
    for index, column in enumerate(header, start=1):
        if column in REQUIRED_COLUMNS or column in OPTIONAL_COLUMNS or column in professions:
            continue
        speciality = _SPECIALITY.match(column)
        if speciality is None:
            raise bad(f"unknown column {column!r} (column {index}); {_EXPECTED_HEADER}")
        if speciality.group(1) not in professions:
            raise bad(
                f"speciality column {column!r} (column {index}) has no profession column "
                f"{speciality.group(1)!r}"
            )


def _row(cells: dict[str, str], name: str, line: int) -> MatrixRow:
    def error(what: str) -> ConfigurationError:
        return _error(name, line, what)

    type_code, type_system = cells["type_code"], cells["type_system"]
    class_code, label = cells["class_code"], cells["label"]
    if not type_code:
        raise error(f"type_code is empty (a code, or {ANY_TYPE} for any type of the class)")
    if not class_code:
        raise error("class_code is empty (a JDV_J57 class code: 10, 11, 31, ...)")
    if class_code == ANY_TYPE:
        raise error(f"class_code may not be {ANY_TYPE}: unknown classes are always denied")
    if not label:
        raise error("label is empty")
    if type_code == ANY_TYPE and type_system:
        raise error(f"a class default row ({ANY_TYPE}) has no type_system")
    if type_system and not _SYSTEM.match(type_system):
        raise error(
            f"type_system {type_system!r} is not a URI (http://loinc.org, urn:oid:...) nor empty"
        )
    allowed: dict[str, bool] = {}
    for column, value in cells.items():
        if column in REQUIRED_COLUMNS or column in OPTIONAL_COLUMNS:
            continue
        if "/" in column and value == "":
            continue  # blank speciality cell: the profession's column decides
        if value not in _YES_NO:
            blank = " (blank is allowed in speciality columns only)" if value == "" else ""
            raise error(f"column {column}: {value!r} is not Y or N{blank}")
        allowed[column] = _YES_NO[value]
    return MatrixRow(
        type_code=type_code,
        type_system=type_system,
        class_code=class_code,
        label=label,
        allowed=MappingProxyType(allowed),
        source=cells.get("source", ""),
        origin=f"{name}:{line}",
    )


def _packaged() -> _Parsed:
    resource = resources.files("carnet") / "data" / PACKAGED_FILE
    return _parse(resource.read_text(encoding="utf-8"), f"carnet/data/{PACKAGED_FILE}")


def load_matrix(override: Path | None = None) -> AccessMatrix:
    """The packaged matrix, with the rows of the operator file ``override`` (same format)
    replacing the packaged rows of the same (type_code, class_code) and adding the others.

    The override file must carry every profession column of the packaged file: its rows replace
    whole rows, and a missing column would silently deny that profession.
    """
    packaged = _packaged()
    if override is None:
        return AccessMatrix(packaged.rows)
    name = str(override)
    try:
        text = Path(override).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigurationError(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except OSError as e:
        raise ConfigurationError(
            f"{name}: cannot read the access matrix override: {e.strerror or e}"
        ) from e
    operator = _parse(text, name)
    missing = [p for p in packaged.professions if p not in operator.columns]
    if missing:
        raise ConfigurationError(
            f"{name}:{operator.header_line}: bad header: missing profession column(s) "
            f"{', '.join(missing)} of the packaged matrix; an override row replaces the whole "
            "packaged row, so it must say Y or N for every profession"
        )
    merged = {row.key: row for row in packaged.rows}
    for row in operator.rows:
        merged[row.key] = row  # replaces in place, or adds at the end
    return AccessMatrix(merged.values())


@functools.cache
def default_matrix() -> AccessMatrix:
    """The packaged matrix, loaded once."""
    return load_matrix()
