"""Build small CDA R2 structured documents ("niveau 3") for demo data.

Implements HL7 CDA R2 structuredBody sections with narrative blocks (``<text>`` with
``<paragraph>`` and ``<table>``, CDA R2 §4.3.5) and, for results, ``observation`` entries
whose ``text/reference`` points at their narrative row (CDA R2 §4.3.7), under the French header
of :mod:`carnet.cda.level1` (ANS CI-SIS "Structuration Minimale").

The documents claim no CI-SIS content model unless the caller passes its templateId: a demo
biology report does not implement the whole of XD-LAB, so by default it is a "document non
référencé IHE ou CI-SIS" and :func:`carnet.cda.header.parse_header` gives it the DMP formatCode
``urn:asipSante:modelesHorsProfils:2011``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from carnet.cda.header import LOINC_OID, CdaError, format_hl7_ts
from carnet.cda.level1 import XSI_NS, Level1Meta, header_element, serialize, sub

INTERPRETATION_OID = "2.16.840.1.113883.5.83"  # HL7 ObservationInterpretation
OBSERVATION_COLUMNS = ("Examen", "Résultat", "Unité", "Valeurs de référence", "Interprétation")
_NUMBER = re.compile(r"^[+-]?[0-9]+(?:[.,][0-9]+)?$")


@dataclass(frozen=True, slots=True)
class Observation:
    """One result: a row of the section's table and an ``observation`` entry."""

    code: str  # LOINC (or code_system_oid)
    display: str
    value: str  # as written; numeric values with a unit become a PQ
    unit: str | None = None  # UCUM
    reference_range: str | None = None  # as written, e.g. "0,40 - 4,00"
    interpretation: str | None = None  # N, L, H, A, ... (ObservationInterpretation)
    code_system_oid: str = LOINC_OID


@dataclass(frozen=True, slots=True)
class Section:
    """A section: title, optional code, paragraphs, a free table and/or observations."""

    title: str
    code: str | None = None  # LOINC section code, e.g. 18719-5
    code_display: str | None = None
    paragraphs: tuple[str, ...] = ()
    table_header: tuple[str, ...] = ()
    table_rows: tuple[tuple[str, ...], ...] = ()
    observations: tuple[Observation, ...] = ()
    code_system_oid: str = LOINC_OID


def _table(
    parent: etree._Element,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    row_ids: Sequence[str | None] = (),
) -> None:
    table = sub(parent, "table", border="1", width="100%")
    if header:
        tr = sub(sub(table, "thead"), "tr")
        for cell in header:
            sub(tr, "th", cell)
    body = sub(table, "tbody")
    for i, row in enumerate(rows):
        row_id = row_ids[i] if i < len(row_ids) else None
        tr = sub(body, "tr", **({"ID": row_id} if row_id else {}))
        for cell in row:
            sub(tr, "td", cell)


def _observation(section_el: etree._Element, obs: Observation, ref: str, when: str) -> None:
    ob = sub(sub(section_el, "entry"), "observation", classCode="OBS", moodCode="EVN")
    sub(ob, "code", code=obs.code, displayName=obs.display, codeSystem=obs.code_system_oid)
    sub(sub(ob, "text"), "reference", value=f"#{ref}")
    sub(ob, "statusCode", code="completed")
    sub(ob, "effectiveTime", value=when)
    value = sub(ob, "value")
    if obs.unit and _NUMBER.match(obs.value.strip()):
        value.set(f"{{{XSI_NS}}}type", "PQ")
        value.set("value", obs.value.strip().replace(",", "."))
        value.set("unit", obs.unit)
    else:
        value.set(f"{{{XSI_NS}}}type", "ST")
        value.text = obs.value + (f" {obs.unit}" if obs.unit else "")
    if obs.interpretation:
        sub(ob, "interpretationCode", code=obs.interpretation, codeSystem=INTERPRETATION_OID)
    if obs.reference_range:
        sub(sub(sub(ob, "referenceRange"), "observationRange"), "text", obs.reference_range)


def build_level3(
    meta: Level1Meta, sections: Sequence[Section], *, template_ids: Sequence[str] = ()
) -> bytes:
    """A CDA R2 document with a structuredBody made of ``sections``.

    ``template_ids`` are added after the ANS header templates: pass a content model's
    templateId only when the sections really follow that model.
    """
    if not sections:
        raise CdaError("a structuredBody needs at least one section")
    doc = header_element(meta, template_ids=template_ids)
    body = sub(sub(doc, "component"), "structuredBody")
    when = format_hl7_ts(meta.service_start)
    for s_index, section in enumerate(sections, 1):
        el = sub(sub(body, "component"), "section")
        if section.code:
            attrs = {"code": section.code}
            if section.code_display:
                attrs["displayName"] = section.code_display
            attrs["codeSystem"] = section.code_system_oid
            sub(el, "code", **attrs)
        sub(el, "title", section.title)
        text = sub(el, "text")
        for paragraph in section.paragraphs:
            sub(text, "paragraph", paragraph)
        if section.table_rows or section.table_header:
            _table(text, section.table_header, section.table_rows)
        refs = [f"s{s_index}-o{o_index}" for o_index in range(1, len(section.observations) + 1)]
        if section.observations:
            rows = [
                (o.display, o.value, o.unit or "", o.reference_range or "", o.interpretation or "")
                for o in section.observations
            ]
            _table(text, OBSERVATION_COLUMNS, rows, refs)
        for obs, ref in zip(section.observations, refs, strict=True):
            _observation(el, obs, ref, when)
    return serialize(doc)
