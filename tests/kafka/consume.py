"""Independent Kafka client for the tests: reads a topic from the beginning
with confluent-kafka (its own librdkafka) and prints one JSON line per message:
{"partition", "offset", "key", "value"}. Stops after `--idle-seconds` without a
message (once something was read) or at `--max-seconds`."""
import argparse
import json
import sys
import time
import uuid

from confluent_kafka import Consumer

ap = argparse.ArgumentParser()
ap.add_argument("--brokers", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--idle-seconds", type=float, default=5)
ap.add_argument("--max-seconds", type=float, default=60)
args = ap.parse_args()

c = Consumer({
    "bootstrap.servers": args.brokers,
    "group.id": f"custos-test-reader-{uuid.uuid4()}",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
})
c.subscribe([args.topic])
start = last = time.time()
seen = 0
while time.time() - start < args.max_seconds:
    m = c.poll(0.5)
    if m is None:
        if seen and time.time() - last > args.idle_seconds:
            break
        continue
    if m.error():
        print(f"kafka error: {m.error()}", file=sys.stderr)
        continue
    seen += 1
    last = time.time()
    key = m.key().decode() if m.key() is not None else None
    print(json.dumps({"partition": m.partition(), "offset": m.offset(), "key": key, "value": json.loads(m.value())}))
c.close()
print(f"read {seen} messages from {args.topic}", file=sys.stderr)
