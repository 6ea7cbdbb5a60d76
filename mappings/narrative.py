"""Generated narratives (`text`, status `generated`): short XHTML summaries of the data."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from mappings.fhir_datatypes import JsonDict

_DIV_OPEN = '<div xmlns="http://www.w3.org/1999/xhtml">'


def generated_narrative(
    title: str, facts: Iterable[tuple[str, str | None]], lists: Iterable[tuple[str, list[str]]] = ()
) -> JsonDict:
    """A narrative with a title, label/value facts (None values skipped) and bulleted lists."""
    parts = [_DIV_OPEN, "<p><b>", escape(title), "</b></p>"]
    rows = [f"<li>{escape(label)}: {escape(value)}</li>" for label, value in facts if value]
    if rows:
        parts += ["<ul>", *rows, "</ul>"]
    for heading, items in lists:
        if items:
            parts += ["<p>", escape(heading), "</p><ul>"]
            parts += [f"<li>{escape(item)}</li>" for item in items]
            parts.append("</ul>")
    parts.append("</div>")
    return {"status": "generated", "div": "".join(parts)}
