"""How carecast reaches Temporal: Temporal's client configuration (envconfig), carecast's aliases, TLS and mTLS."""

from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from carecast.config import ConfigError, Settings


def settings(tmp_path, **env) -> Settings:
    return Settings.from_env(env={"CARECAST_HOME": str(tmp_path / "home"), **env}, cwd=tmp_path)


def pem(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text(f"-----BEGIN {name}-----\n-----END {name}-----\n")
    return str(path)


def test_nothing_set_is_the_local_dev_server_in_plain(tmp_path):
    local = settings(tmp_path)
    assert (local.temporal_address, local.temporal_namespace) == ("127.0.0.1:7233", "default")
    assert local.temporal_tls is False


def test_temporals_own_variables_are_read_and_carecasts_win_where_set(tmp_path):
    both = dict(TEMPORAL_ADDRESS="temporal.internal:7233", TEMPORAL_NAMESPACE="care", TEMPORAL_GRPC_META_X_TEAM="ops")
    read = settings(tmp_path, **both)
    assert (read.temporal_address, read.temporal_namespace) == ("temporal.internal:7233", "care")
    assert read.temporal_rpc_metadata == {"x-team": "ops"}
    aliased = settings(tmp_path, **both, CARECAST_TEMPORAL_ADDRESS="other:7233", CARECAST_TEMPORAL_NAMESPACE="x")
    assert (aliased.temporal_address, aliased.temporal_namespace) == ("other:7233", "x")


def test_an_api_key_alone_turns_tls_on(tmp_path):
    assert settings(tmp_path, TEMPORAL_API_KEY="k").temporal_tls is True
    assert settings(tmp_path, CARECAST_TEMPORAL_API_KEY="k").temporal_tls is True


def test_mtls_reads_the_certificates_named_by_temporals_variables(tmp_path):
    mtls = settings(
        tmp_path,
        TEMPORAL_TLS_CLIENT_CERT_PATH=pem(tmp_path, "CERT"),
        TEMPORAL_TLS_CLIENT_KEY_PATH=pem(tmp_path, "KEY"),
        TEMPORAL_TLS_SERVER_CA_CERT_PATH=pem(tmp_path, "CA"),
        TEMPORAL_TLS_SERVER_NAME="temporal.internal",
    )
    assert isinstance(mtls.temporal_tls, TLSConfig)
    assert mtls.temporal_tls.client_cert.startswith(b"-----BEGIN CERT")
    assert mtls.temporal_tls.domain == "temporal.internal"


def test_a_profile_in_a_config_file_is_used(tmp_path):
    toml = tmp_path / "temporal.toml"
    toml.write_text('[profile.care]\naddress = "cluster:7233"\nnamespace = "care"\n[profile.care.tls]\n')
    chosen = settings(tmp_path, TEMPORAL_CONFIG_FILE=str(toml), TEMPORAL_PROFILE="care")
    assert (chosen.temporal_address, chosen.temporal_namespace) == ("cluster:7233", "care")
    assert isinstance(chosen.temporal_tls, TLSConfig)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"TEMPORAL_TLS_CLIENT_CERT_PATH": "CERT"}, "mTLS needs both TEMPORAL_TLS_CLIENT_CERT_PATH and"),
        ({"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/nowhere/ca.pem"}, "Temporal TLS: cannot read /nowhere/ca.pem"),
        ({"TEMPORAL_CONFIG_FILE": "/nowhere/temporal.toml"}, "TEMPORAL_CONFIG_FILE=/nowhere/temporal.toml: no such"),
    ],
)
def test_a_temporal_setting_that_cannot_work_is_refused_at_start(tmp_path, env, says):
    env = {k: pem(tmp_path, v) if v == "CERT" else v for k, v in env.items()}
    with pytest.raises(ConfigError, match=says):
        settings(tmp_path, **env)


def test_previous_payload_keys_without_a_current_one_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="PREVIOUS_PAYLOAD_KEYS is set without CARECAST_TEMPORAL_PAYLOAD_KEY"):
        settings(tmp_path, CARECAST_TEMPORAL_PREVIOUS_PAYLOAD_KEYS="o" * 32)
