"""OpenAPI documentation helpers shared by the API's views."""

from http import HTTPStatus


def errors(*statuses: int) -> dict:
    """The `responses` of an operation's error answers, each referring to the shared error response
    (our error shape) of its status: `@blp.doc(responses=errors(401, 404))`."""
    return {str(status): HTTPStatus(status).name for status in statuses}
