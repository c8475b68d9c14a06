"""A sober A4 PDF for demo documents, written with fpdf2 and its core font Helvetica.

Core PDF fonts are encoded in WinAnsiEncoding (PDF 1.7 Annex D), i.e. Windows-1252, which holds
every French letter (é è à ç œ …) and the typographic apostrophe; anything outside it is
replaced by a close ASCII form, or ``?``. The output is not PDF/A (core fonts are not embedded):
fine for demos and tests, not for a production DMP feed. With ``creation_date`` the output is
byte-for-byte reproducible.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import datetime

from fpdf import FPDF

ENCODING = "windows-1252"
_REPLACEMENTS = {
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2015": "-",
    "\u2212": "-",
    "\u2032": "'",
    "\u2033": '"',
    "\u2044": "/",
    "\u202f": " ",  # narrow no-break space (French typography before : ; ! ?)
    "\u2007": " ",
    "\u2009": " ",
    "\u200b": "",
    "\u2264": "<=",
    "\u2265": ">=",
    "\u00b5": "\u00b5",
    "\u03bc": "\u00b5",  # Greek mu as micro sign (µmol/L)
}


def to_core_font_text(text: str) -> str:
    """``text`` reduced to what a core PDF font (Windows-1252) can show."""
    out: list[str] = []
    for char in text:
        char = _REPLACEMENTS.get(char, char)
        try:
            char.encode(ENCODING)
        except UnicodeEncodeError:
            decomposed = unicodedata.normalize("NFKD", char)
            base = "".join(c for c in decomposed if not unicodedata.combining(c))
            try:
                base.encode(ENCODING)
                char = base or "?"
            except UnicodeEncodeError:
                char = "?"
        out.append(char)
    return "".join(out)


def make_pdf(
    title: str,
    lines: Sequence[str],
    *,
    author: str,
    patient: str,
    creation_date: datetime | None = None,
) -> bytes:
    """A one-page A4 document (more pages if ``lines`` overflow): title, patient and author
    block, rule, then one paragraph per line."""
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.core_fonts_encoding = ENCODING
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    if creation_date is not None:
        pdf.set_creation_date(creation_date)
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_creator("carnet")
    pdf.set_producer("carnet (fpdf2)")
    pdf.set_lang("fr-FR")
    pdf.add_page()

    width = pdf.w - pdf.l_margin - pdf.r_margin
    pdf.set_font("helvetica", style="B", size=16)
    pdf.multi_cell(width, 8, to_core_font_text(title), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("helvetica", size=10)
    pdf.multi_cell(
        width, 5, to_core_font_text(f"Patient : {patient}"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.multi_cell(width, 5, to_core_font_text(f"Auteur : {author}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    y = pdf.get_y()
    pdf.set_draw_color(120, 120, 120)
    pdf.set_line_width(0.3)
    pdf.line(pdf.l_margin, y, pdf.w - pdf.r_margin, y)
    pdf.ln(5)
    pdf.set_font("helvetica", size=11)
    for line in lines:
        if line.strip():
            pdf.multi_cell(width, 6, to_core_font_text(line), new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.ln(4)
    return bytes(pdf.output())
