"""`manage.py check --deploy` is clean with the production settings the README documents, and every
response carries the security headers."""

import os
import subprocess
import sys

from django.test import Client

from tests.servers import ROOT

PRODUCTION = {
    "DJANGO_SECRET_KEY": "x" * 10 + "a-long-random-production-secret-key-0123456789-abcdefghij",
    "DJANGO_DEBUG": "false",
    "DJANGO_ALLOWED_HOSTS": "hub.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://hub.example.com",
    "DJANGO_SECURE_COOKIES": "true",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "true",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_SECURE_HSTS_PRELOAD": "true",
    "MEMORYHUB_REQUIRE_SECRET_KEY": "true",
}


def test_check_deploy_is_clean_with_the_documented_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**os.environ, **PRODUCTION, "DATABASE_URL": "", "REDIS_URL": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_without_them():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": "", "REDIS_URL": "", "DJANGO_DEBUG": "false"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout  # no HSTS


def test_responses_carry_the_security_headers(db):
    for path in ("/api/v1/me/", "/login/", "/healthz"):
        response = Client().get(path)
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"
        assert response["Cross-Origin-Opener-Policy"] == "same-origin"
        policy = response["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_the_api_docs_page_needs_no_inline_script(db):
    page = Client().get("/api/v1/docs/").content.decode()
    assert "<script>" not in page
