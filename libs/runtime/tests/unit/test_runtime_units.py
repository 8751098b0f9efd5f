import pytest
from pydantic import ValidationError

from opsmeter_runtime.auth import bearer_token, issue_credential, parse_credential, sha256_hex, verify_operator_token
from opsmeter_runtime.money import format_micro_usd
from opsmeter_runtime.settings import RuntimeSettings


class TestMoney:
    @pytest.mark.parametrize(
        ("micro", "text"),
        [(0, "0"), (1, "0.000001"), (220, "0.00022"), (2_500_000, "2.5"), (19_864_997, "19.864997"), (-5, "-0.000005")],
    )
    def test_exact_decimal_strings(self, micro: int, text: str) -> None:
        assert format_micro_usd(micro) == text


class TestCredentials:
    def test_issued_credentials_parse_back_and_keep_only_a_hash(self) -> None:
        issued = issue_credential("api_key", "ingest")
        kind, credential_id, secret = parse_credential(issued.plaintext) or ("", "", "")
        assert (kind, credential_id) == ("api_key", issued.credential_id)
        assert sha256_hex(secret) == issued.secret_sha256
        assert secret not in issued.secret_sha256
        assert issued.plaintext.startswith("om_live_")

    def test_admin_tokens_are_not_api_keys(self) -> None:
        token = issue_credential("admin_token", "owner")
        assert token.plaintext.startswith("om_adm_")
        assert parse_credential(token.plaintext) is not None
        assert parse_credential(token.plaintext)[0] == "admin_token"  # type: ignore[index]

    @pytest.mark.parametrize("presented", ["", "garbage", "om_live__", "sk_live_abc_def", "om_live_a b_c"])
    def test_malformed_credentials_do_not_parse(self, presented: str) -> None:
        assert parse_credential(presented) is None

    def test_bearer_header(self) -> None:
        assert bearer_token("Bearer abc") == "abc"
        assert bearer_token("Basic abc") is None
        assert bearer_token(None) is None

    def test_operator_token(self) -> None:
        assert verify_operator_token("t0k", sha256_hex("t0k"))
        assert not verify_operator_token("t0k", sha256_hex("other"))
        assert not verify_operator_token(None, sha256_hex("t0k"))
        assert not verify_operator_token("t0k", None)


class TestSettings:
    def test_prod_refuses_local_defaults(self) -> None:
        with pytest.raises(ValidationError, match="OPSMETER_KAFKA_BOOTSTRAP"):
            RuntimeSettings(env="prod", operator_token_sha256="0" * 64)
        with pytest.raises(ValidationError, match="OPSMETER_OPERATOR_TOKEN_SHA256"):
            RuntimeSettings(env="prod", kafka_bootstrap="kafka-0.kafka:9092")

    def test_prod_accepts_real_endpoints(self) -> None:
        settings = RuntimeSettings(
            env="prod",
            clickhouse_url="https://ch.internal:8443/opsmeter",
            kafka_bootstrap="kafka-0.kafka:9092",
            operator_token_sha256="0" * 64,
        )
        assert settings.kafka_bootstrap == "kafka-0.kafka:9092"

    def test_reads_the_opsmeter_prefix(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OPSMETER_KAFKA_BOOTSTRAP", "127.0.0.1:29092")
        assert RuntimeSettings().kafka_bootstrap == "127.0.0.1:29092"
