"""One HTTP POST to a webhook endpoint, refusing addresses inside our network.

The target's name is resolved here, at delivery time, and the connection goes
to the address that was checked (no second look-up a rebinding DNS server
could answer differently). Redirects are not followed. HTTPS only, unless
OUTBOUND_WEBHOOKS_ALLOW_LOCAL (local development and tests) which also allows
plain http and loopback addresses.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings

EXCERPT_BYTES = 1024

# Cloud metadata services; most are link-local already, listed for clarity.
METADATA_ADDRESSES = frozenset({
    ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254"),
})


class TargetRefused(Exception):
    """The URL may not be called: a scheme or an address we do not send to."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str
    path: str


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    latency_ms: int
    excerpt: str
    error: str = ""


def address_refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_local: bool) -> str:
    """Why an address may not be called, or "" when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "" if allow_local else "a loopback address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return ""


def url_check(url: str, *, allow_local: bool | None = None) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a URL we may send to, judging its form only."""
    allow_local = settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL if allow_local is None else allow_local
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_local else ("https",)
    if parts.scheme not in schemes:
        raise TargetRefused("Only https URLs receive events." if not allow_local else "Use an http or https URL.")
    if not parts.hostname:
        raise TargetRefused("The URL has no host.")
    if parts.username or parts.password:
        raise TargetRefused("The URL may not carry a user name or password.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("The URL's port is not valid.") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path


def target_resolve(url: str, *, allow_local: bool | None = None) -> Target:
    """Resolve `url` now and refuse it if any address it names is one we do not send to."""
    allow_local = settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL if allow_local is None else allow_local
    scheme, host, port, path = url_check(url, allow_local=allow_local)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise TargetRefused(f"The host {host} could not be resolved ({error}).") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"The host {host} has no address.")
    for address in addresses:
        reason = address_refused(address, allow_local=allow_local)
        if reason:
            raise TargetRefused(f"{host} resolves to {address}, {reason}; events are not sent there.")
    return Target(scheme=scheme, host=host, port=port, address=str(addresses[0]), path=path)


def post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float) -> Answer:
    """POST `body` to the checked address, presenting the URL's host name (Host, SNI, certificate)."""
    host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
    if ":" in target.host and not target.host.startswith("["):
        host_header = f"[{target.host}]:{target.port}"
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address, target.port, server_hostname=target.host, assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(), retries=False, maxsize=1,
        )
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, retries=False, maxsize=1)
    started = time.monotonic()
    try:
        response = pool.urlopen(
            "POST", target.path, body=body, headers={**headers, "Host": host_header},
            redirect=False, retries=False, timeout=urllib3.Timeout(total=timeout), preload_content=False,
        )
        try:
            excerpt = response.read(EXCERPT_BYTES, decode_content=False) or b""
        finally:
            response.release_conn()
        return Answer(
            status_code=response.status, latency_ms=_ms_since(started),
            excerpt=excerpt.decode("utf-8", "replace")[:EXCERPT_BYTES],
        )
    except urllib3.exceptions.HTTPError as error:
        kind = "Timed out" if isinstance(error, (urllib3.exceptions.TimeoutError,)) or "timed out" in str(error) \
            else "Connection failed"
        return Answer(status_code=None, latency_ms=_ms_since(started), excerpt="", error=f"{kind}: {error}"[:300])
    finally:
        pool.close()


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
