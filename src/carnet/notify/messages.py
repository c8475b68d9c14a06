"""The words of notifications: e-mails (plain text, French first, then English) and portal
entries.

E-mails travel outside carnet: they carry no medical content at all. They say who accessed the
record (name, RPPS, profession, structure), when, and invite the patient to log in; a new
document is told as "un nouveau document a été ajouté", never by its title, which can itself
be sensitive. Portal entries are read after logging in and may carry the document's title.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from carnet.domain.notifications import Kind, Role


def _paris() -> tzinfo:
    try:
        return ZoneInfo("Europe/Paris")
    except ZoneInfoNotFoundError:  # pragma: no cover - a system without time zone data
        return UTC


PARIS: Final = _paris()

# TRE_G15 (profession) labels of the usual codes; others are shown by code
PROFESSIONS: Final = {
    "10": ("médecin", "physician"),
    "21": ("pharmacien", "pharmacist"),
    "40": ("chirurgien-dentiste", "dentist"),
    "50": ("sage-femme", "midwife"),
    "60": ("infirmier", "nurse"),
    "70": ("masseur-kinésithérapeute", "physiotherapist"),
    "80": ("pédicure-podologue", "podiatrist"),
    "91": ("orthophoniste", "speech therapist"),
    "92": ("orthoptiste", "orthoptist"),
}

MODES: Final = {
    "bris_de_glace": ("en urgence (bris de glace)", "in an emergency (break the glass)"),
    "centre_15": ("par la régulation du centre 15 (SAMU)", "by the emergency call centre (15)"),
}

SIGNATURE_FR: Final = (
    "Ce message est envoyé automatiquement par carnet ; merci de ne pas y répondre."
)
SIGNATURE_EN: Final = "This message is sent automatically by carnet; please do not reply."


@dataclass(frozen=True, slots=True)
class Text:
    subject: str  # e-mail subject, or portal title
    body: str


# -- time -----------------------------------------------------------------------------------------
def parse_instant(value: str) -> datetime:
    """A stored instant (``2026-03-12T13:05:00.000Z``) as naive UTC."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def local(value: datetime) -> datetime:
    """Naive UTC → Paris time."""
    return value.replace(tzinfo=UTC).astimezone(PARIS)


def local_day(value: datetime) -> date:
    return local(value).date()


def start_of_local_day(value: datetime) -> datetime:
    """Midnight in Paris of the day of ``value`` (naive UTC in, naive UTC out)."""
    midnight = datetime.combine(local_day(value), time(0), tzinfo=PARIS)
    return midnight.astimezone(UTC).replace(tzinfo=None)


def _date_fr(d: date) -> str:
    return d.strftime("%d/%m/%Y")


def _when_fr(at: str) -> str:
    t = local(parse_instant(at))
    return f"le {t:%d/%m/%Y} à {t:%H:%M} (heure de Paris)"


def _when_en(at: str) -> str:
    t = local(parse_instant(at))
    return f"on {t:%Y-%m-%d} at {t:%H:%M} (Paris time)"


# -- who ------------------------------------------------------------------------------------------
def who(actor: Mapping[str, Any], lang: str = "fr") -> str:
    """``Jean Martin, médecin (RPPS 10001234567)``: name, profession, RPPS."""
    fr = lang == "fr"
    name = actor.get("name") or ("un professionnel de santé" if fr else "a health professional")
    code = actor.get("profession")
    labels = PROFESSIONS.get(str(code)) if code else None
    parts = [str(name)]
    if labels:
        parts.append(labels[0] if fr else labels[1])
    elif code:
        parts.append(f"profession {code}")
    out = ", ".join(parts)
    if actor.get("rpps"):
        out += f" (RPPS {actor['rpps']})"
    return out


def structure(actor: Mapping[str, Any], lang: str = "fr") -> str | None:
    s = actor.get("structure")
    if not s:
        return None
    return f"structure {s}" if lang == "fr" else f"organisation {s}"


def _login(base_url: str | None, lang: str) -> str:
    if lang == "fr":
        where = f" : {base_url}" if base_url else "."
        return f"Connectez-vous à votre espace carnet pour voir le détail{where}"
    where = f": {base_url}" if base_url else "."
    return f"Log in to your carnet space to see the details{where}"


