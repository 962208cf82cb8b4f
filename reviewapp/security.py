"""Request-level protection: CSRF tokens on every form, safe response headers, no
caching of pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, g, request
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

# Everything the app serves comes from itself: no inline script, nothing remote.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)

CACHEABLE = frozenset({"static", "service_worker"})


def init_app(app: Flask) -> None:
    # Before CSRF: its check reads the body, so the size bound must be set first.
    @app.before_request
    def bound_request_size():
        limits = {
            "exchange.upload": app.config["MAX_BUNDLE_UPLOAD"],
            "exchange.apply_receipt": app.config["MAX_RECEIPT_UPLOAD"],
        }
        request.max_content_length = limits.get(request.endpoint, app.config["MAX_CONTENT_LENGTH"])

    csrf.init_app(app)

    @app.after_request
    def set_headers(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        # Pages carry reviews, names and tokens: no copy in the browser's or a proxy's
        # cache, where the next person at a shared laptop would find it after sign-out.
        # Only the app's static files (and the service worker's script) may be cached.
        signed_in = g.get("user") is not None
        if request.endpoint not in CACHEABLE and (
            signed_in or "Cache-Control" not in response.headers
        ):
            response.headers["Cache-Control"] = "no-store"
        return response


def safe_next(target: str | None, default: str) -> str:
    """``target`` if it is a path on this app, else ``default`` (no open redirects)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target:
        return default
    return target
