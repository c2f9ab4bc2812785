"""Leftover template placeholders in a pair's text, in the syntaxes people actually leave behind.

Pure (no ORM): `find_placeholders(text)` returns what it found, where, in order. It flags `{name}`,
`{{ name }}`, `${NAME}`, `%(name)s`, `<<NAME>>`, `[NAME]` / `[Your Name]`, `<your name here>` / `<NAME>`,
"Lorem ipsum" and "TODO", and keeps quiet about the same characters used for something else:

- code: fenced blocks (``` or ~~~), inline `code`, <code>/<pre> elements, Python f-strings and
  "...".format() / "..." % (...) on the line, an identifier right before a brace (`f{x}`, `arr[i]`, `List<T>`);
- maths: $...$ (pandoc's rule: no space inside the dollars, no digit after the closing one, so "$5 and $10"
  stays prose), $$...$$, \\(...\\), \\[...\\], \\begin{env}...\\end{env}, and LaTeX arguments outside them
  (`\\frac{a}{b}`, `x^{2}`, `a_{ij}`); a braced word must be two characters or more (`{x}`, `{1, 2}` are sets);
- JSON and other structure: only a bare name (letters, digits, `_`, `.`, `-`, a few words) counts as a
  placeholder, so `{"a": 1}`, `{}`, `[0, 1]`, `[1]`, `[x]`, `<br>`, `<div class="x">`, `<https://...>` do not;
- square and angle brackets hold many things, so they count only when the words say "fill me in": a word
  like name, date, company, your, insert (PLACEHOLDER_WORDS), an UPPER_SNAKE name (`[API_KEY]`), or XXX;
  never a markdown link or reference (`[text](url)`, `[text][1]`, `[1]: url`), an image, a footnote, an
  HTML tag name (`<TITLE>`), or a single lower-case word in angle brackets (`git clone <url>`, XML);
- "TODO" only in capitals as a whole word, and not "TODO list", "TODO app", "TODO comment" (a thing, not a
  note to self); "todo", "todos", "to do list" never. "Lorem ipsum" in any case, as two whole words.
"""

import re
from dataclasses import dataclass

MAX_FOUND = 20  # per text


@dataclass(frozen=True)
class Placeholder:
    text: str  # as written, e.g. "{{ name }}"
    start: int  # offset in the text
    line: int  # 1-based


PLACEHOLDER_WORDS = frozenset({
    "name", "names", "firstname", "lastname", "fullname", "username", "user", "date", "company", "organization",
    "organisation", "business", "brand", "address", "email", "phone", "city", "country", "product", "title", "topic",
    "insert", "your", "client", "customer", "recipient", "sender", "position", "link", "url", "website", "amount",
    "price", "location", "team", "manager", "signature", "placeholder", "author",
})  # fmt: skip
HTML_TAGS_THAT_ARE_WORDS = frozenset({"address", "title", "link"})  # <TITLE> is old HTML, not a leftover

