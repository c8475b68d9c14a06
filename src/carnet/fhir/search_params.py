"""Parsing FHIR search parameters (http://hl7.org/fhir/R4/search.html).

Unknown parameters are refused with 400 (the server does not silently ignore what it does not
understand: a client would otherwise believe a filter applied). Paging uses an opaque cursor
(keyset on the sort key), so that links stay correct while documents are added.
"""

from __future__ import annotations

import base64
import binascii
import re
from calendar import monthrange
from datetime import datetime, timedelta

from starlette.datastructures import QueryParams

from carnet.domain.clock import to_utc_naive
from carnet.domain.search import DateRange, Token, TokenParam
from carnet.fhir.errors import InvalidInput

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
COMMON = {"_count", "_sort", "_include", "_cursor", "_format"}
_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?:T(?P<time>[0-9:.]+)(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def check_known(params: QueryParams, known: set[str], resource: str) -> None:
    for name, value in params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise InvalidInput("search parameters may not contain NUL characters", expression=name)
    for name in params:
        base = name.split(":", 1)[0]
        if base not in known and base not in COMMON:
            raise InvalidInput(
                f"unknown search parameter {name!r} for {resource}; supported: "
                + ", ".join(sorted(known)),
                expression=name,
            )
        if ":" in name and name.split(":", 1)[1] not in ("exact", "identifier", "missing"):
            raise InvalidInput(f"search modifier in {name!r} is not supported", expression=name)


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
            hi = lo + timedelta(seconds=1)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{name}={raw!r} is not a valid date", expression=name) from None
    return DateRange(prefix, lo, hi)


def dates(params: QueryParams, name: str) -> list[DateRange]:
    return [date_range(raw, name) for raw in params.getlist(name)]


def count(params: QueryParams, default: int, maximum: int) -> int:
    raw = params.get("_count")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidInput(f"_count={raw!r} must be a non-negative integer", expression="_count")
    return max(1, min(int(raw), maximum))


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
