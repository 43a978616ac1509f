"""`make audit`: what the package index says about the pinned versions, against a fake index on 127.0.0.1."""

import importlib.util
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("ci_audit", ROOT / ".ci" / "audit.py")
audit = sys.modules["ci_audit"] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
spec.loader.exec_module(audit)

PROJECTS = {
    "jinja2": {"info": {"version": "3.1.6"}, "releases": {"3.1.6": [{"yanked": False}]},
               "vulnerabilities": [{"id": "PYSEC-1", "aliases": ["CVE-2099-1"], "fixed_in": []}]},
    "h11": {"info": {"version": "0.16.0"}, "releases": {"0.14.0": [{"yanked": False}]},
            "vulnerabilities": []},
    "oops": {"info": {"version": "2.0"}, "releases": {"1.0": [{"yanked": True, "yanked_reason": "broken"}]},
             "vulnerabilities": [{"id": "GHSA-x", "fixed_in": ["2.1"]}]},
}  # fmt: skip


class FakeIndex(BaseHTTPRequestHandler):
    def do_GET(self):
        project = self.path.strip("/").split("/")[0]
        body = json.dumps(PROJECTS[project]).encode() if project in PROJECTS else b"not here"
        self.send_response(200 if project in PROJECTS else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def index():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeIndex)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_report_names_advisories_yanked_pins_and_pins_behind(index, tmp_path, capsys):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("# pins\njinja2==3.1.6\nh11==0.14.0\noops==1.0 ; python_version >= '3.11'\nnowhere==1\n")
    assert audit.main([str(constraints), "--index", index]) == 0
    report = capsys.readouterr().out.splitlines()
    assert report == [
        "jinja2==3.1.6: advisory PYSEC-1, CVE-2099-1 (fixed in no fix yet)",
        "h11==0.14.0: behind, 0.16.0 is out",
        "oops==1.0: yanked (broken)",
        "oops==1.0: behind, 2.0 is out; advisories against 2.0: GHSA-x (fixed in 2.1)",
        "nowhere==1: could not ask the index (Not Found)",
        "audit: 4 pinned project(s) asked, 5 finding(s); this report never fails the build",
    ]


def test_an_index_that_does_not_answer_is_asked_once_and_said_so(tmp_path, capsys):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("jinja2==3.1.6\nh11==0.16.0\n")
    assert audit.main([str(constraints), "--index", "http://127.0.0.1:9"]) == 0
    report = capsys.readouterr().out.splitlines()
    assert report[0] == "audit: the index did not answer ([Errno 111] Connection refused); 1 other pin(s) not asked"
    assert report[1].startswith("jinja2==3.1.6: could not ask the index (")
