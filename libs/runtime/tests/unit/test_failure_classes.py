import pytest
import redis.exceptions
from aiokafka import errors as kafka_errors
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from pydantic import BaseModel, ValidationError

from opsmeter_contracts import DecodeError
from opsmeter_runtime.errors import Failure, PoisonMessage, TransientError, classify_failure
from opsmeter_runtime.kafka import PublishError
from opsmeter_runtime.localstack import RestartBackoff


def raised_from(outer: Exception, cause: BaseException) -> Exception:
    try:
        raise outer from cause
    except Exception as exc:
        return exc


def validation_error() -> ValidationError:
    class Model(BaseModel):
        n: int

    try:
        Model.model_validate({"n": "x"})
    except ValidationError as exc:
        return exc
    raise AssertionError("no validation error")


class TestClassifyFailure:
    @pytest.mark.parametrize(
        "exc",
        [
            redis.exceptions.ConnectionError("Connection refused"),
            redis.exceptions.TimeoutError("Timeout reading from socket"),
            redis.exceptions.BusyLoadingError("loading"),
            redis.exceptions.ReadOnlyError("READONLY"),
            kafka_errors.KafkaConnectionError(),
            kafka_errors.KafkaTimeoutError(),
            kafka_errors.NotLeaderForPartitionError(),
            OperationalError("Network Error"),
            DatabaseError("Code: 241. Memory limit exceeded", code=241),
            ConnectionRefusedError(),
            TimeoutError(),
            TransientError("locked"),
            raised_from(PublishError("telemetry: TimeoutError"), TimeoutError()),
            raised_from(RuntimeError("wrapped"), redis.exceptions.ConnectionError()),
            ExceptionGroup("both stores", [redis.exceptions.TimeoutError(), OperationalError("down")]),
        ],
        ids=type,
    )
    def test_a_store_or_broker_that_is_unavailable_is_transient(self, exc: BaseException) -> None:
        assert classify_failure(exc) is Failure.TRANSIENT

    @pytest.mark.parametrize(
        "exc",
        [
            DecodeError("not JSON"),
            PoisonMessage("unknown plan"),
            validation_error(),
            raised_from(PoisonMessage("says so"), redis.exceptions.ConnectionError()),
            ExceptionGroup("one bad", [redis.exceptions.TimeoutError(), PoisonMessage("bad")]),
        ],
        ids=type,
    )
    def test_the_message_s_own_fault_is_poison(self, exc: BaseException) -> None:
        assert classify_failure(exc) is Failure.POISON

    @pytest.mark.parametrize(
        "exc",
        [
            KeyError("model"),
            redis.exceptions.ResponseError("WRONGTYPE"),
            DatabaseError("Code: 60. Unknown table", code=60),
            kafka_errors.RecordTooLargeError(),
            PublishError("a record of 2000000 bytes does not fit a batch"),
        ],
        ids=type,
    )
    def test_anything_else_is_unknown(self, exc: BaseException) -> None:
        assert classify_failure(exc) is Failure.UNKNOWN


class TestRestartBackoff:
    def test_a_crash_loop_waits_longer_each_time_up_to_the_cap(self) -> None:
        backoff = RestartBackoff(first_s=0.5, max_s=4.0, stable_after_s=60.0)
        delays = [backoff.delay_after_exit(ran_for_s=1.0) for _ in range(6)]
        assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
        assert backoff.restarts == 6

    def test_a_child_that_stayed_up_is_restarted_soon_again(self) -> None:
        backoff = RestartBackoff(first_s=0.5, max_s=30.0, stable_after_s=60.0)
        for _ in range(4):
            backoff.delay_after_exit(ran_for_s=1.0)
        assert backoff.delay_after_exit(ran_for_s=600.0) == 0.5
        assert backoff.restarts == 5