# What is masked (replaced by spaces, so offsets and lines stay) before looking, in this order: fenced code
# blocks, inline code spans, then these; each is tried only when its first character is in the text.
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})(.*)$", re.MULTILINE)
_BACKTICKS = re.compile(r"`+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
# Delimited code and maths: an opener, and the closer it names (found with str.find: no regex backtracking).
_OPENERS = re.compile(r"\\\[|\\\(|\\begin\{([^}\n]+)\}|<(code|pre|kbd|samp|script|style)\b[^>\n]*>")
# $$...$$, and $x^{2}$ but not "$5 and $10" (no space inside the dollars, no digit after the closing one)
_DOLLAR_MATHS = re.compile(r"\$\$[^$]+\$\$|(?<![\\$\w])\$(?![\s$])[^$\n]*?(?<![\s\\])\$(?!\d)")

_NAME = r"[A-Za-z_][\w.\-]*(?:[ \t]+[\w.\-]+){0,3}"  # user_name, user.name, first-name, your name
_TODO_THINGS = r"lists?|apps?|applications?|items?|comments?|markers?|tags?|trackers?|managers?"
# (kind, a substring the text must have, pattern) in priority order: a match overlapping an earlier one is skipped.
_SYNTAXES = [
    ("chevrons", "<<", re.compile(r"(?<!<)<<(?=[A-Za-z_])[\w .'\-]{0,58}(?<! )>>(?!>)")),
    ("double", "{{", re.compile(r"\{\{\{?[ \t]*[#/^>&.]?[ \t]*" + _NAME + r"[ \t]*(?:\|[^{}\n]{0,40})?\}\}\}?")),
    ("dollar", "${", re.compile(r"(?<![\\$])\$\{[ \t]*[A-Za-z_][\w.]*[ \t]*\}(?!\$)")),
    ("percent", "%(", re.compile(r"(?<!%)%\([A-Za-z_]\w*\)[#0 +\-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")),
    ("single", "{", re.compile(r"\{[ \t]*(" + _NAME + r")[ \t]*\}")),
    ("square", "[", re.compile(r"\[([^\[\]\n]{1,60})\]")),
    ("angle", "<", re.compile(r"<([^<>\n]{1,60})>")),
    ("lorem", "", re.compile(r"\blorem\s+ipsum\b", re.IGNORECASE)),
    ("todo", "TODO", re.compile(r"\bTODO\b(?![ \-]?(?:" + _TODO_THINGS + r")\b)")),
]
_LATEX_COMMAND_BEFORE = re.compile(r"\\[A-Za-z]+\*?$")
# An interpolated string still open before the brace: Python f"...", C# $"...", Rust format!("...")
_F_STRING_OPEN = re.compile(r"(?:(?<![\w'\"])(?:[rRbB]?[fF][rRbB]?|\$@?|@\$)|\w!\(\s*)(['\"])(?:(?!\1).)*$")
_FORMATTED_AFTER = re.compile(r"""[^\n]*?['"]\s*(?:\.format(?:_map)?\(|%\s*[({\w])""")
_BRACKET_TEXT = re.compile(r"[\w .'’/&\-]+")
_UPPER_SNAKE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_EDITORIAL = re.compile(r"(?i:the|a|an|his|her|their|its|our|this|that|these|those)\s")
_XXX = re.compile(r"(?i:x{3,})")


def find_placeholders(text: str) -> list[Placeholder]:
    """The leftover placeholders in a text (a prompt, response, system prompt or earlier turn), in order.

    At most MAX_FOUND, the first ones: a text full of them needs fixing, not a list of thousands.
    """
    lorem = "lorem" in text.lower()
    syntaxes = [(kind, pattern) for kind, needle, pattern in _SYNTAXES if (needle in text if needle else lorem)]
    if not syntaxes:
        return []
    prose = _mask_code_and_maths(text)
    taken = bytearray(len(text))  # 1 where an earlier (higher priority) match was reported
    spans: list[tuple[int, int]] = []
    for kind, pattern in syntaxes:
        for match in pattern.finditer(prose):
            start, end = match.span()
            if any(taken[start:end]) or not _IS_PLACEHOLDER[kind](prose, match):
                continue
            taken[start:end] = b"\x01" * (end - start)
            spans.append((start, end))
    return [
        Placeholder(text=text[start:end], start=start, line=text.count("\n", 0, start) + 1)
        for start, end in sorted(spans)[:MAX_FOUND]
    ]


def _mask_code_and_maths(text: str) -> str:
    if "```" in text or "~~~" in text:
        text = _mask_fences(text)
    if "`" in text:
        text = _mask_inline_code(text)
    if "\\" in text or "<" in text:
        text = _mask_delimited(text)
    if "$" in text:
        text = _DOLLAR_MATHS.sub(lambda match: _blank(match.group(0)), text)
    return text


def _mask_fences(text: str) -> str:
    """Blank fenced code blocks: from an opening fence line to a closing one (same character, at least as
    long, nothing after it) or the end of the text."""
    spans, opening = [], None
    for fence in _FENCE.finditer(text):
        marks, rest = fence.group(1), fence.group(2)
        if opening is None:
            if not (marks[0] == "`" and "`" in rest):  # else it is inline code on one line
                opening = fence
        elif marks[0] == opening.group(1)[0] and len(marks) >= len(opening.group(1)) and not rest.strip():
            spans.append((opening.start(), fence.end()))
            opening = None
    if opening is not None:
        spans.append((opening.start(), len(text)))
    return _blank_spans(text, spans)


def _mask_inline_code(text: str) -> str:
    """Blank code spans: a run of backticks up to the next run of the same length, within one paragraph."""
    spans, runs, n = [], [(m.start(), m.end()) for m in _BACKTICKS.finditer(text)], 0
    while n < len(runs):
        start, end = runs[n]
        closing = next((k for k in range(n + 1, len(runs)) if runs[k][1] - runs[k][0] == end - start), None)
        if closing is None or _BLANK_LINE.search(text, end, runs[closing][0]):
            n += 1
            continue
        spans.append((start, runs[closing][1]))
        n = closing + 1
    return _blank_spans(text, spans)


def _mask_delimited(text: str) -> str:
    r"""Blank \[...\], \(...\), \begin{env}...\end{env} and <code>...</code> (and pre, kbd, samp, script, style)."""
    spans, end, unclosed = [], 0, set()
    for opener in _OPENERS.finditer(text):
        if opener.start() < end:
            continue  # inside the span just blanked
        env, tag = opener.group(1), opener.group(2)
        closer = (
            f"\\end{{{env}}}" if env else f"</{tag}>" if tag else opener.group(0).replace("[", "]").replace("(", ")")
        )
        at = -1 if closer in unclosed else text.find(closer, opener.end())
        if at < 0:
            unclosed.add(closer)  # no later opener of this kind can be closed either
            continue
        end = at + len(closer)
        spans.append((opener.start(), end))
    return _blank_spans(text, spans)


def _blank_spans(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    parts, last = [], 0
    for start, end in spans:
        parts += [text[last:start], _blank(text[start:end])]
        last = end
    return "".join([*parts, text[last:]])


def _blank(text: str) -> str:
    return " " * len(text) if "\n" not in text else re.sub(r"[^\n]", " ", text)


def _before(prose: str, match: re.Match[str]) -> str:
    return prose[match.start() - 1] if match.start() else ""


def _in_code_string(prose: str, match: re.Match[str]) -> bool:
    """Inside an f-string (or C# $"...", Rust format!("...")), or a string that .format() or % fills in."""
    line_start = prose.rfind("\n", 0, match.start()) + 1
    return bool(_F_STRING_OPEN.search(prose, line_start, match.start()) or _FORMATTED_AFTER.match(prose, match.end()))


def _latex_argument(prose: str, match: re.Match[str]) -> bool:
    line_start = prose.rfind("\n", 0, match.start()) + 1
    return _before(prose, match) in ("^", "_", "}", "]") or bool(
        _LATEX_COMMAND_BEFORE.search(prose, line_start, match.start())
    )


def _double(prose: str, match: re.Match[str]) -> bool:
    return not (_latex_argument(prose, match) or _in_code_string(prose, match))


def _single(prose: str, match: re.Match[str]) -> bool:
    name = match.group(1)
    if len(name) < 2 or _before(prose, match) in ("\\", "$", "#", "%", "@", "{") or _before(prose, match).isalnum():
        return False
    if prose[match.end() : match.end() + 1] in ("}", "^", "_"):
        return False
    return not (_latex_argument(prose, match) or _in_code_string(prose, match))


def _not_in_code_string(prose: str, match: re.Match[str]) -> bool:
    return not _in_code_string(prose, match)


def _fill_in_words(content: str) -> bool:
    """Words that ask to be replaced: a placeholder word, an UPPER_SNAKE name or XXX."""
    words = [word for word in re.split(r"[\s_.\-/&]+", content.lower()) if word]
    if _UPPER_SNAKE.fullmatch(content) or _XXX.fullmatch(content):
        return True
    return any(word.rstrip("'’s") in PLACEHOLDER_WORDS or word in PLACEHOLDER_WORDS for word in words) or (
        len(words) > 1 and "here" in words
    )


def _square(prose: str, match: re.Match[str]) -> bool:
    content = match.group(1).strip()
    before, after = _before(prose, match), prose[match.end() : match.end() + 1]
    if before in ("!", "\\", "]") or before.isalnum() or before == "_" or after in ("(", "[", ":"):
        return False  # an image, an escaped bracket, an index (arr[name]), a link, a reference, its definition
    if _EDITORIAL.match(content):
        return False  # words put into a quotation: "we [the team] agreed"
    return bool(content) and _BRACKET_TEXT.fullmatch(content) is not None and _fill_in_words(content)


def _angle(prose: str, match: re.Match[str]) -> bool:
    content = match.group(1)
    before = _before(prose, match)
    if before.isalnum() or before == "_" or content != content.strip() or not _BRACKET_TEXT.fullmatch(content):
        return False  # a generic type (List<T>), a comparison (a < b > c), a tag with attributes, a URL
    if content.lower() in HTML_TAGS_THAT_ARE_WORDS:
        return False
    # A single lower-case word is a command's usage (`git clone <url>`) or an XML tag, not a leftover.
    return (" " in content or content.upper() == content) and _fill_in_words(content)


_IS_PLACEHOLDER = {
    "chevrons": lambda prose, match: True,
    "double": _double,
    "dollar": _not_in_code_string,
    "percent": _not_in_code_string,
    "single": _single,
    "square": _square,
    "angle": _angle,
    "lorem": lambda prose, match: True,
    "todo": lambda prose, match: True,
}
