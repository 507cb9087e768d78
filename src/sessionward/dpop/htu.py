"""The `htu` comparison of RFC 9449 4.3 (step 9): the proof's `htu` and the request's URL are compared after
the syntax- and scheme-based normalisation of RFC 3986 6.2.2 and 6.2.3, without query and fragment.

`normalize_htu` does, in order: refuse what is not an absolute `http`/`https` URL in printable ASCII of
bounded length (no whitespace, no control character, no userinfo, a host present, a valid port); lower-case
the scheme and the host; drop the default port (80 for http, 443 for https) and an empty port; decode
percent-encoded unreserved characters and upper-case the hex digits of every other percent-encoding
(a lone `%` is refused); remove dot segments (RFC 3986 5.2.4); an empty path becomes `/`; query and
fragment are dropped.

The server side passes the URL it reconstructs for the request: scheme and host from its own configuration
or, behind trusted proxies only, from the forwarded headers (that choice is the caller's), and the path as
the client sent it (the raw request target, not a decoded `PATH_INFO`).
"""

from __future__ import annotations

import functools
import re
from urllib.parse import urlsplit

__all__ = ["MAX_URL_CHARS", "normalize_htu"]

MAX_URL_CHARS = 4096
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PRINTABLE = re.compile(r"[\x21-\x7e]+")
_PERCENT = re.compile(r"%(..)?", re.DOTALL)
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HOST = re.compile(r"[a-z0-9._~!$&'()*+,;=-]+|\[[0-9a-f:.]+\]")


def _percent(match: re.Match[str]) -> str:
    digits = match[1]
    if digits is None or _HEX2.fullmatch(digits) is None:
        raise ValueError("bad percent-encoding")
    char = chr(int(digits, 16))
    return char if char in _UNRESERVED else f"%{digits.upper()}"


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4."""
    output: list[str] = []
    rest = path
    while rest:
        if rest.startswith("../"):
            rest = rest[3:]
        elif rest.startswith(("./", "/./")):
            rest = rest[2:]
        elif rest == "/.":
            rest = "/"
        elif rest.startswith("/../"):
            rest = rest[3:]
            if output:
                output.pop()
        elif rest == "/..":
            rest = "/"
            if output:
                output.pop()
        elif rest in (".", ".."):
            rest = ""
        else:
            cut = rest.find("/", 1)
            segment, rest = (rest, "") if cut < 0 else (rest[:cut], rest[cut:])
            output.append(segment)
    return "".join(output)


def normalize_htu(url: object) -> str:
    """`url` normalised for comparison as an `htu` (module docstring). Raises `ValueError`.

    Results are remembered (bounded LRU): a server sees the same few URLs, a client sends the same `htu`."""
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
        raise ValueError("not a printable ASCII URL of bounded length")
    return _normalize(url)


@functools.lru_cache(maxsize=1024)
def _normalize(url: str) -> str:
    # the character check inside the cache: a remembered URL passed it (a refusal raises, and is never remembered)
    if _PRINTABLE.fullmatch(url) is None:
        raise ValueError("not a printable ASCII URL of bounded length")
    parts = urlsplit(url)  # ValueError for a bad IPv6 literal
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("not an http or https URL")
    if "@" in parts.netloc:
        raise ValueError("userinfo is not allowed")
    host = parts.hostname  # lower-cased by urlsplit
    if not host:
        raise ValueError("no host")
    port = parts.port  # ValueError for a port that is not a number in 0..65535
    if ":" in host:  # an IPv6 literal: urlsplit strips the brackets
        host = f"[{host}]"
    if _HOST.fullmatch(host) is None:
        raise ValueError("bad host")
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _PERCENT.sub(_percent, parts.path)
    path = _remove_dot_segments(path) or "/"
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{netloc}{path}"
