"""Markdown to HTML for the response preview and the guidelines: rendered on the server, then sanitized."""

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "del", "sup", "sub",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}
MAX_CHARS = 200_000


def _converter() -> markdown.Markdown:
    converter = markdown.Markdown(
        extensions=["fenced_code", "nl2br", "sane_lists", "tables"],  # nl2br: line breaks show as a chat shows them
        extension_configs={"tables": {"use_align_attribute": True}},  # no style="": the CSP forbids inline styles
    )
    # HTML in the text is shown as text, the way a chat window shows a model's answer, rather than passed on.
    converter.preprocessors.deregister("html_block")
    converter.inlinePatterns.deregister("html")
    return converter


def render_markdown(text: str) -> SafeString:
    """Sanitized HTML for `text`; raw HTML in it is escaped, and only the tags and URL schemes above survive."""
    html = _converter().convert(text[:MAX_CHARS])
    cleaned = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    # mark_safe is right here and only here: nh3 has just removed every tag, attribute and URL scheme outside
    # the allow-lists (no script, no event handlers, no javascript: links), so the result cannot run code.
    return mark_safe(cleaned)  # noqa: S308 - reviewed: nh3 output
