"""The IP filter's rules without the network: config validation (file, line, field), longest
prefix, defaults, address spellings, the readings of unspecified and embedded addresses,
ports, the cloud metadata default, and check_target."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonde_exporter.config import Config, ConfigError, Module, dump_yaml, parse_config
from sonde_exporter.ipfilter import TargetFilter, TargetForbidden, address_key
from sonde_exporter.ipfilter.matcher import key_text, readings
from sonde_exporter.monitors.plan import stale_modules
from sonde_exporter.prober_base import ProbeFailure
from sonde_exporter.resolve import check_target


def load(text: str) -> dict[str, Module]:
    return parse_config(text, "ipf.yml").modules


def verdict(target_filter: TargetFilter, ip: str, port: int | None = None) -> str:
    """ "allow", or the one-line reason of the refusal."""
    try:
        target_filter.check(ip, port)
    except TargetForbidden as exc:
        assert "\n" not in exc.message
        return exc.message
    return "allow"


NESTED = """
modules:
  m:
    prober: tcp
    ip_filter:
      default: allow
      denied: [10.0.0.0/8, 192.168.0.0/16]
      allowed: [10.1.0.0/16, 192.168.7.7]
"""


@pytest.mark.parametrize(
    ("ip", "rule"),
    [
        ("10.2.3.4", "denied: 10.0.0.0/8"),  # only the /8 matches
        ("10.1.2.3", "allow"),  # the /16 inside it is longer
        ("192.168.7.7", "allow"),  # a bare address is a /32, the longest of all
        ("192.168.7.8", "denied: 192.168.0.0/16"),
        ("172.16.0.1", "allow"),  # nothing matches: the default
        ("::1", "allow"),  # IPv4 rules say nothing about IPv6
    ],
)
def test_longest_prefix_decides(ip: str, rule: str) -> None:
    expected = "allow" if rule == "allow" else f"target address {ip} is denied: ip_filter {rule}"
    assert verdict(load(NESTED)["m"].target_filter, ip) == expected


def test_deny_inside_allow_inside_deny() -> None:
    target_filter = load(
        """
        modules:
          m:
            prober: icmp
            ip_filter:
              default: deny
              allowed: [127.0.0.0/8, "::/0"]
              denied: [127.0.0.0/24, "2001:db8::/32"]
        """.replace("\n        ", "\n")
    )["m"].target_filter
    assert verdict(target_filter, "127.1.0.1") == "allow"
    assert "denied: 127.0.0.0/24" in verdict(target_filter, "127.0.0.9")
    assert "default: deny" in verdict(target_filter, "10.0.0.1")
    assert verdict(target_filter, "2001:db9::1") == "allow"
    assert "denied: 2001:db8::/32" in verdict(target_filter, "2001:db8::1")


@pytest.mark.parametrize(
    ("lists", "denied", "allowed"),
    [
        ("allowed: [127.0.0.1]", "127.0.0.2", "127.0.0.1"),  # only allowed: default deny
        ("denied: [127.0.0.2]", "127.0.0.2", "127.0.0.1"),  # only denied: default allow
        ("default: deny", "127.0.0.1", None),  # no list at all: everything is denied
        ("{default: deny, allowed: [127.0.0.1], denied: [127.0.0.2]}", "127.0.0.3", "127.0.0.1"),
        ("{default: allow, allowed: [127.0.0.1], denied: [127.0.0.2]}", "127.0.0.2", "127.0.0.3"),
    ],
)
def test_default_rules(lists: str, denied: str, allowed: str | None) -> None:
    block = lists if lists.startswith("{") else "{" + lists + "}"
    target_filter = load(f"modules:\n  m:\n    prober: tcp\n    ip_filter: {block}\n")[
        "m"
    ].target_filter
    assert verdict(target_filter, denied) != "allow"
    if allowed is not None:
        assert verdict(target_filter, allowed) == "allow"


@pytest.mark.parametrize(
    "spelling",
    [
        "127.0.0.2",
        "::ffff:127.0.0.2",
        "::ffff:7f00:2",
        "0:0:0:0:0:ffff:7f00:2",
        "::ffff:127.0.0.2%lo",
    ],
)
def test_every_spelling_of_a_denied_ipv4_address(spelling: str) -> None:
    target_filter = load("modules:\n  m:\n    prober: tcp\n    ip_filter: {denied: [127.0.0.2]}\n")[
        "m"
    ].target_filter
    assert "denied: 127.0.0.2/32" in verdict(target_filter, spelling)
    assert verdict(target_filter, spelling.replace("7f00:2", "7f00:1").replace(".2", ".1")) == (
        "allow"
    )


@pytest.mark.parametrize("spelling", ["::1", "::1%lo", "0:0:0:0:0:0:0:1", "0::0:1%1"])
def test_every_spelling_of_a_denied_ipv6_address(spelling: str) -> None:
    target_filter = load('modules:\n  m:\n    prober: tcp\n    ip_filter: {denied: ["::1"]}\n')[
        "m"
    ].target_filter
    assert "denied: ::1/128" in verdict(target_filter, spelling)


def test_a_mapped_network_in_the_config_is_the_ipv4_network() -> None:
    target_filter = load(
        'modules:\n  m:\n    prober: tcp\n    ip_filter: {denied: ["::ffff:127.0.0.0/120"]}\n'
    )["m"].target_filter
    assert verdict(target_filter, "127.0.0.200") != "allow"
    assert verdict(target_filter, "127.0.1.1") == "allow"
    assert address_key("::ffff:127.0.0.1") == address_key("127.0.0.1") == (4, 0x7F000001)


UNSPECIFIED_V4 = ["0.0.0.0", "::ffff:0:0", "::ffff:0.0.0.0", "0:0:0:0:0:ffff:0:0"]
"""Every spelling of 0.0.0.0 that an address parser reads (0x0 resolves to it: the probe tests)."""
UNSPECIFIED_V6 = ["::", "0::", "0:0:0:0:0:0:0:0", "::0", "::%lo"]


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        *((ip, ["0.0.0.0", "127.0.0.1"]) for ip in UNSPECIFIED_V4),
        *((ip, ["::", "::1"]) for ip in UNSPECIFIED_V6),
        ("127.0.0.1", ["127.0.0.1"]),  # an ordinary address has one reading: no extra cost
        ("::ffff:127.0.0.1", ["127.0.0.1"]),
        ("::1", ["::1"]),  # IPv4-compatible ::/96 but :: and ::1
        ("::7f00:1", ["::7f00:1", "127.0.0.1"]),
        ("::127.0.0.1", ["::7f00:1", "127.0.0.1"]),
        ("::2", ["::2", "0.0.0.2"]),
        ("64:ff9b::7f00:1", ["64:ff9b::7f00:1", "127.0.0.1"]),  # NAT64, RFC 6052
        ("64:ff9b::127.0.0.1", ["64:ff9b::7f00:1", "127.0.0.1"]),
        ("64:ff9b::", ["64:ff9b::", "0.0.0.0", "127.0.0.1"]),
        ("2002:7f00:1::", ["2002:7f00:1::", "127.0.0.1"]),  # 6to4: bits 16 to 48
        ("2002:7f00:1:ab::1%eth0", ["2002:7f00:1:ab::1", "127.0.0.1"]),
        ("2002::1", ["2002::1", "0.0.0.0", "127.0.0.1"]),
        (
            "64:ff9b:1::7f00:1",
            ["64:ff9b:1::7f00:1"],
        ),  # local-use NAT64: where the IPv4 sits is the site's choice
        ("2001:db8::7f00:1", ["2001:db8::7f00:1"]),
        ("::ffff:0:7f00:1", ["::ffff:0:7f00:1"]),  # SIIT's ::ffff:0:0:0/96: no kernel route
    ],
)
def test_readings(ip: str, expected: list[str]) -> None:
    assert [key_text(key) for key in readings(ip)] == expected


DOCUMENTED_PUBLIC = (
    "modules:\n  m:\n    prober: tcp\n    ip_filter: {denied: [10.0.0.0/8, 172.16.0.0/12, "
    '192.168.0.0/16, 127.0.0.0/8, "::1", "fc00::/7"]}\n'
)
"""docs/configuration.md's tcp_public filter: a deny-list with loopback in it."""


