"""Files over the API: .xlsx and .docx downloads (documented and answered one way) and the cap on an upload."""

import functools
from collections.abc import Callable
from urllib.parse import quote

from flask import Response, request

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
FORM_OVERHEAD = 64 * 1024  # a multipart body's boundaries and headers around the file


def xlsx_doc(description: str, mimetype: str = XLSX) -> dict:
    """The OpenAPI `responses` of an .xlsx (or other `mimetype`) download: `@blp.doc(**xlsx_doc("…"))`."""
    return {"responses": {"200": {"description": description,
                                  "content": {mimetype: {"schema": {"type": "string", "format": "binary"}}}}}}


def xlsx_response(data: bytes, ascii_name: str, chinese_name: str, mimetype: str = XLSX) -> Response:
    """An .xlsx (or other `mimetype`) download, named in ASCII for old clients and in Chinese
    (RFC 5987) for the others."""
    return Response(data, mimetype=mimetype, headers={
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(chinese_name)}",
    })


def limit_body(largest: Callable[[], int]):
    """Refuse (413) a body much larger than `largest()` bytes (a file's cap, from the settings)
    before it is parsed or spooled."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            request.max_content_length = int(largest()) + FORM_OVERHEAD
            return view(*args, **kwargs)

        return wrapper

    return decorator
