"""The configuration file as typed data.

Everything a prober needs is validated here, once, at load time: regexes are compiled and TLS
contexts are built before the first probe runs. Probers receive these frozen objects and never
see raw YAML. Errors name the file, the line and the field.

fields.py holds the value types; address.py, tls.py, email.py and modules.py the blocks;
policies.py and traceroute.py the probe policies; errors.py turns problems into
`file:line: field: message`; loader.py reads and writes files.
"""

from .address import AddressChoice
from .email import EmailModule, ReceiveSettings, SmtpSettings
from .errors import ConfigError
from .fields import Secret
from .icmp import IcmpModule
from .loader import describe_unsupported, dump_yaml, load_config, parse_config
from .modules import Config, Module, ProberName
from .tcp import QueryStep, TcpModule

__all__ = [
    "AddressChoice",
    "Config",
    "ConfigError",
    "EmailModule",
    "IcmpModule",
    "Module",
    "ProberName",
    "QueryStep",
    "ReceiveSettings",
    "Secret",
    "SmtpSettings",
    "TcpModule",
    "describe_unsupported",
    "dump_yaml",
    "load_config",
    "parse_config",
]