@pytest.mark.parametrize("ip", UNSPECIFIED_V4)
def test_the_unspecified_ipv4_address_is_matched_as_loopback(ip: str) -> None:
    public = load(DOCUMENTED_PUBLIC)["m"].target_filter
    assert verdict(public, ip) == (
        f"target address {ip} (read as 127.0.0.1) is denied: ip_filter denied: 127.0.0.0/8"
    )
    # As itself too: a bogon list's 0.0.0.0/8 catches it, loopback allowed or not.
    bogons = load("modules:\n  m:\n    prober: tcp\n    ip_filter: {denied: [0.0.0.0/8]}\n")
    assert verdict(bogons["m"].target_filter, ip) == (
        f"target address {ip} is denied: ip_filter denied: 0.0.0.0/8"
    )


@pytest.mark.parametrize("ip", UNSPECIFIED_V6)
def test_the_unspecified_ipv6_address_is_matched_as_loopback(ip: str) -> None:
    public = load(DOCUMENTED_PUBLIC)["m"].target_filter
    assert verdict(public, ip) == (
        f"target address {ip} (read as ::1) is denied: ip_filter denied: ::1/128"
    )


@pytest.mark.parametrize(
    "ip", ["0.0.0.1", "0.1.2.3", "0.255.255.255", "::ffff:0.0.0.1", "::2", "64:ff9b::1", "2002:1::"]
)
@pytest.mark.parametrize(
    "block", ["{default: allow}", "{allowed: [0.0.0.0/0, 0.0.0.0/8, 0.0.0.1, '::/0']}"]
)
def test_the_rest_of_0_0_0_0_8_is_no_destination_whatever_the_rules(ip: str, block: str) -> None:
    target_filter = load(f"modules:\n  m:\n    prober: tcp\n    ip_filter: {block}\n")[
        "m"
    ].target_filter
    assert "is denied: not a destination (0.0.0.0/8 but 0.0.0.0 names no host" in verdict(
        target_filter, ip
    )


