"""The target policy's one decision (loopr/addresses.py), range by range.

Pure: no address here is ever connected to. Connect-time enforcement is
tested with loopback targets only (tests/monitors/test_target_policy.py)."""

from __future__ import annotations

import pytest

from loopr.addresses import RefusedAddress, TargetPolicy, check, refusal

ANY, NO_METADATA, PUBLIC = TargetPolicy.ANY, TargetPolicy.NO_METADATA, TargetPolicy.PUBLIC

# Refused by no-metadata (and so by public too).
METADATA_OR_LINK_LOCAL = [
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean… metadata
    "169.254.170.2",  # ECS task metadata
    "169.254.0.1",  # any link-local
    "fe80::1", "fe80::1%eth0",  # link-local IPv6, with a zone
    "fd00:ec2::254",  # AWS IMDS over IPv6
    "fd20:ce::254",  # GCP metadata over IPv6
    "100.100.100.200",  # Alibaba Cloud
    "168.63.129.16",  # Azure WireServer
    "192.0.0.192",  # Oracle Cloud
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:0:a9fe:a9fe",  # IPv4-translated 169.254.169.254 (a requests-hardened gap)
    "::169.254.169.254",  # IPv4-compatible
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1:a9fe:a9:fe00::",  # local-use NAT64, RFC 6052's /48 layout
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64, a /96 inside it
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo whose client (obfuscated) is 169.254.169.254
]

# Refused by public only.
PRIVATE = [
    "10.0.0.8", "172.16.0.1", "172.31.255.255", "192.168.1.1",  # RFC 1918
    "127.0.0.1", "127.255.255.254",  # loopback
    "0.0.0.0", "0.1.2.3",  # "this network": 0.0.0.0 reaches the host itself
    "100.64.0.1", "100.127.255.254",  # CGNAT (but not 100.100.100.200: metadata, above)
    "192.0.0.8", "192.0.2.1", "198.18.0.1", "198.51.100.1", "203.0.113.9",  # special purpose, documentation
    "224.0.0.1", "239.1.2.3", "240.0.0.1", "255.255.255.255",  # multicast, reserved, broadcast
    "::", "::1",  # unspecified, loopback
    "fc00::1", "fd12:3456::1",  # unique-local
    "fec0::1",  # site-local (a requests-hardened gap)
    "ff02::1",  # multicast
    "2001:db8::1",  # documentation
    "::127.0.0.1",  # IPv4-compatible loopback (a requests-hardened gap)
    "::ffff:127.0.0.1", "::ffff:10.0.0.1",  # IPv4-mapped
    "::ffff:0:7f00:1",  # IPv4-translated loopback
    "::8.8.8.8",  # IPv4-compatible: deprecated, never routed
    "64:ff9b::7f00:1", "64:ff9b::a00:1",  # NAT64 of loopback, of 10.0.0.1
    "64:ff9b:1::808:808",  # local-use NAT64: not routed beyond its network
    "2002:7f00:1::1", "2002:c0a8:101::1",  # 6to4 of 127.0.0.1, of 192.168.1.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo (2001::/32 is not global)
]

PUBLIC_ADDRESSES = [
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.1", "172.32.0.1",
    "2606:4700:4700::1111", "2a00:1450:4001:81c::200e",
    "::ffff:8.8.8.8",  # IPv4-mapped public: 8.8.8.8 on the wire
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize("address", METADATA_OR_LINK_LOCAL)
def test_no_metadata_and_public_refuse_link_local_and_metadata_in_every_form(address):
    assert refusal(address, NO_METADATA)
    assert refusal(address, PUBLIC)
    assert refusal(address, ANY) == ""


@pytest.mark.parametrize("address", PRIVATE)
def test_public_refuses_every_internal_range_in_every_form_and_no_metadata_allows_it(address):
    assert refusal(address, PUBLIC)
    assert refusal(address, NO_METADATA) == ""
    assert refusal(address, ANY) == ""


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_every_policy_allows_a_public_address(address):
    for policy in TargetPolicy:
        assert refusal(address, policy) == "", (policy, address)


def test_a_refusal_names_what_the_address_carries_and_the_setting():
    assert "carries 169.254.169.254" in refusal("::ffff:0:a9fe:a9fe", NO_METADATA)
    with pytest.raises(RefusedAddress, match=r"LOOPR_MONITOR_TARGETS=public refuses"):
        check("127.0.0.1", "public")
    with pytest.raises(RefusedAddress, match=r"LOOPR_WEBHOOK_ALLOW_PRIVATE"):
        check("[::1]", PUBLIC, setting="LOOPR_WEBHOOK_ALLOW_PRIVATE")


def test_an_unknown_policy_is_an_error_not_any():
    with pytest.raises(ValueError):
        refusal("127.0.0.1", "none")
