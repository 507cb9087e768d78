"""The request body limit for bodies without a length (O5): `Transfer-Encoding: chunked`.

Werkzeug enforces `MAX_CONTENT_LENGTH` against a declared `Content-Length` (413 before reading), but for an
unframed body its limited stream simply stops at the limit, so an oversized chunked body would be cut and
parsed as if it were whole. Here such a body is read up to one byte past the limit before any view or form
parser sees it: over the limit is 413, otherwise the view gets the whole body with its real length.
"""

from __future__ import annotations

import io
from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

__all__ = ["bound_unframed_body"]


def bound_unframed_body(environ: dict[str, Any]) -> None:
    """Run first before every request with the request's `environ`. Raises `RequestEntityTooLarge` for a chunked
    body past `MAX_CONTENT_LENGTH`."""
    if not environ.get("HTTP_TRANSFER_ENCODING"):
        return  # checked first: the one cheap test that lets almost every request through at once
    limit = request.max_content_length
    if limit is None or request.content_length is not None or "wsgi.input_terminated" not in environ:
        return  # no limit set, a declared length (werkzeug checks it), or a server that frames nothing
    body = environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