@pytest.mark.parametrize(
    "ip", ["64:ff9b::7f00:1", "64:ff9b::127.0.0.2", "2002:7f00:1::1", "::7f00:1", "::127.1.2.3"]
)
def test_an_embedded_ipv4_address_is_matched_as_well(ip: str) -> None:
    """A deny of 127.0.0.0/8 catches the IPv6 addresses that reach it through a translator,
    a 6to4 relay or the IPv4-compatible form; an IPv6 rule still applies to them."""
    public = load(DOCUMENTED_PUBLIC)["m"].target_filter
    reading = key_text(readings(ip)[1])
    assert verdict(public, ip) == (
        f"target address {ip} (read as {reading}) is denied: ip_filter denied: 127.0.0.0/8"
    )
    v6_rule = load(
        'modules:\n  m:\n    prober: tcp\n    ip_filter: {denied: ["64:ff9b::/96", '
        '"2002::/16", "::/96"], allowed: [127.0.0.0/8], default: allow}\n'
    )["m"].target_filter
    assert "ip_filter denied: " in verdict(v6_rule, ip)
    assert "(read as" not in verdict(v6_rule, ip)  # the address's own rule denied it first


def test_embedded_addresses_are_allowed_only_when_both_readings_are() -> None:
    modules = load(
        """
modules:
  open: {prober: tcp, ip_filter: {default: allow}}
  v4_only:
    prober: tcp
    ip_filter: {default: deny, allowed: [192.0.2.0/24]}
  both:
    prober: tcp
    ip_filter: {default: deny, allowed: [192.0.2.0/24, "64:ff9b::/96", "2002::/16"]}
"""
    )
    for ip in ("64:ff9b::192.0.2.5", "2002:c000:205::1"):
        assert verdict(modules["open"].target_filter, ip) == "allow"
        assert verdict(modules["both"].target_filter, ip) == "allow"
        assert verdict(modules["v4_only"].target_filter, ip) == (
            f"target address {ip} is denied: ip_filter default: deny"
        )
    for ip in ("64:ff9b::198.51.100.5", "2002:c633:6405::1"):  # the IPv4 one not allowed
        assert verdict(modules["both"].target_filter, ip) == (
            f"target address {ip} (read as 198.51.100.5) is denied: ip_filter default: deny"
        )
    # The metadata rule reads through NAT64 too.
    assert "cloud metadata address" in verdict(modules["open"].target_filter, "64:ff9b::a9fe:a9fe")


