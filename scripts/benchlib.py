"""Load generation and measurement for scripts/bench: a keep-alive HTTP/1.1 client on raw asyncio
streams (saturating, or paced at a fixed rate), wrk when installed, and small statistics helpers.

Every run is bounded: it stops at its duration (a paced run that cannot keep up stops at twice that
and counts what it never sent), and wrk gets a hard timeout.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

RequestFactory = Callable[[int], bytes]


@dataclass
class Result:
    """What one load run measured."""

    name: str
    requests: int = 0
    errors: int = 0
    missed: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    p50_ms: float | None = None
    p99_ms: float | None = None
    tool: str = "asyncio"

    @property
    def rps(self) -> float:
        """Requests per second (completed, any status)."""
        return self.requests / self.seconds if self.seconds else 0.0

    def finish(self) -> Result:
        """Compute percentiles from the recorded latencies."""
        if self.latencies:
            data = sorted(self.latencies)
            self.p50_ms = percentile(data, 0.50) * 1000
            self.p99_ms = percentile(data, 0.99) * 1000
        return self


def request_bytes(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One HTTP/1.1 keep-alive request with a body."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if m is None:
        raise ValueError("response without Content-Length")
    await reader.readexactly(int(m.group(1)))
    return status


async def run_load(
    name: str,
    port: int,
    make_request: RequestFactory,
    *,
    connections: int,
    duration: float,
    rate: float | None = None,
    expect: int = 200,
) -> Result:
    """Drive ``make_request(i)`` at 127.0.0.1:``port``: as fast as possible, or paced at ``rate``
    requests/s in total. Paced latency counts from the scheduled send time, so a stall that delays
    later sends shows up in their latency instead of being hidden (no coordinated omission)."""
    result = Result(name)
    counter = iter(range(10**12))
    start = time.perf_counter()
    stop_at = start + duration
    hard_stop = stop_at + duration
    interval = connections / rate if rate else 0.0

    async def worker(k: int) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            result.errors += 1
            return
        next_send = start + k * interval / connections
        try:
            while True:
                if rate:
                    delay = next_send - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    scheduled, next_send = next_send, next_send + interval
                else:
                    scheduled = time.perf_counter()
                if scheduled >= stop_at or time.perf_counter() > hard_stop:
                    if scheduled < stop_at:  # overloaded: these were never sent
                        result.missed += 1 + int((stop_at - scheduled) / interval)
                    break
                writer.write(make_request(next(counter)))
                status = await _read_response(reader)
                result.latencies.append(time.perf_counter() - scheduled)
                result.requests += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status != expect:
                    result.errors += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            result.errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(k) for k in range(connections)))
    result.seconds = time.perf_counter() - start
    return result.finish()


def wrk_available() -> bool:
    """Whether wrk (Debian's package) is installed."""
    return shutil.which("wrk") is not None


def _lua_string(data: bytes) -> str:
    text = data.decode()
    level = 1
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


SEQ = b"@SEQ@"


def wrk_script(
    headers: dict[str, str], bodies: Sequence[bytes], tag: str = "", per_pass: bool = False
) -> str:
    """A wrk Lua script that POSTs ``bodies`` in turn; ``@SEQ@`` in a body becomes ``tag`` and a
    request counter, so every request can carry a value never sent before (a session id), or with
    ``per_pass`` the number of the pass through ``bodies``, so a body repeats within a pass as it was
    generated and never across passes (no answer cache gets what the workload would not give it)."""
    hdrs = "".join(
        f"wrk.headers[ {_lua_string(k.encode())} ] = {_lua_string(v.encode())}\n" for k, v in headers.items()
    )
    parts = [b.split(SEQ, 1) if SEQ in b else [b, b""] for b in bodies]
    pre = ",\n".join(_lua_string(p[0]) for p in parts)
    post = ",\n".join(_lua_string(p[1]) for p in parts)
    seq = SEQ in bodies[0]
    value = "math.floor((count - 1) / #pre)" if per_pass else "count"
    piece = f'pre[i] .. "{tag}" .. {value} .. post[i]' if seq else "pre[i]"
    return (
        f'wrk.method = "POST"\n{hdrs}local pre = {{\n{pre}\n}}\nlocal post = {{\n{post}\n}}\n'
        "local count = 0\nrequest = function()\n  count = count + 1\n  local i = (count - 1) % #pre + 1\n"
        f"  return wrk.format(nil, nil, nil, {piece})\nend\n"
    )


def run_wrk(
    name: str,
    url: str,
    headers: dict[str, str],
    bodies: Sequence[bytes],
    *,
    connections: int,
    duration: float,
    tag: str = "",
    per_pass: bool = False,
) -> Result:
    """A saturating POST run with wrk, one thread (the load generator gets one core)."""
    with tempfile.TemporaryDirectory(prefix="tms-bench-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(wrk_script(headers, bodies, tag, per_pass))
        secs = max(1, round(duration))
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{secs}s", "--timeout", "5s", "--latency", "-s", str(script), url],
            capture_output=True, text=True, timeout=secs + 60, check=True,
        )  # fmt: skip
    return parse_wrk(name, out.stdout)


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if m is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def _find(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    if m is None:
        raise ValueError(f"wrk output without {pattern!r}:\n{text}")
    return m.group(1)


def parse_wrk(name: str, text: str) -> Result:
    """Requests/s, p50/p99 and errors (socket errors and non-2xx answers) from ``wrk --latency``."""
    res = Result(name, tool="wrk")
    res.requests = int(_find(r"(\d+) requests in", text))
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", text))
    res.seconds = res.requests / rps if rps else 0.0
    res.p50_ms = _ms(_find(r"\s50%\s+(\S+)", text))
    res.p99_ms = _ms(_find(r"\s99%\s+(\S+)", text))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    res.errors = (sum(int(g) for g in sock.groups()) if sock else 0) + (int(non2xx.group(1)) if non2xx else 0)
    return res


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0..1) of non-empty, ascending ``ordered``."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    data = sorted(values)
    mid = len(data) // 2
    return data[mid] if len(data) % 2 else (data[mid - 1] + data[mid]) / 2
