"""Which addresses a check or a delivery may connect to: one decision, over
`ipaddress`, for every probe and every HTTP transport.

The policy (`LOOPR_MONITOR_TARGETS` for monitors; for channels, `public`
unless LOOPR_WEBHOOK_ALLOW_PRIVATE) is enforced where a socket is about to
connect (`loopr.net.connect_first`), on every address a name resolves to at
that moment and on every redirect hop, so a DNS answer that changes after a
monitor was saved (rebinding) is judged on what it is then.

* `any`: everything (a self-hosted team's internal services are the point).
* `no-metadata`: not link-local (169.254.0.0/16, fe80::/10) and not a cloud
  provider's metadata or platform address.
* `public`: only globally routable unicast: no private, loopback, link-local,
  CGNAT, unique-local, site-local, multicast, reserved or unspecified address,
  nor the special-purpose ranges of IANA's registries.

An IPv6 address can carry an IPv4 one (IPv4-mapped `::ffff:a.b.c.d`,
IPv4-translated `::ffff:0:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64
`64:ff9b::/96` and the local-use `64:ff9b:1::/48`, 6to4 `2002::/16`, Teredo
`2001::/32`): the IPv4 addresses it carries are judged too, since the network
may deliver the packet to them. requests-hardened (which this replaces) let
`::127.0.0.1`, `fec0::1` and `::ffff:0:a9fe:a9fe` through.

Standard library only: probes use it without Django or a database.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetPolicy(str, enum.Enum):
    ANY = "any"
    NO_METADATA = "no-metadata"
    PUBLIC = "public"


class RefusedAddress(OSError):
    """A connection the policy does not allow; raised before anything is sent."""


# Cloud metadata and platform endpoints outside link-local (those inside it
# are refused with it): AWS's IPv6 IMDS, GCP's IPv6 metadata server,
# Alibaba Cloud's metadata, Azure's WireServer, Oracle Cloud's legacy one.
METADATA = frozenset(map(ipaddress.ip_address, [
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "fd20:ce::254",
    "100.100.100.200", "168.63.129.16", "192.0.0.192",
]))

LINK_LOCAL = tuple(map(ipaddress.ip_network, ["169.254.0.0/16", "fe80::/10"]))

# Refused by `public` whatever Python's is_global says of them (its tables
# differ between versions; these must not).
NOT_PUBLIC = tuple(map(ipaddress.ip_network, [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "::ffff:0:0:0/96", "::/96", "64:ff9b:1::/48", "100::/64",
    "2001::/23", "2001:db8::/32", "3fff::/20", "5f00::/16", "fc00::/7", "fec0::/10", "fe80::/10", "ff00::/8",
]))

_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def parse(address: str | IPAddress) -> IPAddress:
    """An address as `ipaddress` reads it, without an IPv6 zone (`fe80::1%eth0`)."""
    if isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return address
    return ipaddress.ip_address(address.split("%", 1)[0].strip("[]"))


def carried(address: IPAddress) -> Iterator[IPAddress]:
    """The address and every IPv4 address its IPv6 form carries."""
    yield address
    if address.version != 6:
        return
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _MAPPED or address in _TRANSLATED or address in _NAT64:
        yield low32
    elif address in _COMPATIBLE and int(address) > 1:  # not :: or ::1, which are themselves
        yield low32
    elif address in _NAT64_LOCAL:
        # RFC 6052 puts the IPv4 address after a /48 prefix in bits 48-63 and
        # 72-87 (around the u octet); a /96 inside it puts it last.
        packed = address.packed
        yield ipaddress.IPv4Address(packed[6:8] + packed[9:11])
        yield low32
    if address.sixtofour is not None:
        yield address.sixtofour
    if address.teredo is not None:
        yield from address.teredo  # (server, client), the client's already unobfuscated


def refusal(address: str | IPAddress, policy: TargetPolicy | str) -> str:
    """Why `policy` refuses a connection to `address`, or "" when it allows it."""
    policy = TargetPolicy(policy)
    if policy is TargetPolicy.ANY:
        return ""
    ip = parse(address)
    for each in carried(ip):
        via = "" if each == ip else f" (it carries {each})"
        if each in METADATA:
            return f"{ip} is a cloud metadata address{via}"
        if any(each in network for network in LINK_LOCAL):
            return f"{ip} is a link-local address{via}"
        # An IPv4-mapped address is its IPv4 address on the wire: judged as that.
        if policy is TargetPolicy.PUBLIC and not (each is ip and ip in _MAPPED):
            if any(each in network for network in NOT_PUBLIC) or not each.is_global:
                return f"{ip} is not a public address{via}"
    return ""


def check(address: str | IPAddress, policy: TargetPolicy | str, setting: str = "LOOPR_MONITOR_TARGETS") -> None:
    """Raises RefusedAddress, naming the setting that decides, if refused."""
    reason = refusal(address, policy)
    if reason:
        raise RefusedAddress(f"{reason}, which {setting}={TargetPolicy(policy).value} refuses")


@dataclass(frozen=True)
class Guard:
    """A policy and the setting that chose it (named when it refuses), as
    the connecting code holds it (`loopr.net.Deadline.guard`)."""

    policy: TargetPolicy = TargetPolicy.ANY
    setting: str = "LOOPR_MONITOR_TARGETS"

    def check(self, address: str | IPAddress) -> None:
        if self.policy is not TargetPolicy.ANY:
            check(address, self.policy, self.setting)

    @classmethod
    def for_monitors(cls, policy: TargetPolicy | str) -> Guard:
        return cls(TargetPolicy(policy), "LOOPR_MONITOR_TARGETS")


OPEN = Guard()
