"""Operators' mistakes get one clear line, never a traceback: bad flags, files that are not what they
should be, commands run from the wrong folder, pipes closed early, unknown options."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def run(argv: list[str], *, cwd: Path, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[str]:
    """A console script as an operator runs it, in ``cwd``, with a clean TMS_* environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TMS_")}
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=cwd, input=stdin.decode("latin-1"), capture_output=True,
        text=True, timeout=60, env={**clean, **env},
    )  # fmt: skip


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (["--workers", "1000"], "--workers: must be at least 1 and at most 64, got 1000"),
        (["--workers", "0"], "--workers: must be at least 1 and at most 64, got 0"),
        (["--port", "-1"], "--port: must be at least 0 and at most 65535, got -1"),
        (["--port", "http"], "--port: expected a whole number, got 'http'"),
    ],
)
def test_server_flags_are_checked_like_variables(tmp_path: Path, flag: list[str], message: str) -> None:
    """--workers 1000 (was accepted: 189 workers crash-looping), --workers 0 and --port -1 (an
    OverflowError traceback) are refused before anything starts, naming the flag."""
    result = run(["tms-server", *flag], cwd=tmp_path)
    assert result.returncode == 2 and f"tms-server: configuration error: {message}" in result.stderr
    no_traceback(result)
    assert not (tmp_path / ".tms-data").exists()


def test_admin_outside_the_project_creates_nothing_and_says_where_it_looked(tmp_path: Path) -> None:
    """Run from another folder, a command needing the database says which directory it looked in
    (absolute) and how to point it elsewhere, instead of creating a fresh 46 MB cluster there."""
    result = run(["tms-admin", "merchant", "list"], cwd=tmp_path)
    assert result.returncode == 1
    assert f"the embedded PostgreSQL in {tmp_path.resolve()}/.tms-data/pgdata does not exist" in result.stderr
    assert "TMS_DATA_DIR" in result.stderr and "TMS_DATABASE_URL" in result.stderr
    assert not (tmp_path / ".tms-data" / "pgdata").exists()
    config = run(["tms-admin", "config"], cwd=tmp_path)
    assert f"data_dir             {tmp_path.resolve()}/.tms-data" in config.stdout


def test_an_unreachable_database_url_is_named(tmp_path: Path) -> None:
    """A database URL nobody answers at is named in the message (without its password)."""
    url = "postgresql://tms:s3cret@127.0.0.1:9/tms"
    for argv in (["tms-admin", "merchant", "list"], ["tms-server"]):
        result = run(argv, cwd=tmp_path, TMS_DATABASE_URL=url, TMS_DB_TIMEOUT="1")
        assert result.returncode == 1, result.stderr
        assert "cannot reach postgresql://tms:***@127.0.0.1:9/tms" in result.stderr
        assert "s3cret" not in result.stderr
        no_traceback(result)


def test_unknown_options_are_named(tmp_path: Path) -> None:
    """tms-admin --bogus names --bogus (it said a COMMAND was required); a missing COMMAND or ACTION
    is said as such."""
    assert "unrecognized arguments: --bogus" in run(["tms-admin", "--bogus"], cwd=tmp_path).stderr
    assert "COMMAND is required" in run(["tms-admin"], cwd=tmp_path).stderr
    assert (
        "tms-admin merchant: error: ACTION is required" in run(["tms-admin", "merchant"], cwd=tmp_path).stderr
    )
    bogus = run(["tms-admin", "merchant", "list", "--bogus"], cwd=tmp_path)
    assert bogus.returncode == 2 and "unrecognized arguments: --bogus" in bogus.stderr