def _bilingual(fr: list[str], en: list[str]) -> str:
    return "\n".join([*fr, "", SIGNATURE_FR, "", "-- English --", "", *en, "", SIGNATURE_EN, ""])


# -- e-mails --------------------------------------------------------------------------------------
def email_text(kind: str, payload: Mapping[str, Any], *, base_url: str | None = None) -> Text:
    """Subject and plain-text body of a notification e-mail. No medical content, ever."""
    to = payload.get("to", Role.PATIENT.value)
    if kind == Kind.EMERGENCY_ACCESS:
        if to == Role.TREATING_PHYSICIAN:
            return _emergency_doctor(payload, base_url)
        return _emergency_patient(payload, base_url)
    if kind == Kind.ACCESS:
        return _access(payload, base_url)
    if kind == Kind.DIGEST:
        return _digest(payload, base_url)
    if kind == Kind.NEW_DOCUMENT:
        return _new_document(payload, base_url)
    raise ValueError(f"no e-mail for notifications of kind {kind!r}")


def _facts(payload: Mapping[str, Any], lang: str) -> list[str]:
    actor = payload.get("actor") or {}
    fr = lang == "fr"
    lines = [f"- par : {who(actor, lang)}" if fr else f"- by: {who(actor, lang)}"]
    s = structure(actor, lang)
    if s:
        lines.append(f"- {s}")
    lines.append(f"- {_when_fr(payload['at']) if fr else _when_en(payload['at'])}")
    return lines


def _emergency_patient(payload: Mapping[str, Any], base_url: str | None) -> Text:
    mode_fr, mode_en = MODES.get(str(payload.get("mode")), MODES["bris_de_glace"])
    fr = [
        "Bonjour,",
        "",
        f"Votre dossier médical partagé a été consulté {mode_fr} :",
        "",
        *_facts(payload, "fr"),
        "",
        "Ce mode d'accès est réservé aux situations d'urgence. Si cet accès vous paraît "
        "injustifié, signalez-le depuis votre espace.",
        _login(base_url, "fr"),
    ]
    en = [
        "Hello,",
        "",
        f"Your shared medical record was accessed {mode_en}:",
        "",
        *_facts(payload, "en"),
        "",
        "This mode of access is for emergencies only. If it seems unjustified to you, report it "
        "from your space.",
        _login(base_url, "en"),
    ]
    return Text("Accès en urgence à votre dossier médical partagé", _bilingual(fr, en))


def _emergency_doctor(payload: Mapping[str, Any], base_url: str | None) -> Text:
    mode_fr, mode_en = MODES.get(str(payload.get("mode")), MODES["bris_de_glace"])
    fr = [
        "Bonjour,",
        "",
        f"Le dossier médical partagé d'un patient dont vous êtes le médecin traitant a été "
        f"consulté {mode_fr} :",
        "",
        *_facts(payload, "fr"),
        "",
        "Pour savoir de quel patient il s'agit, connectez-vous à carnet"
        + (f" : {base_url}" if base_url else "."),
    ]
    en = [
        "Hello,",
        "",
        f"The shared medical record of a patient of whom you are the treating physician was "
        f"accessed {mode_en}:",
        "",
        *_facts(payload, "en"),
        "",
        "Log in to carnet to see which patient" + (f": {base_url}" if base_url else "."),
    ]
    return Text(
        "Accès en urgence au dossier médical partagé d'un de vos patients", _bilingual(fr, en)
    )


def _access(payload: Mapping[str, Any], base_url: str | None) -> Text:
    fr = [
        "Bonjour,",
        "",
        "Un professionnel de santé a consulté votre dossier médical partagé :",
        "",
        *_facts(payload, "fr"),
        "",
        _login(base_url, "fr"),
    ]
    en = [
        "Hello,",
        "",
        "A health professional accessed your shared medical record:",
        "",
        *_facts(payload, "en"),
        "",
        _login(base_url, "en"),
    ]
    return Text("Accès à votre dossier médical partagé", _bilingual(fr, en))


