"""HTML to plain text for scoring and display (Stack Exchange bodies, Discourse ``cooked`` posts).

:func:`html_to_text` parses with lxml's HTML parser (no network, comments and processing
instructions dropped), keeps paragraph and line breaks as newlines, drops scripts and styles,
and collapses other whitespace. Shared by the Stack Exchange and PostgreSQL connectors.
"""

from __future__ import annotations

import re
from typing import Any

import lxml.html

_PARAGRAPH_TAGS = frozenset(
    [
        "p",
        "div",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "dl",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "section",
        "article",
        "header",
        "footer",
        "figure",
    ]
)
_LINE_TAGS = frozenset(["br", "li", "tr", "dt", "dd"])
_DROP_TAGS = frozenset(["script", "style", "head", "title"])
# huge_tree lifts libxml2's nesting limit (256), which would silently drop the rest of a deeply
# nested body; the walk below is iterative and a body is bounded by MAX_ROW_BYTES.
_HTML_PARSER = lxml.html.HTMLParser(no_network=True, huge_tree=True, remove_comments=True, remove_pis=True)
_HTML_SPACE = re.compile(r"[ \t\r\n\f]+")


class _TextBuilder:
    """Collects text and line/paragraph breaks, collapsing HTML whitespace outside ``<pre>``."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending = 0  # newlines owed before the next text: 0, 1 (line) or 2 (paragraph)

    def brk(self, newlines: int) -> None:
        self.pending = max(self.pending, newlines)

    def add(self, text: str | None, pre: bool) -> None:
        if not text:
            return
        if not pre:
            text = _HTML_SPACE.sub(" ", text)
            at_line_start = self.pending or not self.parts or self.parts[-1].endswith("\n")
            if at_line_start or self.parts[-1].endswith(" "):
                text = text.lstrip(" ")
            if not text:
                return
        if self.pending:
            if self.parts:
                self._trim_end()
                self.parts.append("\n" * self.pending)
            self.pending = 0
        self.parts.append(text)

    def _trim_end(self) -> None:
        while self.parts and not self.parts[-1].strip():
            self.parts.pop()
        if self.parts:
            self.parts[-1] = self.parts[-1].rstrip()

    def text(self) -> str:
        self._trim_end()
        return "".join(self.parts).strip("\n")


def html_to_text(html: str | None) -> str:
    """Reduce a Stack Exchange post body (rendered HTML) to plain text.

    Tags are dropped and entities decoded; paragraphs and block elements are separated by a
    blank line, ``<br>``/list items/table rows start a new line, whitespace is collapsed
    except inside ``<pre>`` (code blocks keep their text and layout); link targets, images
    and scripts are dropped. Parsed by ``lxml.html`` (no network, no entity expansion).

    Args:
        html: the body, e.g. ``"<p>Hi &amp; bye</p>\\n<pre><code>x = 1\\n</code></pre>"``.

    Returns:
        the text, e.g. ``"Hi & bye\\n\\nx = 1"``; ``""`` for None or an empty body.
    """
    if not html or not html.strip():
        return ""
    root = lxml.html.fragment_fromstring(html, create_parent="div", parser=_HTML_PARSER)
    out = _TextBuilder()
    pre = 0
    dropped = 0
    stack: list[tuple[Any, bool]] = [(root, True)]  # (node, entering); explicit: no recursion limit
    while stack:
        el, entering = stack.pop()
        tag = el.tag.lower() if isinstance(el.tag, str) else None  # None: comment / processing instruction
        if entering and tag is not None:
            if tag in _DROP_TAGS:
                dropped += 1
            if tag in _PARAGRAPH_TAGS:
                out.brk(2)
            elif tag in _LINE_TAGS:
                out.brk(1)
            if tag == "pre":
                pre += 1
            if not dropped:
                out.add(el.text, pre > 0)
            stack.append((el, False))
            stack.extend((child, True) for child in reversed(el))
            continue
        if tag is not None:  # leaving an element
            if tag == "pre":
                pre -= 1
            if tag in _PARAGRAPH_TAGS:
                out.brk(2)
            elif tag in ("li", "tr", "dt", "dd"):
                out.brk(1)
            if tag in _DROP_TAGS:
                dropped -= 1
        if el is not root and not dropped:
            out.add(el.tail, pre > 0)
    return out.text()
