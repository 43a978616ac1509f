"""Reports what the package index says about the versions constraints.txt pins (`make audit`).

Machines of this kind reach the package index and nothing else: neither osv.dev nor
PyPI's per-release JSON, which pip-audit needs, answer from here (both tried). What the
index does answer is each project's JSON: its newest release, the advisories known
against that release, and which releases were yanked and why. So for each pin this
reports:

- `advisory`: the pin is the newest release and an advisory names it;
- `yanked`: the pinned release was withdrawn by its authors (the reason, if given);
- `behind`: a newer release exists, with the advisories against the newest (an older
  pin may have more, which only a full advisory database would show: renew the pins).

It never fails the build (advisories appear upstream without any change here); it
exits 0 and prints the report, or says which projects it could not ask.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

INDEX = "https://pypi.org/pypi"
TIMEOUT_SECONDS = 20


@dataclass
class Finding:
    project: str
    pinned: str
    newest: str | None = None
    yanked: str | None = None  # the reason, or "" when none was given
    advisories: list[str] = field(default_factory=list)
    unreachable: str | None = None
    unreached_index: bool = False  # no connection at all, as opposed to an answer about this one project

    @property
    def lines(self) -> list[str]:
        if self.unreachable:
            return [f"{self.project}=={self.pinned}: could not ask the index ({self.unreachable})"]
        found = []
        if self.yanked is not None:
            found.append(f"{self.project}=={self.pinned}: yanked" + (f" ({self.yanked})" if self.yanked else ""))
        if self.newest == self.pinned:
            found += [f"{self.project}=={self.pinned}: advisory {a}" for a in self.advisories]
        elif self.newest:
            against = f"; advisories against {self.newest}: {', '.join(self.advisories)}" if self.advisories else ""
            found.append(f"{self.project}=={self.pinned}: behind, {self.newest} is out{against}")
        return found


def pins(constraints: Path) -> list[tuple[str, str]]:
    """(project, version) of every `name==version` line."""
    found = []
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            found.append((name.strip(), version.split(";", 1)[0].strip()))
    return found


def ask(index: str, project: str, pinned: str) -> Finding:
    finding = Finding(project, pinned)
    try:
        with urllib.request.urlopen(f"{index}/{project}/json", timeout=TIMEOUT_SECONDS) as answer:
            data = json.load(answer)
        finding.newest = data["info"]["version"]
    except Exception as exc:  # noqa: BLE001 - whatever one answer does, the report goes on (a report, never a gate)
        finding.unreachable = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
        finding.unreached_index = isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError)
        return finding
    files = data.get("releases", {}).get(pinned) or []
    if files and all(f.get("yanked") for f in files):
        finding.yanked = files[0].get("yanked_reason") or ""
    for advisory in data.get("vulnerabilities") or []:
        fixed = ", ".join(advisory.get("fixed_in") or []) or "no fix yet"
        names = ", ".join([advisory["id"], *(advisory.get("aliases") or [])])
        finding.advisories.append(f"{names} (fixed in {fixed})")
    return finding


def audit(constraints: Path, index: str = INDEX) -> list[Finding]:
    """Every pin's finding; when the index does not answer the first, only that one (no point waiting on all)."""
    pinned = pins(constraints)
    if not pinned:
        return []
    first = ask(index, *pinned[0])
    if first.unreachable and first.unreached_index:
        print(f"audit: the index did not answer ({first.unreachable}); {len(pinned) - 1} other pin(s) not asked")
        return [first]
    with ThreadPoolExecutor(8) as pool:
        return [first, *pool.map(lambda pin: ask(index, *pin), pinned[1:])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("constraints", type=Path)
    parser.add_argument("--index", default=INDEX, help="the index's JSON API (default: %(default)s)")
    options = parser.parse_args(argv)
    findings = audit(options.constraints, options.index)
    lines = [line for finding in findings for line in finding.lines]
    for line in lines:
        print(line)
    print(f"audit: {len(findings)} pinned project(s) asked, {len(lines)} finding(s); this report never fails the build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