@pytest.mark.parametrize(
    ("block", "ip", "refusal"),
    [
        # Explicit for one reading only: the default decides the other, so no credentials.
        ("{default: allow, allowed: [127.0.0.1]}", "0.0.0.0", "ip_filter default: allow"),
        ("{default: allow, allowed: [0.0.0.0]}", "0.0.0.0", "(read as 127.0.0.1)"),
        ('{default: allow, allowed: ["64:ff9b::/96"]}', "64:ff9b::c000:205", "(read as 192.0.2.5)"),
        ("{default: allow, allowed: [192.0.2.5]}", "64:ff9b::c000:205", "default: allow decides"),
        # Every reading named by an allowed entry: explicit.
        ("{default: allow, allowed: [0.0.0.0, 127.0.0.1]}", "0.0.0.0", None),
        ('{default: deny, allowed: ["::", "::1"]}', "::", None),
        ('{default: deny, allowed: ["64:ff9b::/96", 192.0.2.5]}', "64:ff9b::c000:205", None),
    ],
)
def test_explicit_allow_holds_for_every_reading(block: str, ip: str, refusal: str | None) -> None:
    target_filter = load(f"modules:\n  m:\n    prober: tcp\n    ip_filter: {block}\n")[
        "m"
    ].target_filter
    target_filter.check_address(ip)  # allowed
    if refusal is None:
        target_filter.check_address(ip, explicit=True)
        return
    with pytest.raises(TargetForbidden, match="overrides the module's mail server") as caught:
        target_filter.check_address(ip, explicit=True)
    assert refusal in caught.value.message


METADATA = ["169.254.169.254", "::ffff:169.254.169.254", "::ffff:a9fe:a9fe", "fd00:ec2::254"]


@pytest.mark.parametrize(
    "block",
    [
        "",  # no ip_filter at all
        "ip_filter: {default: allow}",
        'ip_filter: {default: allow, allowed: ["169.254.0.0/16", "fd00::/8", "0.0.0.0/0"]}',
    ],
)
def test_metadata_addresses_are_denied_unless_named(block: str) -> None:
    target_filter = load(f"modules:\n  m:\n    prober: icmp\n    {block}\n")["m"].target_filter
    for ip in METADATA:
        assert "cloud metadata address" in verdict(target_filter, ip), ip
    assert verdict(target_filter, "169.254.169.253") == "allow"


def test_metadata_addresses_allowed_by_naming_them() -> None:
    modules = load(
        """
ip_filter: {allowed: ["169.254.169.254", "fd00:ec2::254/128"]}
modules:
  top: {prober: icmp}
  own:
    prober: icmp
    ip_filter: {allowed: [127.0.0.1]}
"""
    )
    for ip in METADATA:
        assert verdict(modules["top"].target_filter, ip) == "allow"
        assert "cloud metadata address" in verdict(modules["own"].target_filter, ip)


def test_a_modules_filter_replaces_the_top_level_one() -> None:
    modules = load(
        """
ip_filter: {denied: [127.0.0.2]}
modules:
  top: {prober: tcp}
  own:
    prober: tcp
    ip_filter: {denied: [127.0.0.3]}
  foreign: {prober: http}
"""
    )
    assert verdict(modules["top"].target_filter, "127.0.0.2") != "allow"
    assert verdict(modules["top"].target_filter, "127.0.0.3") == "allow"
    assert verdict(modules["own"].target_filter, "127.0.0.2") == "allow"
    assert verdict(modules["own"].target_filter, "127.0.0.3") != "allow"


def test_ports() -> None:
    module = load('modules:\n  m:\n    prober: tcp\n    allowed_ports: [443, "8000-8100", "25"]\n')[
        "m"
    ]
    for port in (443, 8000, 8050, 8100, 25):
        assert verdict(module.target_filter, "127.0.0.1", port) == "allow"
    for port in (80, 7999, 8101, 65535):
        assert verdict(module.target_filter, "127.0.0.1", port) == (
            f"port {port} is not in the module's allowed_ports (443, 8000-8100, 25)"
        )
    assert verdict(module.target_filter, "127.0.0.1", None) == "allow"  # no port: ICMP


def test_config_round_trips_through_dump() -> None:
    text = """
ip_filter:
  default: deny
  allowed: [127.0.0.0/8, "::1"]
modules:
  m:
    prober: tcp
    allowed_ports: [443, "8000-8100"]
    ip_filter: {denied: [10.0.0.0/8]}
  plain: {prober: tcp}
"""
    config = parse_config(text, "ipf.yml")
    dumped = dump_yaml(config)
    assert "allowed_ports:\n    - 443\n    - 8000-8100" in dumped
    assert "default: deny" in dumped and "- ::1/128" in dumped
    assert "ip_filter" not in dump_yaml(config.modules["plain"])
    assert dump_yaml(parse_config(dumped, "dumped.yml")) == dumped


