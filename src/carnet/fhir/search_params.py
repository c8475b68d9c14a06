"""Parsing FHIR search parameters (http://hl7.org/fhir/R4/search.html).

Unknown parameters follow the client's ``Prefer: handling`` (FHIR R4 §3.1.1.2 "handling"):
ignored by default, each named in an OperationOutcome (severity warning) that the searchset
carries as an entry with ``search.mode`` ``outcome``; refused with 400 under
``handling=strict``. An unsupported modifier is always refused: a client would otherwise
believe a filter applied. ``POST [type]/_search`` (§3.1.1 "search") reads the form body with
the URL's parameters. Paging uses an opaque cursor (keyset on the sort key), so that links stay
correct while documents are added.
"""

from __future__ import annotations

import base64
import binascii
import re
from calendar import monthrange
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

from starlette.datastructures import QueryParams
from starlette.requests import Request

from carnet.domain.clock import to_utc_naive
from carnet.domain.search import (
    DateRange,
    Ref,
    RefParam,
    Text,
    TextParam,
    Token,
    TokenParam,
    normalise_name,
)
from carnet.fhir.errors import InvalidInput, UnsupportedMediaType
from carnet.fhir.search_spec import SearchParam
from carnet.fhir.wire import read_body

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
COMMON = {"_count", "_sort", "_include", "_cursor", "_format"}
COUNTING = {"_summary": "special", "_total": "special"}
"""``_summary=count`` and ``_total``, for the searches that count (DocumentReference, List)."""
MODIFIERS = {"string": ("exact", "contains"), "reference": ("identifier",)}
"""The modifiers each parameter type takes here (by the type its table gives it)."""
FORM = "application/x-www-form-urlencoded"
_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?:T(?P<time>[0-9:.]+)(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def strict_handling(request: Request) -> bool:
    """``Prefer: handling=strict`` (FHIR R4 §3.1.1.2; RFC 7240); ``lenient`` is the default."""
    for header in request.headers.getlist("prefer"):
        for pref in header.split(","):
            name, _, value = pref.split(";", 1)[0].strip().partition("=")
            if name.strip().lower() == "handling":
                return value.strip().strip('"').lower() == "strict"
    return False


async def search_params(request: Request, limit: int = 1 << 20) -> QueryParams:
    """The search's parameters: the URL's and, for ``POST [type]/_search``, the form body's
    (FHIR R4 §3.1.1: "the parameters in the body and the URL are combined")."""
    if request.method != "POST":
        return request.query_params
    kind = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if kind != FORM:
        raise UnsupportedMediaType(
            f"Content-Type {request.headers.get('content-type')!r} is not supported for a "
            f"search: send {FORM}"
        )
    body = await read_body(request, limit)
    try:
        form = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidInput("the search's form body is not UTF-8") from None
    return QueryParams([*request.query_params.multi_items(), *form])


def check_known(
    params: QueryParams,
    known: Mapping[str, SearchParam | str] | Iterable[str],
    resource: str,
    *,
    strict: bool = True,
) -> list[str]:
    """The parameters to ignore (unknown here), in the order sent; under ``strict`` an unknown
    parameter is refused (400). ``known``: names, or names with their FHIR types (which then
    decide the modifiers each takes: ``:exact`` and ``:contains`` on strings, ``:identifier``
    on references)."""
    types: dict[str, str] = (
        {n: t.type if isinstance(t, SearchParam) else t for n, t in known.items()}
        if isinstance(known, Mapping)
        else dict.fromkeys(known, "")
    )
    for name, value in params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise InvalidInput("search parameters may not contain NUL characters", expression=name)
    ignored: list[str] = []
    for name in params:
        base, _, modifier = name.partition(":")
        if base not in types and base not in COMMON:
            if strict:
                raise InvalidInput(
                    f"unknown search parameter {name!r} for {resource}; supported: "
                    + ", ".join(sorted(types)),
                    expression=name,
                )
            ignored.append(name)
            continue
        if modifier and modifier not in MODIFIERS.get(types.get(base, ""), ()):
            raise InvalidInput(f"search modifier in {name!r} is not supported", expression=name)
    return ignored


def texts(params: QueryParams, name: str) -> TextParam:
    """A string parameter, with its ``:exact`` and ``:contains`` forms (each repetition AND,
    commas OR)."""
    out: TextParam = []
    for key, match in (
        (name, "start"),
        (f"{name}:exact", "exact"),
        (f"{name}:contains", "contains"),
    ):
        for raw in params.getlist(key):
            values = []
            for part in raw.split(","):
                if not part.strip():
                    raise InvalidInput(f"empty value in {key}={raw!r}", expression=key)
                value = part if match == "exact" else normalise_name(part)
                if not value:
                    raise InvalidInput(f"{key}={raw!r} has no letter to match", expression=key)
                values.append(Text(value, match))
            out.append(values)
    return out


def refs(params: QueryParams, name: str) -> RefParam:
    """A reference parameter: ``Type/id`` or an absolute URL as sent, and with ``:identifier``
    an identifier (``system|value``)."""
    out: RefParam = [
        [Ref(reference=part.strip()) for part in _parts(raw, name)] for raw in params.getlist(name)
    ]
    out += [[Ref(identifier=t) for t in group] for group in tokens(params, f"{name}:identifier")]
    return out


def identifier_refs(params: QueryParams, name: str) -> TokenParam:
    """A reference parameter to a person or an organisation that carnet keeps contained in the
    resource (an author, a List's source or authorOrg), so found by its identifier:
    ``name:identifier=system|value``, or ``name=system|value`` / ``name=value`` as the PDSm guide
    searches ``author``. A ``Type/id`` names no resource here: refused, saying so."""
    for raw in params.getlist(name):
        for part in _parts(raw, name):
            if "/" in part and "|" not in part:
                raise InvalidInput(
                    f"{name}={part!r}: carnet keeps no such resource (the {name} is contained "
                    f"in the resource); search by identifier: {name}:identifier=system|value",
                    expression=name,
                )
    return tokens(params, name) + tokens(params, f"{name}:identifier")


def _parts(raw: str, name: str) -> list[str]:
    parts = [p.strip() for p in raw.split(",")]
    if not all(parts):
        raise InvalidInput(f"empty value in {name}={raw!r}", expression=name)
    return parts


def boolean(params: QueryParams, *names: str) -> bool | None:
    """A boolean token (``true`` or ``false``) under any of ``names`` (aliases); the same value
    when given under several."""
    found: set[bool] = set()
    for name in names:
        for raw in params.getlist(name):
            value = raw.rsplit("|", 1)[-1].strip()
            if value not in ("true", "false"):
                raise InvalidInput(f"{name} must be true or false", expression=name)
            found.add(value == "true")
    if len(found) > 1:
        raise InvalidInput(
            f"{' and '.join(names)} ask for both archived and not archived", expression=names[0]
        )
    return found.pop() if found else None


def summary_count(params: QueryParams) -> bool:
    """``_summary=count`` (only the total); ``_summary=false`` is the ordinary answer. ``_total``
    (``none``, ``estimate``, ``accurate``) is accepted: the total is always exact."""
    for raw in params.getlist("_total"):
        if raw not in ("none", "estimate", "accurate"):
            raise InvalidInput(
                f"_total={raw!r}: use none, estimate or accurate", expression="_total"
            )
    modes = set(params.getlist("_summary"))
    if modes - {"count", "false"}:
        raise InvalidInput(
            "_summary: only count (the total alone) and false are supported", expression="_summary"
        )
    return "count" in modes


def tokens(params: QueryParams, name: str) -> TokenParam:
    out: TokenParam = []
    for raw in params.getlist(name):
        values = []
        for part in raw.split(","):
            part = part.strip()
            if not part:
                raise InvalidInput(f"empty value in {name}={raw!r}", expression=name)
            if "|" in part:
                system, code = part.split("|", 1)
                if not code:
                    raise InvalidInput(
                        f"{name}={part!r}: a code is required after '|'", expression=name
                    )
                values.append(Token(system, code))
            else:
                values.append(Token(None, part))
        out.append(values)
    return out


def date_range(raw: str, name: str) -> DateRange:
    prefix = "eq"
    value = raw.strip()
    if value[:2] in PREFIXES:
        prefix, value = value[:2], value[2:]
    m = _DATE.match(value)
    if not m:
        raise InvalidInput(
            f"{name}={raw!r} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime), "
            "optionally prefixed by eq, ne, gt, lt, ge, le, sa, eb or ap",
            expression=name,
        )
    try:
        y = int(m["y"])
        if m["m"] is None:
            lo, hi = datetime(y, 1, 1), datetime(y + 1, 1, 1)
        elif m["d"] is None:
            mo = int(m["m"])
            lo = datetime(y, mo, 1)
            hi = lo + timedelta(days=monthrange(y, mo)[1])
        elif m["time"] is None:
            lo = datetime(y, int(m["m"]), int(m["d"]))
            hi = lo + timedelta(days=1)
        else:
            instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
            lo = to_utc_naive(instant)
            # the precision given: a second, or the fraction's last digit (a microsecond at
            # most), so that ``gt`` an instant served in meta.lastUpdated means after it
            fraction = m["time"].partition(".")[2]
            hi = lo + timedelta(microseconds=10 ** (6 - min(len(fraction), 6)))
    except (ValueError, OverflowError):
        raise InvalidInput(f"{name}={raw!r} is not a valid date", expression=name) from None
    return DateRange(prefix, lo, hi)


def dates(params: QueryParams, name: str) -> list[DateRange]:
    return [date_range(raw, name) for raw in params.getlist(name)]


def count(params: QueryParams, default: int, maximum: int, *, zero: bool = False) -> int:
    """``_count``, at most ``maximum``; 0 (the total and no entries) where ``zero`` allows it,
    else at least 1."""
    raw = params.get("_count")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidInput(f"_count={raw!r} must be a non-negative integer", expression="_count")
    return max(0 if zero else 1, min(int(raw), maximum))


def encode_cursor(date: datetime, ident: str) -> str:
    return base64.urlsafe_b64encode(f"{date.isoformat()}|{ident}".encode()).decode().rstrip("=")


def decode_cursor(params: QueryParams) -> tuple[datetime, str] | None:
    raw = params.get("_cursor")
    if raw is None:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        date_s, ident = text.split("|", 1)
        date = datetime.fromisoformat(date_s)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        date, ident = None, ""
    # a cursor this server issued: a naive UTC date (the stored form) and a non-empty id
    if date is None or date.tzinfo is not None or not ident or not ident.isprintable():
        raise InvalidInput("_cursor is not a cursor this server issued", expression="_cursor")
    return date, ident


def references(params: QueryParams, name: str, resource: str) -> list[list[str]]:
    """``patient=Patient/123`` or ``patient=123`` → resource ids."""
    out = []
    for raw in params.getlist(name):
        ids = []
        for part in raw.split(","):
            part = part.strip()
            if "/" in part:
                kind, _, ident = part.rstrip("/").rpartition("/")
                if not kind.endswith(resource):
                    raise InvalidInput(
                        f"{name}={raw!r} must reference a {resource}", expression=name
                    )
                part = ident
            if not part:
                raise InvalidInput(f"empty reference in {name}", expression=name)
            ids.append(part)
        out.append(ids)
    return out
