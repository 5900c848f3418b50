"""``tms-admin kss-check``: every check passes against our server, and each typical flaw of another
vendor's server is caught by the check meant for it (with a non-zero exit status)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import asyncpg
import pytest

from tests.fake_tms import IDENTIFIER, KEY, FakeTMS
from tests.kss import create_merchant
from tests.server_process import ServerProcess
from tms_server import kss_check


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tms_server.admin.cli", "kss-check", *args],
        capture_output=True, text=True, timeout=120, input=stdin,
    )  # fmt: skip


def _statuses(results: list[dict[str, Any]]) -> dict[str, str]:
    return {f"{r['group']}/{r['name']}": r["status"] for r in results}


EVERY_CHECK = {f"{group}/{name}" for group, name, _ in kss_check.CHECKS}


@pytest.fixture
def our_server(dsn: str, tmp_path: Path) -> Any:
    identifier = f"kss-check-{uuid.uuid4().hex[:8]}"
    merchant = asyncio.run(create_merchant(dsn, identifier))
    # Tokens of 10 s, so the tester can wait for one to expire (our tokens are signed with a key of
    # the server's own: an expired one cannot be forged).
    with ServerProcess(dsn, tmp_path / "server.log", TMS_TOKEN_TTL="10").start() as server:
        yield server, merchant


def test_every_check_passes_against_our_server(our_server: Any, dsn: str) -> None:
    server, merchant = our_server
    done = _cli(server.url, "--identifier", merchant.identifier, "--key", merchant.key, "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)
    assert set(_statuses(results)) == EVERY_CHECK
    assert {r["status"] for r in results} == {"PASS"}, [r for r in results if r["status"] != "PASS"]
    expired = next(r for r in results if r["name"] == "expired-token")
    assert expired["detail"].startswith("waited") and expired["ms"] > 10_000
    assert all(set(r) == {"group", "name", "status", "detail", "ms"} for r in results)
    # The text report: one line per check, then the summary; the key read from standard input.
    text = _cli(server.url, "--identifier", merchant.identifier, "--key", "-", "--only", "auth", "options",
                stdin=merchant.key + "\n")  # fmt: skip
    assert text.returncode == 0, text.stdout
    lines = text.stdout.strip().splitlines()
    groups = {k for k in EVERY_CHECK if k.split("/")[0] in ("auth", "options")}
    assert lines[-1] == f"{len(groups)} passed, 0 failed, 0 skipped"
    assert all(line.startswith("PASS ") for line in lines[:-1])


def test_no_reserve_creates_nothing_and_only_limits_the_groups(our_server: Any, dsn: str) -> None:
    server, merchant = our_server

    async def reservations() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval(
                "SELECT count(*) FROM shipments s JOIN merchants m ON m.id = s.merchant_id WHERE m.identifier = $1",
                merchant.identifier,
            ))  # fmt: skip
        finally:
            await conn.close()

    done = _cli(server.url, "--identifier", merchant.identifier, "--key", merchant.key, "--no-reserve",
                "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stdout
    statuses = _statuses(json.loads(done.stdout))
    assert statuses["read/get-unknown-404"] == "PASS"
    skipped = {k for k, v in statuses.items() if v == "SKIP"} - {"tokens/expired-token"}
    assert skipped == {k for k in EVERY_CHECK if k.split("/")[0] in kss_check.RESERVING | {"read"}} - {
        "read/get-unknown-404"
    }
    assert asyncio.run(reservations()) == 0
    only = _cli(server.url, "--identifier", merchant.identifier, "--key", merchant.key, "--only", "reserve",
                "update", "--format", "json")  # fmt: skip
    assert only.returncode == 0, only.stdout
    assert {k.split("/")[0] for k in _statuses(json.loads(only.stdout))} == {"reserve", "update"}
    assert asyncio.run(reservations()) == 2  # the reserved session and the 12 concurrent POSTs' one


def test_a_correct_foreign_server_passes() -> None:
    """The fake vendor server without flaws: the tester depends on nothing of ours."""
    with FakeTMS() as fake:
        results = asyncio.run(kss_check.run(fake.url, IDENTIFIER, KEY))
    failed = [r for r in results if r.status == "FAIL"]
    assert not failed, failed
    assert [r.name for r in results if r.status == "SKIP"] == ["expired-token"]


@pytest.mark.parametrize(
    ("flaw", "caught_by"),
    [
        ("no_location", "reserve/post-201-location"),
        ("put_unknown_400", "update/put-unknown-id-404"),
        ("token_never_expires", "auth/token-expires"),
        ("no_failure_reason", "options/wrong-types"),
        ("mixed_delivery_time", "options/request"),
        ("racy_reserve", "reserve/concurrent-posts"),
        ("ignores_expiry", "tokens/expired-token"),
        ("location_elsewhere", "reserve/post-201-location"),
    ],
)
def test_each_flaw_is_caught_by_its_check(flaw: str, caught_by: str) -> None:
    with FakeTMS(flaw) as fake:
        results = asyncio.run(kss_check.run(fake.url, IDENTIFIER, KEY))
    statuses = {f"{r.group}/{r.name}": r for r in results}
    assert statuses[caught_by].status == "FAIL", statuses[caught_by]
    assert statuses[caught_by].detail
    if flaw == "racy_reserve":  # the race only: sequential POSTs for one session still agree
        assert statuses["reserve/post-same-session"].status == "PASS"


def test_the_cli_fails_a_flawed_server_in_every_format(tmp_path: Path) -> None:
    with FakeTMS("put_unknown_400") as fake:
        text = _cli(fake.url, "--identifier", IDENTIFIER, "--key", KEY)
        junit = _cli(fake.url, "--identifier", IDENTIFIER, "--key", KEY, "--format", "junit",
                     "--output", str(tmp_path / "kss.xml"))  # fmt: skip
    assert text.returncode == 1 and junit.returncode == 1
    line = next(ln for ln in text.stdout.splitlines() if "update/put-unknown-id-404" in ln)
    assert line.startswith("FAIL ") and "expected 404" in line
    assert text.stdout.strip().splitlines()[-1].endswith("1 failed, 1 skipped")
    suite = ElementTree.parse(tmp_path / "kss.xml").getroot().find("testsuite")  # noqa: S314  # our own report
    assert suite is not None and suite.get("failures") == "1"
    case = suite.find("testcase[@name='put-unknown-id-404']")
    assert case is not None and case.get("classname") == "update" and case.find("failure") is not None


def test_operator_mistakes_get_one_line_answers(tmp_path: Path) -> None:
    bad_url = _cli("localhost:8080", "--identifier", "x", "--key", "k")
    assert bad_url.returncode == 1 and "http://" in bad_url.stderr
    missing = _cli(
        "http://127.0.0.1:1", "--identifier", "x", "--key", "k", "--request", str(tmp_path / "none.json")
    )
    assert missing.returncode == 1 and "none.json" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "bad.json").write_text("{not json")
    bad = _cli(
        "http://127.0.0.1:1", "--identifier", "x", "--key", "k", "--request", str(tmp_path / "bad.json")
    )
    assert bad.returncode == 1 and "not a JSON file" in bad.stderr
    nobody = _cli("http://127.0.0.1:1", "--identifier", "x", "--key", "k", "--only", "auth", "--timeout", "2")
    assert nobody.returncode == 1 and "no answer" in nobody.stdout and "Traceback" not in nobody.stderr


def test_hostile_answers_are_findings_not_crashes(tmp_path: Path) -> None:
    """Line breaks and terminal escapes in a server's ids stay inside their report line, the JUnit
    report stays XML, and ``"addons": null`` is read as no add-ons."""
    with FakeTMS("hostile_ids") as fake:
        text = _cli(fake.url, "--identifier", IDENTIFIER, "--key", KEY)
        junit = _cli(fake.url, "--identifier", IDENTIFIER, "--key", KEY, "--format", "junit",
                     "--output", str(tmp_path / "kss.xml"))  # fmt: skip
    assert "Traceback" not in text.stderr + junit.stderr
    lines = text.stdout.strip().splitlines()
    assert all(line.startswith(("PASS ", "FAIL ", "SKIP ")) for line in lines[:-1]), lines
    assert "\x1b" not in text.stdout and "PASS everything/fine" not in lines
    ElementTree.parse(tmp_path / "kss.xml")  # noqa: S314  # our own report; raises when not XML


def test_a_prerequisite_outside_only_is_reported_when_it_fails() -> None:
    """``--only reserve`` against a server that refuses the credentials must not pass by skipping."""
    with FakeTMS() as fake:
        done = _cli(fake.url, "--identifier", IDENTIFIER, "--key", "wrong-key", "--only", "reserve")
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith("FAIL auth/digest-upper-hex")