BAD = [
    (
        "ip_filter: {allowed: [10.0.0.0/8], denied: [10.1.0.0/16]}",
        "ipf.yml:4: modules.m.ip_filter.default: required when both allowed and denied are given",
    ),
    (
        "ip_filter:\n      allowed:\n        - 10.0.0.0/8\n        - example.com",
        "ipf.yml:7: modules.m.ip_filter.allowed[1]: 'example.com' is not an IP network",
    ),
    (
        "ip_filter:\n      denied:\n        - 10.0.0.1/8",
        "ipf.yml:6: modules.m.ip_filter.denied[0]: '10.0.0.1/8' has host bits set",
    ),
    (
        "ip_filter: {denied: [10.0.0.0/33]}",
        "ipf.yml:4: modules.m.ip_filter.denied[0]: '10.0.0.0/33' is not an IP network",
    ),
    ("ip_filter: {denied: ['fe80::1%eth0']}", "modules.m.ip_filter.denied[0]: 'fe80::1%eth0'"),
    ("ip_filter: {denied: [10]}", "modules.m.ip_filter.denied[0]: expected an IP network"),
    ("ip_filter: {}", "ipf.yml:4: modules.m.ip_filter.allowed: give allowed, denied or both"),
    ("ip_filter: {default: block}", "modules.m.ip_filter.default: 'block' is not valid"),
    ("ip_filter: {allow: [10.0.0.0/8]}", "modules.m.ip_filter.allow: unknown field"),
    (
        "ip_filter:\n      default: deny\n      allowed: [10.0.0.0/8]\n      denied:\n"
        "        - 10.0.0.0/8",
        "ipf.yml:7: modules.m.ip_filter.denied: 10.0.0.0/8 cannot be both allowed and denied",
    ),
    (
        "allowed_ports:\n      - 443\n      - 9000-8000",
        "ipf.yml:6: modules.m.allowed_ports[1]: '9000-8000': the range is reversed",
    ),
    ("allowed_ports: [0]", "modules.m.allowed_ports[0]: 0: ports go from 1 to 65535"),
    ('allowed_ports: ["1-65536"]', "modules.m.allowed_ports[0]: '1-65536': ports go from 1"),
    ('allowed_ports: ["http"]', "modules.m.allowed_ports[0]: expected a port (443) or a range"),
    ("allowed_ports: [true]", "modules.m.allowed_ports[0]: expected a port"),
    ("allowed_ports: []", "ipf.yml:4: modules.m.allowed_ports: must list at least one port"),
]


