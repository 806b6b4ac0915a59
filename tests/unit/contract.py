"""Checks HTTP answers against the app's own OpenAPI document (used by the test clients).

``ContractClient`` is a Flask test client that checks every answer it gets: the status is one
the document lists for the route, and a JSON body validates against the documented schema.
Answers that no route produced (an unknown path, a wrong method) must be problem+json.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.test import TestResponse

from entrypoints.web.openapi import openapi_document


class ContractViolation(AssertionError):
    """An answer that the OpenAPI document does not describe."""


def _openapi_path(rule_text: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule_text)


def check_response(
    app: Flask, document: dict[str, Any], method: str, path: str, response: TestResponse
) -> None:
    """Raise ContractViolation when ``response`` is not what the document says ``path`` answers."""
    adapter = app.url_map.bind("localhost")
    try:
        rule, _ = adapter.match(path, method=method, return_rule=True)
    except (NotFound, MethodNotAllowed):
        if response.mimetype != "application/problem+json":
            raise ContractViolation(
                f"{method} {path}: {response.status_code} is not a problem"
            ) from None
        _validate(document, {"$ref": "#/components/schemas/Problem"}, response, method, path)
        return
    except Exception:  # a redirect rule or similar: nothing to check here
        return
    if rule.endpoint == "static":  # the pages' style sheets, not part of the API
        return
    operation = document["paths"].get(_openapi_path(rule.rule), {}).get(method.lower())
    if operation is None:
        raise ContractViolation(f"{method} {rule.rule} is not in the OpenAPI document")
    status = response.status_code
    if status >= 500 and response.mimetype == "application/problem+json":
        # A server error is never documented; it still has the problem shape.
        _validate(document, {"$ref": "#/components/schemas/Problem"}, response, method, path)
        return
    documented = operation["responses"].get(str(status))
    if documented is None:
        raise ContractViolation(
            f"{method} {path} answered {status}, documented: {sorted(operation['responses'])}"
        )
    content = documented.get("content")
    if not content:
        return
    if response.mimetype not in content:
        raise ContractViolation(
            f"{method} {path} {status}: {response.mimetype} is not one of {sorted(content)}"
        )
    if response.mimetype.endswith("json"):
        _validate(document, content[response.mimetype]["schema"], response, method, path)


def _validate(
    document: dict[str, Any],
    schema: dict[str, Any],
    response: TestResponse,
    method: str,
    path: str,
) -> None:
    body = json.loads(response.get_data())
    root = {"components": document["components"], "allOf": [schema]}
    errors = sorted(Draft202012Validator(root).iter_errors(body), key=str)
    if errors:
        raise ContractViolation(
            f"{method} {path} {response.status_code}: the body does not match its schema: "
            + "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])
        )


class ContractClient(FlaskClient):
    """A test client whose every answer is checked against the app's OpenAPI document."""

    _document: dict[str, Any] | None = None

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:  # type: ignore[override]
        response = super().open(*args, **kwargs)
        request = response.request
        if self._document is None:
            self._document = openapi_document(self.application)
        check_response(self.application, self._document, request.method, request.path, response)
        return response
