"""Schemathesis over the generated OpenAPI document: for generated inputs, valid and invalid, no
endpoint answers 5xx and every answer matches its documented status, content type and schema.

Bounded: a few examples per operation, so the run stays quick.
"""

from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.modes import GenerationMode
from sqlalchemy.orm import Session

from models import Member, now_utc
from models.activity import NewActivity, create_activity
from tests.conftest import steady_headers

EXAMPLES = 5  # per operation and mode; with derandomize, the same cases every run
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def fuzz_app(app_factory):
    # Limits high enough for the run; their own tests check them.
    return app_factory(API_LOGIN_RATE_LIMIT="100000 per minute", API_BIND_RATE_LIMIT="100000 per minute",
                       API_BIND_RATE_LIMIT_PER_TOKEN="100000 per minute")


@pytest.fixture
def fuzz_headers(fuzz_app, api_login, cast, engine):
    """A fresh token of a street admin, re-linked each time (a generated DELETE /me/bind unbinds it)."""
    people = cast(wang=cast.wang, sun=cast.sun, admin=cast.admin)
    fuzz_app.config["FUZZ_MEMBER_ID"] = people["wang"].id
    admin = people["admin"]
    with Session(engine) as s:
        activity = create_activity(s, s.get(Member, admin.id), NewActivity(kind="志愿服务", title="清扫楼道",
                                   starts_at=now_utc() + timedelta(minutes=10), capacity=5))
        fuzz_app.config["FUZZ_ACTIVITY_ID"] = activity.id
    client = fuzz_app.test_client()

    def headers() -> dict:
        with Session(engine) as s:
            s.get(Member, admin.id).miniapp_openid = None
            s.get(Member, admin.id).active = True
            s.commit()
        admin.miniapp_openid = None
        return api_login(admin, client=client)

    return headers


def _inputs(operation) -> int:
    raw = operation.definition.raw
    return len(raw.get("parameters", [])) + ("requestBody" in raw) + bool(raw.get("security", [{}]))


def operations(app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize(("mode", "existing"), [(GenerationMode.POSITIVE, False), (GenerationMode.POSITIVE, True),
                                               (GenerationMode.NEGATIVE, False)])
def test_api_conforms_to_its_openapi_document(fuzz_app, fuzz_headers, mode, existing):
    """`existing`: member ids point at a real member, so edits get past the 404."""
    # (schemathesis' pytest loader does not run on this pytest; hypothesis is driven directly.)
    tested = []
    for operation in operations(fuzz_app):
        fixed = {}
        if "{member_id}" in operation.path:
            if existing:
                fixed["path_parameters"] = {"member_id": fuzz_app.config["FUZZ_MEMBER_ID"]}
        elif "{activity_id}" in operation.path:
            if existing:
                fixed["path_parameters"] = {"activity_id": fuzz_app.config["FUZZ_ACTIVITY_ID"]}
        elif existing:
            continue
        if mode == GenerationMode.NEGATIVE and _inputs(operation) == 0:
            continue  # nothing to make invalid (GET /config: no parameters, no body, no login)

        steady = steady_headers(operation, fuzz_headers)

        @given(case=operation.as_strategy(generation_mode=mode, **fixed))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            case.call_and_validate(headers=steady or fuzz_headers(), checks=CHECKS)  # noqa: B023 - run now

        run()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert len(tested) >= (2 if existing else 11), tested
