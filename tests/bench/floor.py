"""Floors: what the hub's endpoints are compared with, measured on the same servers in the same run.

- `FloorReadView`: a minimal token-authenticated DRF read (one token lookup query, a tiny JSON body).
- `FloorItemView`: a minimal versioned write (DRF, token auth, `UPDATE ... SET version = version + 1
  WHERE id = %s AND version = %s` plus one event-row INSERT, in one transaction), and the one-row read
  a read-modify-write client does before it.
- floor_loops.py: the load generator's loops against these endpoints, and the raw database doing the
  same kind of statements from Python (threads, psycopg, no HTTP, no Django).

The tables are created with raw SQL in the bench database by `create_tables()`; they are not models.
"""

from __future__ import annotations

import json

from django.db import connection, transaction
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

TABLES_SQL = """
CREATE TABLE bench_floor_token (key varchar(100) PRIMARY KEY, agent varchar(100) NOT NULL);
CREATE TABLE bench_floor_item (
    id integer PRIMARY KEY,
    version integer NOT NULL DEFAULT 1,
    value jsonb NOT NULL DEFAULT '{}',
    updated_by varchar(100) NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench_floor_event (
    id bigserial PRIMARY KEY,
    type varchar(50) NOT NULL,
    resource varchar(255) NOT NULL,
    version integer,
    actor varchar(100) NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    payload jsonb
);
CREATE TABLE bench_floor_sequence (id integer PRIMARY KEY, last bigint NOT NULL);
INSERT INTO bench_floor_sequence VALUES (1, 0);
CREATE TABLE bench_floor_lease (
    id bigserial PRIMARY KEY,
    resource varchar(255) NOT NULL UNIQUE,
    holder varchar(100) NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE TABLE bench_floor_task (
    id bigserial PRIMARY KEY,
    role varchar(100) NOT NULL,
    status varchar(10) NOT NULL DEFAULT 'queued',
    claimed_by varchar(100),
    claimed_at timestamptz,
    result jsonb
);
CREATE INDEX bench_floor_task_queue ON bench_floor_task (role, id) WHERE status = 'queued';
INSERT INTO bench_floor_item (id) SELECT generate_series(0, 1023);
"""


def create_tables() -> None:
    with connection.cursor() as cursor:
        cursor.execute(TABLES_SQL)


def register_tokens(agents: list[dict]) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO bench_floor_token (key, agent) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
            [(agent["token"], agent["id"]) for agent in agents],
        )


def load_floor_tasks(count: int, role: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_floor_task (role) SELECT %s FROM generate_series(1, %s)",
            [role, count],
        )


# --- DRF floor endpoints (imported by tests/bench/urls.py inside the servers) ------------------------


class FloorUser:
    is_authenticated = True
    is_anonymous = False

    def __init__(self, agent_id: str) -> None:
        self.id = agent_id

    def get_username(self) -> str:  # what the request log asks of a non-agent user
        return self.id


class FloorTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` -> one indexed lookup, nothing else (no touch, no hashing)."""

    def authenticate(self, request):
        scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        with connection.cursor() as cursor:
            cursor.execute("SELECT agent FROM bench_floor_token WHERE key = %s", [token.strip()])
            row = cursor.fetchone()
        if row is None:
            raise AuthenticationFailed("Unknown token.")
        return FloorUser(row[0]), token

    def authenticate_header(self, request):
        return "Bearer"


class FloorView(APIView):
    authentication_classes = [FloorTokenAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes: list = []


class FloorReadView(FloorView):
    def get(self, request):
        return Response({"agent": request.user.id, "ok": True})


class FloorItemView(FloorView):
    def get(self, request, item_id: int):
        with connection.cursor() as cursor:
            cursor.execute("SELECT version, value FROM bench_floor_item WHERE id = %s", [item_id])
            row = cursor.fetchone()
        if row is None:
            return Response({"error": {"code": "not_found", "message": "", "details": {}}}, status=404)
        return Response({"id": item_id, "version": row[0], "value": row[1]}, headers={"ETag": f'"{row[0]}"'})

    def put(self, request, item_id: int):
        raw = request.headers.get("If-Match", "").strip().strip('"')
        if not raw.isdigit():
            return Response({"error": {"code": "precondition_required", "message": "", "details": {}}}, status=428)
        value = request.data.get("value", {}) if isinstance(request.data, dict) else {}
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE bench_floor_item SET version = version + 1, value = %s, updated_by = %s, updated_at = now() "
                "WHERE id = %s AND version = %s RETURNING version",
                [json.dumps(value), request.user.id, item_id, int(raw)],
            )
            row = cursor.fetchone()
            if row is None:
                cursor.execute("SELECT version FROM bench_floor_item WHERE id = %s", [item_id])
                current = cursor.fetchone()
                details = {"current": {"id": item_id, "version": current[0] if current else None}}
                return Response({"error": {"code": "version_conflict", "message": "", "details": details}}, status=412)
            cursor.execute(
                "INSERT INTO bench_floor_event (type, resource, version, actor, payload) VALUES (%s, %s, %s, %s, %s)",
                ["item.updated", f"item/{item_id}", row[0], request.user.id, json.dumps(value)],
            )
        return Response({"id": item_id, "version": row[0]}, headers={"ETag": f'"{row[0]}"'})
