#!/usr/bin/env python3
"""The Python half of the Kafka scenario (tools/record/kafka_scenario.sh runs the whole):
confluent-kafka traced with opentelemetry-instrumentation-confluent-kafka, exported OTLP/HTTP
protobuf.

  orders_kafka.py produce FIRST COUNT   service checkout-py: orders FIRST..FIRST+COUNT-1, each
                                        produced and flushed alone (one per produce request),
                                        keyed order-N
  orders_kafka.py consume               service audit (client.id "audit"), group
                                        audit<RUN_SUFFIX>: polls one message at a time (the
                                        instrumentation's `recv` span around a `process` span
                                        linking to the producer), fails the orders in AUDIT_FAILS
                                        (default order-3,order-9: the process span's status is
                                        ERROR), commits each message synchronously; runs until
                                        SIGTERM, then closes and exports

The consumer writes $KAFKA_STATE/audit.assigned and audit.count as the Node consumers do.

Environment: KAFKA_BOOTSTRAP (HOST:PORT), KAFKA_STATE, RUN_SUFFIX, AUDIT_FAILS, and the OTLP
exporter's variables (tools/record/python/common.py).
"""
import json
import os
import signal
import sys

from common import tracer_provider

SUFFIX = os.environ.get("RUN_SUFFIX", "")
TOPIC = "orders" + SUFFIX
GROUP = "audit" + SUFFIX
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
STATE = os.environ.get("KAFKA_STATE", ".")
FAILS = set(filter(None, os.environ.get("AUDIT_FAILS", "order-3,order-9").split(",")))


def instrumentor():
    from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor

    return ConfluentKafkaInstrumentor()


def produce(first, count):
    from confluent_kafka import Producer

    provider = tracer_provider("checkout-py", "checkout-py-1")
    producer = instrumentor().instrument_producer(
        Producer({"bootstrap.servers": BOOTSTRAP, "client.id": "checkout-py", "linger.ms": 0}),
        tracer_provider=provider,
    )
    for i in range(first, first + count):
        order = "order-%d" % i
        producer.produce(TOPIC, key=order, value=json.dumps({"order": order, "total": i * 10}))
        # Flushed alone: one message per produce request.
        producer.flush(10)
    provider.shutdown()


def write(name, text):
    with open(os.path.join(STATE, name), "w") as f:
        f.write(text)


def consume():
    from confluent_kafka import Consumer
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    provider = tracer_provider("audit", "audit-1")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def on_assign(consumer, partitions):
        write("audit.assigned", ",".join(str(p.partition) for p in partitions))

    consumer = instrumentor().instrument_consumer(
        Consumer({
            "bootstrap.servers": BOOTSTRAP,
            "client.id": "audit",
            "group.id": GROUP,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 10000,
        }),
        tracer_provider=provider,
    )
    consumer.subscribe([TOPIC], on_assign=on_assign)
    count = 0
    write("audit.count", "0")
    while not stopping:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        order = (msg.key() or b"").decode()
        if order in FAILS:
            # The instrumentation's process span is current until the next poll.
            span = trace.get_current_span()
            span.set_status(Status(StatusCode.ERROR, "audit refused " + order))
        consumer.commit(message=msg, asynchronous=False)
        count += 1
        write("audit.count", str(count))
    consumer.close()
    provider.shutdown()


def main():
    what = sys.argv[1:2]
    if what == ["produce"]:
        produce(int(sys.argv[2]), int(sys.argv[3]))
    elif what == ["consume"]:
        consume()
    else:
        sys.exit("usage: orders_kafka.py produce FIRST COUNT | consume")


if __name__ == "__main__":
    main()
