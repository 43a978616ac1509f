"""Where Temporal is and how to reach it: carecast's variables, then Temporal's own client configuration.

Temporal's client configuration (`temporalio.envconfig`) is what the Temporal CLI and
every SDK read: a profile in `temporal.toml` (`TEMPORAL_CONFIG_FILE`, `TEMPORAL_PROFILE`)
and the `TEMPORAL_*` variables — `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`,
`TEMPORAL_API_KEY`, and for TLS and mTLS `TEMPORAL_TLS`,
`TEMPORAL_TLS_SERVER_CA_CERT_PATH`, `TEMPORAL_TLS_CLIENT_CERT_PATH`,
`TEMPORAL_TLS_CLIENT_KEY_PATH`, `TEMPORAL_TLS_SERVER_NAME`, and `TEMPORAL_GRPC_META_*`.
carecast's own `CARECAST_TEMPORAL_ADDRESS`, `_NAMESPACE` and `_API_KEY` are kept as
aliases and win where set. An API key without any TLS setting turns TLS on (Temporal
Cloud). A certificate that cannot be read, or half of a client pair, is refused here,
at start, rather than at the first connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.envconfig import ClientConfigProfile
from temporalio.service import TLSConfig


class TemporalConfigError(ValueError):
    pass


@dataclass(frozen=True)
class TemporalConnection:
    address: str
    namespace: str
    api_key: str | None = None
    tls: bool | TLSConfig = False
    rpc_metadata: Mapping[str, str] = field(default_factory=dict)


def temporal_connection(env: Mapping[str, str], default_address: str) -> TemporalConnection:
    config_file = env.get("TEMPORAL_CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        raise TemporalConfigError(f"TEMPORAL_CONFIG_FILE={config_file}: no such file")
    try:
        profile = ClientConfigProfile.load(profile=env.get("TEMPORAL_PROFILE") or None, override_env_vars=dict(env))
    except Exception as exc:  # the SDK's bridge raises its own errors for a malformed file or profile
        raise TemporalConfigError(f"Temporal client configuration (temporal.toml, TEMPORAL_*): {exc}") from None
    api_key = env.get("CARECAST_TEMPORAL_API_KEY") or profile.api_key
    return TemporalConnection(
        address=env.get("CARECAST_TEMPORAL_ADDRESS") or profile.address or default_address,
        namespace=env.get("CARECAST_TEMPORAL_NAMESPACE") or profile.namespace or "default",
        api_key=api_key,
        tls=_tls(profile, api_key),
        rpc_metadata=dict(profile.grpc_meta),
    )


def _tls(profile: ClientConfigProfile, api_key: str | None) -> bool | TLSConfig:
    settings = profile.tls
    if settings is None:
        return api_key is not None
    if bool(settings.client_cert) != bool(settings.client_private_key):
        raise TemporalConfigError(
            "mTLS needs both TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH (or both in the profile)"
        )
    try:
        return settings.to_connect_tls_config()
    except OSError as exc:
        raise TemporalConfigError(f"Temporal TLS: cannot read {exc.filename}: {exc.strerror}") from None
