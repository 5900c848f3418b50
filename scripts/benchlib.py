"""Load generation and measurement for scripts/bench: a keep-alive HTTP/1.1 client on raw asyncio
streams (saturating or paced), wrk when installed, and small statistics helpers."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BodyFactory = Callable[[int], bytes]


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

    @property
    def rps(self) -> float:
        """Requests per second (completed, any status)."""
        return self.requests / self.seconds if self.seconds else 0.0

    def finish(self) -> Result:
        """Compute percentiles from the recorded latencies."""
        if self.latencies:
            data = sorted(self.latencies)
            self.p50_ms = data[len(data) // 2] * 1000
            self.p99_ms = data[min(len(data) - 1, int(len(data) * 0.99))] * 1000
        return self


def request_bytes(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One HTTP/1.1 request with a body."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    body = await reader.readexactly(int(m.group(1))) if m else b""
    return status, body


async def run_load(
    name: str,
    port: int,
    make_request: Callable[[int], bytes],
    *,
    connections: int,
    duration: float,
    rate: float | None = None,
    expect: int = 200,
) -> Result:
    """Drive ``make_request(i)`` at the server: as fast as possible, or paced at ``rate`` per second
    (latency then counts from the scheduled send time, so a stall is not hidden)."""
    result = Result(name)
    counter = iter(range(10**12))
    start = time.perf_counter()
    stop_at = start + duration
    hard_stop = stop_at + duration  # an overloaded paced run stops too; what it could not send is counted
    interval = connections / rate if rate else 0.0

    async def worker(k: int) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            result.errors += 1
            return
        next_send = start + (k * interval / connections if rate else 0.0)
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
                    if scheduled < stop_at:
                        result.missed += 1 + int((stop_at - scheduled) / interval)  # never sent: overload
                    break
                writer.write(make_request(next(counter)))
                status, _ = await _read_response(reader)
                result.latencies.append(time.perf_counter() - scheduled)
                result.requests += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status != expect:
                    result.errors += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(k) for k in range(connections)))
    result.seconds = time.perf_counter() - start
    return result.finish()


def wrk_available() -> bool:
    """Whether Debian's wrk is installed."""
    return shutil.which("wrk") is not None


def run_wrk(
    name: str, url: str, body: bytes, headers: dict[str, str], *, connections: int, duration: float
) -> Result:
    """A saturating POST run with wrk (1 thread, so the server keeps the other core)."""
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        script = Path(tmp) / "post.lua"
        hdrs = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
        script.write_text(
            f'wrk.method = "POST"\nlocal f = io.open("{body_file}", "rb")\nwrk.body = f:read("*all")\nf:close()\n{hdrs}'
        )
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--latency", "-s", str(script), url],
            capture_output=True, text=True, timeout=duration + 60, check=True,
        )  # fmt: skip
    return parse_wrk(name, out.stdout, duration)


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(name: str, text: str, duration: float) -> Result:
    """Requests/s, p50/p99 and errors (socket errors and non-2xx) from wrk --latency output."""
    res = Result(name, seconds=duration)
    res.requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    res.seconds = res.requests / float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    res.p50_ms = _ms(re.search(r"\s50%\s+(\S+)", text).group(1))  # type: ignore[union-attr]
    res.p99_ms = _ms(re.search(r"\s99%\s+(\S+)", text).group(1))  # type: ignore[union-attr]
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    res.errors = (sum(int(g) for g in socket_errors.groups()) if socket_errors else 0) + (
        int(non2xx.group(1)) if non2xx else 0
    )
    return res


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    data = sorted(values)
    mid = len(data) // 2
    return data[mid] if len(data) % 2 else (data[mid - 1] + data[mid]) / 2