@pytest.mark.parametrize("value", ["0", "-5", "x"])
def test_list_limit_must_be_positive(tmp_path: Path, value: str) -> None:
    """reservations list --limit 0 and -5 returned every row; they are mistakes now (--all says all)."""
    result = run(["tms-admin", "reservations", "list", "--limit", value], cwd=tmp_path)
    assert result.returncode == 2 and "argument --limit" in result.stderr


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["catalog", "check", "BIN"], b"", "not UTF-8 text"),
        (["catalog", "load", "shop", "BIN"], b"", "cannot read"),
        (["reservations", "reconcile", "BIN"], b"", "not UTF-8 text"),
        (["delivery-time", "render"], b"[" * 10000 + b"]" * 10000, "nested too deeply"),
        (["delivery-time", "render"], b"\xff\xfe\x00", "stdin is not"),
        (["pickup-points", "import", "net", "BIN"], b"", "not UTF-8 text"),
        (["postal-areas", "import", "BIN"], b"", "not UTF-8 text"),
    ],
)
def test_files_that_are_not_what_they_should_be(
    tmp_path: Path, argv: list[str], stdin: bytes, message: str
) -> None:
    """A binary file or 10,000 nested brackets get a one-line message, not a UnicodeDecodeError or
    RecursionError traceback."""
    binary = tmp_path / "binary.dat"
    binary.write_bytes(bytes(range(256)) * 8)
    argv = [str(binary) if a == "BIN" else a for a in argv]
    result = run(["tms-admin", *argv], cwd=tmp_path, stdin=stdin)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    no_traceback(result)


def test_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    """tms-admin config | head -1 ends quietly (it printed "database error: [Errno 32] Broken pipe")."""
    pipeline = f"{BIN / 'tms-admin'} catalog example | head -1"
    result = subprocess.run(pipeline, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60)  # noqa: S602  # a fixed pipeline
    assert result.stdout.startswith("#") and result.stderr == ""


def test_a_taken_port_is_said_once_without_claiming_to_serve(tmp_path: Path) -> None:
    """A port in use: one message naming it, exit 1, and no "serving on" line before it."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        url = os.environ.get("TMS_TEST_DATABASE_URL", "")
        env = {"TMS_PORT": port, "TMS_LOG_FORMAT": "json"}
        if url:
            env["TMS_DATABASE_URL"] = url
        result = run(["tms-server", "--migrate"], cwd=tmp_path, **env)
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "serving on" not in result.stderr and "starting" not in result.stderr
    no_traceback(result)


def test_workers_on_a_taken_port_fail_once(tmp_path: Path) -> None:
    """--workers 2 on a taken port: one message and exit 1, no supervisor restarting workers forever."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run(["tms-server", "--workers", "2", "--migrate"], cwd=tmp_path, TMS_PORT=port)
    assert result.returncode == 1 and result.stderr.count("already in use") == 1, result.stderr[-2000:]
    assert "restarting" not in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a = " + "[" * 5000 + "]" * 5000, "nested too deeply to be a catalog"),
    ],
)
def test_catalog_nested_too_deeply(tmp_path: Path, text: str, message: str) -> None:
    """A catalog of 5,000 nested brackets is refused by name (it was a RecursionError traceback)."""
    path = tmp_path / "deep.toml"
    path.write_text(text)
    result = run(["tms-admin", "catalog", "check", str(path)], cwd=tmp_path)
    assert result.returncode == 1 and message in result.stderr
    no_traceback(result)
    replay = run(["tms-admin", "catalog", "check", str(path), "--replay", str(path)], cwd=tmp_path)
    assert replay.returncode == 1


def test_durations_have_an_upper_bound() -> None:
    """A nonce retention (or any duration) past ten years is refused at start: it overflowed PostgreSQL
    intervals (a 500 on /auth, every sweep failing)."""
    from tms_server.config import ConfigError, from_env

    for name in ("TMS_NONCE_RETENTION", "TMS_RESERVATION_TTL", "TMS_RETENTION_EXPIRED", "TMS_SWEEP_INTERVAL"):
        with pytest.raises(ConfigError, match=name):
            from_env({name: "1000000000000"})


def test_passwords_in_database_urls_are_hidden() -> None:
    """In the user part or in the query string, a database password never reaches a message."""
    from tms_server.config import from_env

    for url in ("postgresql://tms:hunter2@db/tms", "postgresql://db/tms?sslmode=require&password=hunter2"):
        where = from_env({"TMS_DATABASE_URL": url}).where()
        assert "hunter2" not in where and "***" in where
