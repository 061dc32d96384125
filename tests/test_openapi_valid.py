"""The OpenAPI document as a front end's tools read it: valid for an independent validator, patterns
that JavaScript compiles, an operationId for every operation, every 4xx an operation answers
documented (401 for all that need a login, seen by asking them without one)."""

import json
import re
import subprocess

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.generation.modes import GenerationMode

from tests.conftest import BRANCH, steady_headers

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture
def spec(api_client):
    return api_client.get("/api/v1/openapi.json").get_json()


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def patterns(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from patterns(value)


def test_the_document_passes_openapi_spec_validator(spec):
    validate(spec)  # raises on any violation of the OpenAPI 3.0 schema


def test_every_pattern_compiles_as_ecma_262(spec):
    found = sorted(set(patterns(spec)))
    assert found, "the document has patterns to check"
    # JavaScript's RegExp, with and without the u flag (validators use either).
    script = ("const ps = JSON.parse(process.argv[1]); const bad = [];"
              "for (const p of ps) for (const f of ['', 'u']) { try { new RegExp(p, f); } catch (e) {"
              " bad.push(p + ' /' + f + ': ' + e.message); } }"
              "if (bad.length) { console.error(bad.join('\\n')); process.exit(1); }")
    result = subprocess.run(["node", "-e", script, json.dumps(found)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for pattern in found:  # and no Python-only escape slipped through
        assert not re.search(r"\\[ZAz]", pattern), pattern


def test_every_operation_has_a_unique_operation_id(spec):
    ids = [operation.get("operationId") for _, _, operation in operations(spec)]
    assert None not in ids, [f"{m.upper()} {p}" for m, p, o in operations(spec) if "operationId" not in o]
    assert len(ids) == len(set(ids)) and len(ids) >= 55


def test_login_required_operations_answer_and_document_401(spec, api_client):
    checked = 0
    for method, path, operation in operations(spec):
        url = re.sub(r"\{[^}]+\}", "1", path)
        if operation.get("security") == []:  # the public ones
            assert "401" not in operation["responses"] or path.endswith("/auth/login"), path
            continue
        assert "401" in operation["responses"], (method, path)
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            response = api_client.open(url, method=method.upper(), headers=headers, json={})
            assert response.status_code == 401, (method, path, response.get_json())
            assert response.get_json()["code"] in ("unauthorized", "token_invalid")
        checked += 1
    assert checked >= 55


def test_error_answers_use_the_error_shape(spec):
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status.startswith("4"):
                assert response == {"$ref": f"#/components/responses/{_name(status)}"}, (method, path, status)
    for name, response in spec["components"]["responses"].items():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, name


def _name(status: str) -> str:
    from http import HTTPStatus
    return HTTPStatus(int(status)).name


# Every 4xx seen is documented: generated requests, as an admin, a member and someone unbound --------
@schemathesis.check
def documented_4xx(ctx, response, case):
    status = str(response.status_code)
    if status.startswith("4") and status not in case.operation.definition.raw["responses"]:
        raise AssertionError(f"{case.operation.method.upper()} {case.operation.path} answered {status}, "
                             f"which is not documented")


@pytest.fixture
def fuzz_app(app_factory):
    return app_factory(API_LOGIN_RATE_LIMIT="100000 per minute", API_BIND_RATE_LIMIT="100000 per minute",
                       API_BIND_RATE_LIMIT_PER_TOKEN="100000 per minute", MINIAPP_TEMPLATE_NOTICE="tmpl-n")


@pytest.mark.parametrize("who", ["admin", "member", "unbound"])
def test_every_4xx_answered_is_documented(fuzz_app, api_login, make_member, engine, who):
    people = {"admin": make_member("张建国", "13800000001", org="滨江街道党工委", role="管理员"),
              "member": make_member("王志强", "13800000003", org=BRANCH)}
    client = fuzz_app.test_client()

    def headers():
        if who == "unbound":
            return api_login(openid="mp-nobody", client=client)
        from sqlalchemy.orm import Session

        from models import Member
        with Session(engine) as s:  # a generated DELETE /me/bind may have unbound them
            s.get(Member, people[who].id).miniapp_openid = None
            s.commit()
        people[who].miniapp_openid = None
        return api_login(people[who], client=client)

    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        steady = steady_headers(operation, headers)

        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        @settings(max_examples=4, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            case.call_and_validate(headers=steady or headers(), checks=[documented_4xx])  # noqa: B023 - run now

        run()
        tested += 1
    assert tested >= 55