def digest_lines(accesses: Sequence[Mapping[str, Any]], lang: str) -> list[str]:
    """One paragraph per professional, in order of first access: who, where, when, how many."""
    fr = lang == "fr"
    by_actor: dict[str, list[Mapping[str, Any]]] = {}
    for a in accesses:
        actor = a.get("actor") or {}
        by_actor.setdefault(str(actor.get("id")), []).append(a)
    lines: list[str] = []
    for items in by_actor.values():
        actor = items[0].get("actor") or {}
        lines.append(f"- {who(actor, lang)}")
        s = structure(actor, lang)
        if s:
            lines.append(f"  {s}")
        times = ", ".join(f"{local(parse_instant(i['at'])):%H:%M}" for i in items)
        docs = len({i.get("doc_id") for i in items if i.get("doc_id")})
        n = len(items)
        if fr:
            what = f"{n} consultation{'s' if n > 1 else ''}"
            if docs:
                what += f" ({docs} document{'s' if docs > 1 else ''})"
            lines.append(f"  {what}, à {times}")
        else:
            what = f"{n} access{'es' if n > 1 else ''}"
            if docs:
                what += f" ({docs} document{'s' if docs > 1 else ''})"
            lines.append(f"  {what}, at {times}")
    return lines


def _digest(payload: Mapping[str, Any], base_url: str | None) -> Text:
    day = date.fromisoformat(str(payload["day"]))
    accesses = list(payload.get("accesses") or [])
    fr = [
        "Bonjour,",
        "",
        f"Voici les accès des professionnels de santé à votre dossier médical partagé le "
        f"{_date_fr(day)} (heure de Paris) :",
        "",
        *digest_lines(accesses, "fr"),
        "",
        _login(base_url, "fr"),
    ]
    en = [
        "Hello,",
        "",
        f"These are the health professionals' accesses to your shared medical record on "
        f"{day.isoformat()} (Paris time):",
        "",
        *digest_lines(accesses, "en"),
        "",
        _login(base_url, "en"),
    ]
    return Text(
        f"Accès à votre dossier médical partagé : résumé du {_date_fr(day)}", _bilingual(fr, en)
    )


def _new_document(payload: Mapping[str, Any], base_url: str | None) -> Text:
    fr = [
        "Bonjour,",
        "",
        f"Un nouveau document a été ajouté à votre dossier médical partagé "
        f"{_when_fr(payload['at'])}.",
        "",
        _login(base_url, "fr").replace("voir le détail", "le consulter"),
    ]
    en = [
        "Hello,",
        "",
        f"A new document was added to your shared medical record {_when_en(payload['at'])}.",
        "",
        _login(base_url, "en").replace("see the details", "read it"),
    ]
    return Text("Nouveau document dans votre dossier médical partagé", _bilingual(fr, en))


# -- portal ---------------------------------------------------------------------------------------
def portal_text(kind: str, payload: Mapping[str, Any]) -> Text:
    """Title and body of a portal entry (French): read after logging in, so it may name the
    document."""
    actor = payload.get("actor") or {}
    s = structure(actor, "fr")
    by = who(actor, "fr") + (f", {s}" if s else "")
    title = payload.get("title")
    doc = f" : « {title} »" if title else (" : un document" if payload.get("doc_id") else "")
    when = _when_fr(payload["at"]) if payload.get("at") else ""
    if kind == Kind.EMERGENCY_ACCESS:
        mode_fr = MODES.get(str(payload.get("mode")), MODES["bris_de_glace"])[0]
        if payload.get("to") == Role.TREATING_PHYSICIAN:
            return Text(
                "Accès en urgence au dossier d'un de vos patients",
                f"Le dossier {payload.get('patient', '')} a été consulté {mode_fr} par {by}, "
                f"{when}.",
            )
        return Text(
            "Accès en urgence à votre dossier",
            f"Votre dossier a été consulté {mode_fr} par {by}, {when}{doc}.",
        )
    if kind == Kind.ACCESS:
        return Text("Accès à votre dossier", f"{by} a consulté votre dossier {when}{doc}.")
    if kind == Kind.NEW_DOCUMENT:
        return Text(
            "Nouveau document",
            f"Un nouveau document a été ajouté à votre dossier {when}"
            + (f" : « {title} »" if title else "")
            + ".",
        )
    if kind == Kind.DIGEST:
        day = date.fromisoformat(str(payload["day"]))
        return Text(
            f"Accès du {_date_fr(day)}",
            "\n".join(digest_lines(list(payload.get("accesses") or []), "fr")),
        )
    raise ValueError(f"no portal entry for notifications of kind {kind!r}")
