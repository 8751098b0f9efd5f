"""``opsmeter dlq list|replay``: show dead letters, and send them back to the topic they came from.

A replay republishes the original record (key, value, its own headers) to its topic, so every consumer
group sees it again; handlers dedupe by ``event_id``, so a replayed event counts once wherever it was
already counted. Several groups dead-lettering one record leave several dead letters of it: a replay
sends it once. What was replayed is remembered as the committed offsets of the group
``opsmeter-dlq-replay``; a dead letter that fails again comes back as a new, pending one.
"""

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from opsmeter_cli.stack import StackConfig
from opsmeter_contracts import DecodeError, decode_event
from opsmeter_runtime.consumer import DEAD_LETTER_HEADERS
from opsmeter_runtime.kafka import EventPublisher, PublishError
from opsmeter_runtime.settings import RuntimeSettings

app = typer.Typer(help="Dead letters: list them, replay them to their topic.", no_args_is_help=True)

REPLAY_GROUP = "opsmeter-dlq-replay"
DLQ_SUFFIX = ".dlq"
IDLE_POLLS = 3
"""Polls that come back empty before the topic counts as read to its end (the local broker's end offsets
are not reliable, so the end is where nothing more arrives)."""


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    replayed: bool
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    record_headers: list[tuple[str, bytes]]

    @property
    def origin(self) -> tuple[str, str, str]:
        """The record it was made from; several groups' dead letters of one record share it."""
        h = self.headers
        if "x-original-offset" in h:
            return (
                h.get("x-original-topic", b"").decode(),
                h.get("x-original-partition", b"").decode(),
                h["x-original-offset"].decode(),
            )
        return ("", str(self.partition), str(self.offset))

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value.decode(errors="replace") if value is not None else None

    def summary(self) -> dict[str, Any]:
        event_id: str | None = None
        event_type: str | None = None
        try:
            event = decode_event(self.value)
            event_id, event_type = str(event.event_id), event.type
        except DecodeError:
            pass
        return {
            "partition": self.partition,
            "offset": self.offset,
            "status": "replayed" if self.replayed else "pending",
            "failure": self.header("x-failure"),
            "errorType": self.header("x-error-type"),
            "error": (self.header("x-error") or "")[:300],
            "consumerGroup": self.header("x-consumer-group"),
            "originalTopic": self.header("x-original-topic"),
            "originalPartition": self.header("x-original-partition"),
            "originalOffset": self.header("x-original-offset"),
            "failedAt": self.header("x-failed-at"),
            "key": self.key.decode(errors="replace") if self.key is not None else None,
            "eventId": event_id,
            "eventType": event_type,
            "bytes": len(self.value),
        }


def _dlq_topic(topic: str) -> str:
    return topic if topic.endswith(DLQ_SUFFIX) else f"{topic}{DLQ_SUFFIX}"


def _bootstrap() -> str:
    return os.environ.get("OPSMETER_KAFKA_BOOTSTRAP") or StackConfig.from_env().kafka_bootstrap


def _letter(record: ConsumerRecord[bytes, bytes], replayed: bool) -> DeadLetter:
    headers = list(record.headers or ())
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        replayed=replayed,
        key=record.key,
        value=record.value or b"",
        headers=dict(headers),
        record_headers=headers,
    )


