"""The typed application keys: all app state is reached through these."""

from __future__ import annotations

from aiohttp import web

from tms_server.config import Config
from tms_server.db import Database
from tms_server.runtime import Runtime
from tms_server.web.metrics import Metrics
from tms_server.web.options import AnswerCache

CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)
RUNTIME = web.AppKey("runtime", Runtime)
METRICS = web.AppKey("metrics", Metrics)
DSN = web.AppKey("dsn", str)
ANSWERS = web.AppKey("answers", AnswerCache)  # recent /shippingoptions answers
REUSE_PORT = web.AppKey("reuse_port", bool)  # one of several workers sharing the ports
