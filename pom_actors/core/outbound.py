"""Where a strategy may make the system send HTTP requests (a custom handler's webhook URL),
and where the operator's SMS provider and mail relay may be (`relay_faults`).

A URL a strategy names is data from an API client, yet the media gateway requests it from
inside the installation: without a policy a strategy could make POM call its own API, the
database's host or a cloud metadata address (169.254.169.254). So only public (globally
routable) unicast addresses are allowed, and whatever an operator lists in
POM_OUTBOUND_ALLOW (comma-separated addresses or CIDR networks, e.g. `10.20.0.0/16,127.0.0.1`).

Checked twice: when a strategy is saved (`url_fault`: the scheme, and a host that is an
address or `localhost` — a 422 at the handler's `url`), and before every request
(`resolve_fault`: every address the host name resolves to, so a name pointing inside is
refused too). A name that resolves differently between that check and the connection (DNS
rebinding) is not covered.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Awaitable[list[str]]]


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"POM_OUTBOUND_ALLOW: {text.strip()!r} is not an address or a CIDR network") from None


async def system_resolver(host: str) -> list[str]:
    """The addresses `host` resolves to (the event loop's getaddrinfo)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


class OutboundPolicy:
    """Public addresses, and the networks of `allow`."""

    def __init__(self, allow: Iterable[str] = ()):
        self.allow = tuple(_network(a) for a in allow if a.strip())

    @classmethod
    def from_setting(cls, text: str | None) -> "OutboundPolicy":
        """From POM_OUTBOUND_ALLOW's comma-separated list (empty: public addresses only)."""
        return cls((text or "").split(","))

    def address_fault(self, address: str | Address) -> str | None:
        """Why a request to `address` is refused, or None."""
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.allow):
            return None
        if ip.is_global and not ip.is_multicast:
            return None
        kind = next((name for name, flag in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                                               ("multicast", ip.is_multicast), ("private", ip.is_private))
                     if flag), "reserved")
        return f"{ip} is a {kind} address (allow it with POM_OUTBOUND_ALLOW)"

    def url_fault(self, url: str) -> str | None:
        """What can be judged of `url` without resolving it (a strategy being saved): an http(s)
        URL whose host, if an address or `localhost`, is allowed. A host that is a template
        (`{...}`) or a name is judged when the request is made."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError as exc:
            return f"not a valid URL ({exc})"
        if parts.scheme not in ("http", "https"):
            return "the url must start with http:// or https://"
        if not host:
            return "the url names no host"
        if "{" in host or "}" in host:
            return None
        return self.host_fault(host)

    def host_fault(self, host: str) -> str | None:
        """Why `host` is refused when it is an address or `localhost`; a name is judged when it
        is resolved."""
        if host == "localhost" or host.endswith(".localhost"):
            return self.address_fault("127.0.0.1")
        try:
            return self.address_fault(host.strip("[]"))
        except ValueError:
            return None                                  # a name: resolved at send time

    def relay_faults(self, env: Mapping[str, str]) -> list[str]:
        """Why the operator's SMS provider (`POM_SMS_URL`) or mail relay (`POM_SMTP_HOST`), as
        set in `env`, is refused: the same policy as a webhook's, so that a relay on loopback,
        a private or a link-local address must be allowed by POM_OUTBOUND_ALLOW. Checked when
        a server starts; a host name is not resolved then."""
        faults = []
        url, host = env.get("POM_SMS_URL"), env.get("POM_SMTP_HOST")
        if url and (fault := self.url_fault(url)) is not None:
            faults.append(f"POM_SMS_URL {url!r} is refused: {fault}")
        if host and (fault := self.host_fault(host)) is not None:
            faults.append(f"POM_SMTP_HOST {host!r} is refused: {fault}")
        return faults

    async def resolve_fault(self, url: str, resolve: Resolver = system_resolver) -> str | None:
        """Why a request to `url` is refused now, or None: `url_fault`, then every address its
        host resolves to (a name that does not resolve is refused)."""
        fault = self.url_fault(url)
        if fault is not None:
            return fault
        host = urlsplit(url).hostname or ""
        try:
            addresses = await resolve(host)
        except OSError as exc:
            return f"{host} does not resolve ({exc})"
        for address in addresses:
            fault = self.address_fault(address.split("%", 1)[0])        # an IPv6 scope id
            if fault is not None:
                return f"{host}: {fault}"
        return None if addresses else f"{host} does not resolve"