async def _read(bootstrap: str, topic: str) -> tuple[list[DeadLetter], AIOKafkaConsumer]:
    """Every dead letter of ``topic`` (started consumer returned, for committing); replayed ones marked."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=REPLAY_GROUP,
        client_id=REPLAY_GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
        if topic not in await consumer.topics():
            raise typer.BadParameter(f"no topic {topic!r} on {bootstrap}", param_hint="--topic")
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        replayed_up_to = {tp: (await consumer.committed(tp)) or 0 for tp in partitions}
        await consumer.seek_to_beginning(*partitions)
        letters: list[DeadLetter] = []
        idle = 0
        while idle < IDLE_POLLS:
            batch = await consumer.getmany(timeout_ms=300)
            idle = 0 if any(batch.values()) else idle + 1
            for tp, records in batch.items():
                letters.extend(_letter(r, r.offset < replayed_up_to[tp]) for r in records)
    except BaseException:
        await consumer.stop()
        raise
    letters.sort(key=lambda letter: (letter.partition, letter.offset))
    return letters, consumer


def _parse_offsets(values: list[str]) -> set[tuple[int, int]]:
    chosen: set[tuple[int, int]] = set()
    for value in values:
        partition, sep, offset = value.partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise typer.BadParameter(f"expected PARTITION:OFFSET, got {value!r}", param_hint="--offset")
        chosen.add((int(partition), int(offset)))
    return chosen


async def _replay(bootstrap: str, topic: str, chosen: set[tuple[int, int]]) -> dict[str, Any]:
    letters, consumer = await _read(bootstrap, topic)
    publisher = EventPublisher(RuntimeSettings(kafka_bootstrap=bootstrap), client_id=REPLAY_GROUP)
    try:
        await publisher.start()
        if chosen:
            missing = chosen - {(letter.partition, letter.offset) for letter in letters}
            if missing:
                raise typer.BadParameter(f"no dead letter at {sorted(missing)}", param_hint="--offset")
            selected = [letter for letter in letters if (letter.partition, letter.offset) in chosen]
        else:
            selected = [letter for letter in letters if not letter.replayed]
        sent: set[tuple[str, str, str]] = set()
        for letter in selected:
            if letter.origin in sent:
                continue
            target = letter.header("x-original-topic") or topic.removesuffix(DLQ_SUFFIX)
            headers = [(k, v) for k, v in letter.record_headers if k not in DEAD_LETTER_HEADERS]
            headers.append(("x-replayed-from", f"{topic}:{letter.partition}:{letter.offset}".encode()))
            await publisher.publish_raw(target, letter.key, letter.value, headers)
            sent.add(letter.origin)
        if not chosen:
            ends: dict[TopicPartition, int] = {}
            for letter in letters:
                ends[TopicPartition(topic, letter.partition)] = letter.offset + 1
            if ends:
                await consumer.commit(ends)
        return {"topic": topic, "deadLetters": len(selected), "replayed": len(sent)}
    finally:
        await publisher.stop()
        await consumer.stop()


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except (KafkaError, PublishError) as exc:
        typer.echo(f"the broker did not answer: {type(exc).__name__}: {exc} — is the stack up (make up)?", err=True)
        raise typer.Exit(1) from None


TopicOption = Annotated[
    str, typer.Option(help="The dead-letter topic (e.g. telemetry.llm-requests.dlq) or the topic it belongs to")
]


@app.command("list")
def dlq_list(
    topic: TopicOption,
    pending: Annotated[bool, typer.Option("--pending", help="Only the dead letters not replayed yet")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per dead letter")] = False,
) -> None:
    """Show a dead-letter topic: where each letter came from, why it failed, whether it was replayed."""
    dlq = _dlq_topic(topic)

    async def read() -> list[DeadLetter]:
        letters, consumer = await _read(_bootstrap(), dlq)
        await consumer.stop()
        return letters

    letters: list[DeadLetter] = _run(read())
    shown = [letter.summary() for letter in letters if not (pending and letter.replayed)]
    if as_json:
        for item in shown:
            typer.echo(json.dumps(item))
        return
    if not shown:
        typer.echo(f"{dlq}: no dead letters{' pending' if pending else ''}")
        return
    for item in shown:
        typer.echo(
            f"{item['partition']}:{item['offset']:<6} {item['status']:<8} {item['failure'] or '-':<9} "
            f"{item['consumerGroup'] or '-':<28} from {item['originalTopic']}:{item['originalPartition']}:"
            f"{item['originalOffset']}  {item['errorType']}: {item['error'][:120]}"
        )


@app.command("replay")
def dlq_replay(
    topic: TopicOption,
    offset: Annotated[
        list[str] | None, typer.Option(help="Only this dead letter (PARTITION:OFFSET, repeatable), replayed or not")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only")] = False,
) -> None:
    """Send the pending dead letters (or the ones named) back to their topic, each original record once."""
    dlq = _dlq_topic(topic)
    result: dict[str, Any] = _run(_replay(_bootstrap(), dlq, _parse_offsets(offset or [])))
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"{dlq}: {result['replayed']} record(s) replayed from {result['deadLetters']} dead letter(s)")
