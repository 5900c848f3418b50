"""The ``delivery-time render`` admin command: stdin in, one sentence out, clear failures."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tms_server.admin.delivery_time_cmd import add_parser, main, run

ROOT = Path(__file__).resolve().parent.parent
PROMISE = {
    "earliest": "2026-03-05T07:00:00Z",
    "latest": "2026-03-06T17:00:00Z",
    "cutoff": "2026-03-04T13:00:00Z",
    "time_of_day": {"earliest": "2026-03-05T16:00:00Z", "latest": "2026-03-05T20:00:00Z"},
}


def invoke(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, *options: str
) -> tuple[int, str, str]:
    """Run the standalone command with ``stdin``; return (status, stdout, stderr)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    status = main(["delivery-time", "render", *options])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_renders_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A delivery_time object on stdin prints its English sentence in Stockholm time."""
    status, out, err = invoke(monkeypatch, capsys, json.dumps(PROMISE), "--now", "2026-03-04T10:00:00+01:00")
    assert (status, out, err) == (
        0,
        "Delivered between tomorrow and Friday, March 6, from 17:00 to 21:00, if ordered before 14:00\n",
        "",
    )


def test_locale_and_zone(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """--locale picks the language and --tz the zone the times are said in."""
    status, out, _ = invoke(
        monkeypatch,
        capsys,
        json.dumps(PROMISE),
        "--now",
        "2026-03-04T10:00:00+01:00",
        "--locale",
        "sv-SE",
        "--tz",
        "Europe/Helsinki",
    )
    assert (status, out) == (
        0,
        "Levereras mellan imorgon och fredag 6 mars, kl. 18:00–22:00, om du beställer före 15:00\n",
    )


def test_naive_now_is_recipient_wall_clock(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --now without offset is read in --tz: 13:30 Stockholm is before the 14:00 cutoff."""
    status, out, _ = invoke(monkeypatch, capsys, json.dumps(PROMISE), "--now", "2026-03-04T13:30")
    assert status == 0 and out.endswith(", if ordered before 14:00\n")


def test_everything_past_prints_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """When every date is past the command prints nothing and succeeds."""
    assert invoke(monkeypatch, capsys, json.dumps(PROMISE), "--now", "2026-03-07T10:00:00+01:00") == (
        0,
        "",
        "",
    )


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("{not json", "tms-admin: delivery-time render: stdin is not JSON: "),
        ("", "tms-admin: delivery-time render: stdin is not JSON: "),
        ("[1, 2]", "tms-admin: delivery-time render: delivery_time: expected object, got array"),
        (
            '{"interval": {"earliest": "x"}}',
            "tms-admin: delivery-time render: delivery_time.interval.earliest: expected integer",
        ),
        (
            '{"latest": "tomorrow"}',
            "tms-admin: delivery-time render: delivery_time.latest: expected RFC 3339 date-time",
        ),
    ],
)
def test_invalid_input_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, message: str
) -> None:
    """Bad JSON, a non-object or a bad field exit 1 with one clear line on stderr and nothing on stdout."""
    status, out, err = invoke(monkeypatch, capsys, stdin, "--now", "2026-03-04T10:00:00+01:00")
    assert (status, out) == (1, "")
    assert err.startswith(message) and err.count("\n") == 1


@pytest.mark.parametrize("options", [["--tz", "Mars/Olympus"], ["--now", "yesterday"]])
def test_bad_options_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], options: list[str]
) -> None:
    """An unknown zone or unparsable --now is an argparse usage error (exit 2)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("{}"))
    with pytest.raises(SystemExit) as exited:
        main(["delivery-time", "render", *options])
    assert exited.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_add_parser_wires_run_into_a_host_parser() -> None:
    """add_parser registers delivery-time render on another CLI with run as its handler and the defaults."""
    parser = argparse.ArgumentParser(prog="tms-admin")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args: Any = parser.parse_args(["delivery-time", "render"])
    assert args.func is run
    assert (str(args.tz), args.locale, args.now) == ("Europe/Stockholm", "en", None)


def test_module_runs_as_a_program() -> None:
    """``python -m tms_server.admin.delivery_time_cmd`` works end to end on real stdin and stdout."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tms_server.admin.delivery_time_cmd",
            "delivery-time",
            "render",
            "--now",
            "2026-03-04T10:00:00+01:00",
            "--locale",
            "de-DE",
        ],
        input='{"interval": {"earliest": "2", "latest": "7"}, "cutoff": "2026-03-04T13:00:00Z"}',
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert (completed.returncode, completed.stdout, completed.stderr) == (
        0,
        "Lieferung in 2-7 Werktagen, bei Bestellung vor 14:00 Uhr\n",
        "",
    )
