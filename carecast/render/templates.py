"""Jinja2 templates in a sandbox, strict about undefined variables.

Files live in the templates folder as `<name>.<part>.j2`, with optional locale
variants `<name>.<part>.<locale>.j2` (e.g. `welcome.email.html.fr.j2`):

    email.subject   the subject line (one line)
    email.html      the HTML part (autoescaped)
    email.txt       the plain-text part
    sms             the SMS body
    voice           the script read out on a call

A missing variable is an error naming the template file and line, never a
blank in a customer's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment


class TemplateError(Exception):
    """A template is missing, malformed, or uses a variable the context lacks."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str | None


def locale_candidates(locale: str | None) -> list[str]:
    """`fr-CA` → ["fr-CA", "fr", ""]: most specific first, the default last."""
    if not locale:
        return [""]
    language = locale.replace("_", "-").split("-")[0]
    return list(dict.fromkeys([locale, language, ""]))


class TemplateRenderer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(str(directory)),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name) and ".html." in name,
            keep_trailing_newline=False,
        )

    def _find(self, name: str, part: str, locale: str | None, required: bool = True) -> str | None:
        for candidate in locale_candidates(locale):
            filename = f"{name}.{part}.{candidate}.j2" if candidate else f"{name}.{part}.j2"
            if (self.directory / filename).is_file():
                return filename
        if required:
            raise TemplateError(f"template {name}.{part}.j2 not found in {self.directory}")
        return None

    def render_part(self, name: str, part: str, context: dict[str, Any], locale: str | None = None) -> str:
        filename = self._find(name, part, locale)
        return self._render(filename, context)

    def _render(self, filename: str, context: dict[str, Any]) -> str:
        try:
            return self.env.get_template(filename).render(context).strip()
        except UndefinedError as exc:
            raise TemplateError(f"{self._where(filename, exc)}: {exc.message}") from None
        except TemplateSyntaxError as exc:
            raise TemplateError(f"{self.directory / filename}:{exc.lineno}: {exc.message}") from None
        except TemplateNotFound as exc:
            raise TemplateError(f"template {exc.name} not found in {self.directory}") from None

    def _where(self, filename: str, exc: BaseException) -> str:
        """The file and line of the failing expression, from Jinja's rewritten traceback."""
        path = str(self.directory / filename)
        lineno = None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == path:
                lineno = tb.tb_lineno
            tb = tb.tb_next
        return f"{path}:{lineno}" if lineno else path

    def render_email(self, name: str, context: dict[str, Any], locale: str | None = None) -> RenderedEmail:
        subject = self.render_part(name, "email.subject", context, locale)
        text = self.render_part(name, "email.txt", context, locale)
        html_file = self._find(name, "email.html", locale, required=False)
        html = self._render(html_file, context) if html_file else None
        return RenderedEmail(subject=" ".join(subject.split()), text=text, html=html)
