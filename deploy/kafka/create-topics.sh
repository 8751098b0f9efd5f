#!/bin/sh
# Creates Opsmeter's topics (libs/contracts/src/opsmeter_contracts/topics.py) if they do not exist yet.
# Topics are keyed by workspace id. Event streams are never compacted (compaction would keep one event per
# workspace); policy.settings holds a full settings snapshot per workspace, so it is compacted.
# Configs of existing topics are left alone; change them with kafka-configs.sh.
set -eu

BOOTSTRAP="${BOOTSTRAP:-kafka:9092}"
PARTITIONS="${PARTITIONS:-6}"
REPLICATION="${REPLICATION:-1}"
MIN_INSYNC_REPLICAS="${MIN_INSYNC_REPLICAS:-1}"
# Telemetry and decisions are high volume: keep a bounded window (default 90 days).
STREAM_RETENTION_MS="${STREAM_RETENTION_MS:-7776000000}"
KAFKA_TOPICS="${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}"

create() {
    "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$1" \
        --partitions "$PARTITIONS" --replication-factor "$REPLICATION" \
        --config cleanup.policy="${3:-delete}" \
        --config retention.ms="$2" \
        --config min.insync.replicas="$MIN_INSYNC_REPLICAS"
}

for topic in telemetry.llm-requests policy.decisions; do
    create "$topic" "$STREAM_RETENTION_MS"
done
# Workspace and subscription history is the system of record for the projections: kept forever.
for topic in workspaces.events billing.subscriptions billing.webhooks alerting.events; do
    create "$topic" -1
done
create policy.settings -1 compact
# Dead letters are never dropped.
for topic in telemetry.llm-requests workspaces.events policy.decisions billing.subscriptions billing.webhooks policy.settings \
    alerting.events; do
    create "$topic.dlq" -1
done

"$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --describe --topics-with-overrides
