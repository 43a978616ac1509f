"""Jinja2 templates in a sandbox, strict about undefined variables.

Files live in the templates folder as `<name>.<part>.j2`, with optional locale
variants `<name>.<part>.<locale>.j2` (e.g. `welcome.email.html.fr.j2`):

    email.subject   the subject line (one line)
    email.html      the HTML part (autoescaped)
    email.txt       the plain-text part
    sms             the SMS body
    voice           the script read out on a call

Files starting with `_` are partials for `{% include %}`. A missing variable is
an error naming the template file and line, never a blank in a customer's message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    DictLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.sandbox import SandboxedEnvironment, SecurityError

LOOKUP_MEMORY_SECONDS = 1.0
PARTS_BY_CHANNEL = {"email": ("email.subject", "email.txt"), "sms": ("sms",), "voice": ("voice",)}


class TemplateError(Exception):
    """A template is missing, malformed, or uses a variable the context lacks."""

    def __init__(
        self, message: str, path: Path | None = None, line: int | None = None, undefined: bool = False
    ) -> None:
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(f"{where}{message}")
        self.path, self.line, self.detail = path, line, message
        self.undefined = undefined  # a variable the context lacks (the data, not the template, may be short)


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


def _remembered(memory: dict, key: Any, look_up: Callable[[], Any]) -> Any:
    """`look_up()`, or its answer for `key` if it is less than LOOKUP_MEMORY_SECONDS old."""
    now = time.monotonic()
    remembered = memory.get(key)
    if remembered is not None and now - remembered[1] < LOOKUP_MEMORY_SECONDS:
        return remembered[0]
    answer = look_up()
    memory[key] = (answer, now)
    return answer


class TemplateRenderer:
    """Renders the templates of a folder, or of a deployed bundle (`files`: name -> source) named `directory`."""

    def __init__(self, directory: Path, files: Mapping[str, str] | None = None) -> None:
        self.directory = directory
        self.files = files
        self.env = SandboxedEnvironment(
            loader=DictLoader(dict(files)) if files is not None else FileSystemLoader(str(directory)),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name) and ".html." in name,
            keep_trailing_newline=False,
        )
        # Lookups remembered for a second: a page of a thousand messages looks once, and a
        # template file added, removed or edited is still noticed at once by a person.
        self._found: dict[tuple[str, str, str | None], tuple[str | None, float]] = {}
        self._loaded: dict[str, tuple[Template, float]] = {}

    def find(self, name: str, part: str, locale: str | None = None) -> str | None:
        """The file for a template part in the contact's locale, falling back to the default."""
        return _remembered(self._found, (name, part, locale), lambda: self._first_file(name, part, locale))

    def _first_file(self, name: str, part: str, locale: str | None) -> str | None:
        for candidate in locale_candidates(locale):
            filename = f"{name}.{part}.{candidate}.j2" if candidate else f"{name}.{part}.j2"
            if self._exists(filename):
                return filename
        return None

    def _exists(self, filename: str) -> bool:
        return filename in self.files if self.files is not None else (self.directory / filename).is_file()

    def variants(self, name: str, part: str) -> list[str]:
        """Every file of a part: the default and each locale variant."""
        default = f"{name}.{part}.j2"
        if self.files is not None:
            localized = sorted(f for f in self.files if f.startswith(f"{name}.{part}.") and f != default)
        else:
            localized = sorted(p.name for p in self.directory.glob(f"{name}.{part}.*.j2"))
        return ([default] if self._exists(default) else []) + localized

    def render_part(self, name: str, part: str, context: dict[str, Any], locale: str | None = None) -> str:
        filename = self.find(name, part, locale)
        if filename is None:
            raise TemplateError(f"template {name}.{part}.j2 not found in {self.directory}")
        return self.render_file(filename, context)

    def render_file(self, filename: str, context: dict[str, Any]) -> str:
        try:
            # Jinja checks the file's modification time on every get_template.
            template = _remembered(self._loaded, filename, lambda: self._load(filename))
            return template.render(context).strip()
        except UndefinedError as exc:
            path, line = self._where(exc)
            raise TemplateError(exc.message, path or self.directory / filename, line, undefined=True) from None
        except TemplateSyntaxError as exc:
            path = Path(exc.filename) if exc.filename else self.directory / filename
            raise TemplateError(exc.message, path, exc.lineno) from None
        except TemplateNotFound as exc:
            raise TemplateError(f"template {exc.name} not found in {self.directory}") from None
        except SecurityError as exc:
            raise TemplateError(f"not allowed in a template: {exc}", self.directory / filename) from None

    def _load(self, filename: str) -> Template:
        template = self.env.get_template(filename)
        # A template's globals are a ChainMap over the environment's, which every render copied
        # key by key (two thirds of a short template's render); the same globals as a dict.
        template.globals = dict(template.globals)
        return template

    def _where(self, exc: BaseException) -> tuple[Path | None, int | None]:
        """The template file and line of the failing expression, from Jinja's rewritten traceback."""
        found: tuple[Path | None, int | None] = (None, None)
        tb = exc.__traceback__
        root = str(self.directory)
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if filename.startswith(root) and filename.endswith(".j2"):
                found = (Path(filename), tb.tb_lineno)
            tb = tb.tb_next
        return found

    def render_email(self, name: str, context: dict[str, Any], locale: str | None = None) -> RenderedEmail:
        subject = self.render_part(name, "email.subject", context, locale)
        text = self.render_part(name, "email.txt", context, locale)
        html_file = self.find(name, "email.html", locale)
        html = self.render_file(html_file, context) if html_file else None
        return RenderedEmail(subject=" ".join(subject.split()), text=text, html=html)
