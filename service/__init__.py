"""orderflow as a service: the webhook receiver (ASGI and WSGI) and the worker.

`create_app` (Starlette) and `create_wsgi_app` serve webhooks, `/healthz` and `/metrics`.
"""

from __future__ import annotations

from service.answers import Answer
from service.asgi import build_app, create_app
from service.errors import (
    ChainCheckFailed,
    NotAdvanced,
    ServiceError,
    SourceUnavailable,
    StartupRefused,
)
from service.health import Health, Report
from service.metrics import Metrics
from service.protocol import HeaderDeadline
from service.runtime import Service, ShopSource
from service.settings import Settings
from service.sources import sources_from
from service.worker import Worker
from service.wsgi import WSGIApp, create_wsgi_app

__all__ = [
    "Answer",
    "ChainCheckFailed",
    "HeaderDeadline",
    "Health",
    "Metrics",
    "NotAdvanced",
    "Report",
    "Service",
    "ServiceError",
    "Settings",
    "ShopSource",
    "SourceUnavailable",
    "StartupRefused",
    "WSGIApp",
    "Worker",
    "build_app",
    "create_app",
    "create_wsgi_app",
    "sources_from",
]