@pytest.mark.parametrize(("block", "message"), BAD)
def test_config_errors_name_file_line_and_field(block: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(f"modules:\n  m:\n    prober: tcp\n    {block}\n")
    assert str(caught.value).count("\n") == 0, caught.value
    assert message in str(caught.value)


def test_config_errors_at_the_top_level_and_for_icmp_ports() -> None:
    with pytest.raises(ConfigError, match=r"^ipf.yml:2: ip_filter.allowed\[0\]: 'localhost' is"):
        load("\nip_filter: {allowed: [localhost]}\nmodules: {m: {prober: tcp}}\n")
    with pytest.raises(
        ConfigError, match=r"^ipf.yml:4: modules.m.allowed_ports: applies to tcp and email modules"
    ):
        load("modules:\n  m:\n    prober: icmp\n    allowed_ports: [22]\n")


async def test_check_target_for_the_management_api() -> None:
    target_filter = load(
        "modules:\n  m:\n    prober: tcp\n    allowed_ports: [443]\n"
        "    ip_filter: {allowed: [127.0.0.1]}\n"
    )["m"].target_filter
    assert await check_target(target_filter, "localhost", 443) == "127.0.0.1"
    assert await check_target(target_filter, "::ffff:127.0.0.1", 443) == "::ffff:7f00:1"
    with pytest.raises(TargetForbidden, match=r"127\.0\.0\.2 is denied: ip_filter default: deny"):
        await check_target(target_filter, "127.0.0.2", 443)
    with pytest.raises(TargetForbidden, match="port 22 is not in the module's allowed_ports"):
        await check_target(target_filter, "localhost", 22)
    with pytest.raises(ProbeFailure, match="cannot resolve"):  # the guard refuses the name
        await check_target(target_filter, "name.invalid", 443)
    # The API's check reads unspecified and embedded addresses as the probes do.
    for host, reading in (
        ("0.0.0.0", "127.0.0.1"),
        ("::", "::1"),
        ("64:ff9b::7f00:1", "127.0.0.1"),
    ):
        with pytest.raises(TargetForbidden, match=rf"\(read as {reading}\) is denied"):
            await check_target(load(DOCUMENTED_PUBLIC)["m"].target_filter, host, 443)


ROOT = Path(__file__).parent.parent


def test_the_documented_example_says_what_it_does() -> None:
    """docs/configuration.md's example and docs/security.md's account of what it refuses."""
    keys = (ROOT / "docs" / "configuration.md").read_text().split("## `ip_filter:`\n", 1)[1]
    example = keys.split("```yaml\n", 1)[1].split("```", 1)[0]
    section = (ROOT / "docs" / "security.md").read_text().split("## IP filter\n", 1)[1]
    public = parse_config(example, "configuration.md").modules["tcp_public"].target_filter
    assert verdict(public, "10.1.2.3", 443) != "allow"
    assert verdict(public, "192.0.2.1", 443) == "allow"
    assert "allowed_ports" in verdict(public, "192.0.2.1", 22)
    for ip in ("0.0.0.0", "::", "64:ff9b::7f00:1"):  # the section's unspecified and embedded
        assert "(read as " in verdict(public, ip, 443)
    assert (  # the refusal the section quotes, as the filter words it
        "target address 0.0.0.0 (read as 127.0.0.1) is denied: ip_filter denied: 127.0.0.0/8"
        in " ".join(section.split())
    )
    top = parse_config(example + "  other: {prober: icmp}\n", "configuration.md").modules["other"]
    assert verdict(top.target_filter, "10.1.2.3") == "allow"
    assert verdict(top.target_filter, "10.66.0.9") != "allow"
    assert verdict(top.target_filter, "10.0.0.1") != "allow"
    assert verdict(top.target_filter, "192.0.2.1") != "allow"


def test_the_shipped_config_example_loads_uncommented() -> None:
    lines = (ROOT / "config.yml").read_text().splitlines()
    start = lines.index("# ip_filter:")
    block = [lines[start][2:]]
    block += [line[2:] for line in lines[start + 1 :] if line.startswith("#   ")][:3]
    uncommented = [line.replace("# allowed_ports:", "allowed_ports:") for line in lines]
    text = "\n".join(block + uncommented[start + len(block) :])
    modules = parse_config(text, "config.yml").modules
    assert verdict(modules["tcp"].target_filter, "10.0.0.2", 8080) == "allow"
    assert verdict(modules["tcp"].target_filter, "10.0.0.1", 443) != "allow"
    assert "allowed_ports" in verdict(modules["tcp"].target_filter, "10.0.0.2", 80)


def test_a_config_builds_its_filters_into_copies_never_changing_a_module_it_is_given() -> None:
    """Config is data: the top-level filter goes into copies of the modules that have none of
    their own, so a module validated once and given to two configs keeps its own filter, and
    each config its own."""
    module = Module.model_validate({"prober": "tcp"})
    own = module.target_filter
    configs = [
        Config.model_validate({"ip_filter": {"denied": [ip]}, "modules": {"m": module}})
        for ip in ("127.0.0.2", "127.0.0.3")
    ]
    assert module.target_filter is own and verdict(own, "127.0.0.2") == "allow"
    first, second = (c.modules["m"].target_filter for c in configs)
    assert "denied: 127.0.0.2/32" in verdict(first, "127.0.0.2")
    assert verdict(first, "127.0.0.3") == "allow"
    assert "denied: 127.0.0.3/32" in verdict(second, "127.0.0.3")
    assert verdict(second, "127.0.0.2") == "allow"


def test_two_loads_of_one_config_with_filters_have_equal_modules() -> None:
    """The filter is not part of a module's equality (it is built from the module's fields
    and the top-level ip_filter), so a reload that changed nothing re-plans no monitor."""
    text = (
        "ip_filter: {denied: [127.0.0.2]}\n"
        "modules:\n  top: {prober: tcp}\n"
        "  own: {prober: tcp, ip_filter: {denied: [127.0.0.3]}, allowed_ports: [80]}\n"
    )
    old, new = parse_config(text, "ipf.yml"), parse_config(text, "ipf.yml")
    assert old.modules["own"].target_filter is not new.modules["own"].target_filter
    assert stale_modules(old, new) == set()
