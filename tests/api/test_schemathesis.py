"""Schemathesis over the OpenAPI schema: generated requests never get a server error, and
every answer matches the documented status codes and response schemas.

Left out: schemathesis' "schema-valid data must be accepted" check. Many bodies are valid only
across fields (a covariance matrix as large as its asset list, a reachable target return),
which JSON Schema cannot say; such bodies get a 422 with the reason, as they should.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from nqba.api.app import create_app
from nqba.authz import Role
from nqba.services import Services
from tests.support.platform import CallerFactory

EXAMPLES_PER_OPERATION = 25


def _run_operation(operation: Any, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    check()


def test_generated_requests_never_get_a_server_error(
    services: Services, make_caller: CallerFactory
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(services))
    headers = make_caller(Role.OWNER).headers
    failures: list[str] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"an operation of the schema is invalid: {result.err()}")
            continue
        operation = result.ok()
        try:
            _run_operation(operation, headers)
        except BaseException as e:  # collect every operation's failure, then report them all
            if isinstance(e, KeyboardInterrupt):
                raise
            failures.append(f"{operation.method.upper()} {operation.path}: {e}")
    assert not failures, "\n\n".join(failures)
