#!/usr/bin/env python3
"""NATS JetStream with W3C trace context in message headers: nats-py clients traced with the
OpenTelemetry SDK by hand (there is no nats-py instrumentation), as an application would. The
producer injects `traceparent` into the NATS message headers with the SDK's W3C propagator,
the consumers extract it, and every span carries the messaging semantic conventions
(messaging.system=nats, messaging.destination.name=<subject>, messaging.operation.type,
messaging.consumer.group.name=<durable>, messaging.message.id=<Nats-Msg-Id>).

Scenario (names suffixed by RUN_SUFFIX where a name may hold it):
  stream ORDERS (subjects orders.>, file storage), deleted first if it exists;
  durable pull consumer `invoicer` (filter orders.created) and durable push consumer
  `auditor` (all of orders.>, delivering to deliver.auditor), both made explicitly, so they
  outlive the connections that read them (JetStream discovery lists them afterwards).
  checkout (checkout-1) publishes 4 orders.created (order-1..order-4) and 2 orders.cancelled
  (cancel-1, cancel-2), each with Nats-Msg-Id and traceparent headers.
  invoicer, two instances sharing the durable: invoicer-1 fetches 2 and acks them; invoicer-2
  fetches 2: order-3 fails (span status ERROR, the message terminated), order-4 is acked.
  auditor (auditor-1, connection name `auditor`) receives all 6 on deliver.auditor and acks.
The stream and its consumers are left in place unless NATS_CLEANUP=1.

Each service instance has its own TracerProvider and Resource and exports once, at the end.

Environment: NATS_URL (default nats://127.0.0.1:4222), RUN_SUFFIX, and the OTLP exporter's
variables (tools/record/python/common.py).
"""
import asyncio
import os
import sys

from common import tracer_provider

SUFFIX = os.environ.get("RUN_SUFFIX", "")
# Stream and consumer names are single tokens: no dots.
TOKEN_SUFFIX = "".join(c if c.isalnum() or c in "-_" else "_" for c in SUFFIX)
STREAM = "ORDERS" + TOKEN_SUFFIX
CREATED = "orders.created" + SUFFIX
CANCELLED = "orders.cancelled" + SUFFIX
SUBJECTS = "orders.>"
INVOICER = "invoicer"
AUDITOR = "auditor"
DELIVER = "deliver.auditor" + SUFFIX
FAILS = "order-3"
TIMEOUT_S = 10.0
SCOPE = "switchyard.record.nats"


def url():
    return os.environ.get("NATS_URL", "nats://127.0.0.1:4222")


def peer():
    """server.address and server.port of the NATS URL."""
    rest = url().split("://", 1)[-1].rsplit("@", 1)[-1]
    host, _, port = rest.partition(":")
    return host, int(port or "4222")


def base_attributes(subject):
    host, port = peer()
    return {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "server.address": host,
        "server.port": port,
    }


async def setup():
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url(), name="scenario setup")
    js = nc.jetstream()
    try:
        await js.delete_stream(STREAM)
    except NotFoundError:
        pass
    await js.add_stream(
        StreamConfig(name=STREAM, subjects=[SUBJECTS],
                     storage=StorageType.FILE)
    )
    await js.add_consumer(
        STREAM,
        ConsumerConfig(durable_name=INVOICER, filter_subject=CREATED,
                       ack_policy=AckPolicy.EXPLICIT),
    )
    await js.add_consumer(
        STREAM,
        ConsumerConfig(durable_name=AUDITOR, deliver_subject=DELIVER,
                       ack_policy=AckPolicy.EXPLICIT),
    )
    await nc.close()


async def checkout():
    import nats
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    provider = tracer_provider("checkout", "checkout-1")
    tracer = provider.get_tracer(SCOPE)
    propagator = TraceContextTextMapPropagator()
    nc = await nats.connect(url(), name="checkout")
    js = nc.jetstream()
    messages = [(CREATED, "order-%d" % i) for i in range(1, 5)]
    messages += [(CANCELLED, "cancel-%d" % i) for i in range(1, 3)]
    for subject, msg_id in messages:
        body = ('{"id": "%s"}' % msg_id).encode()
        attrs = base_attributes(subject)
        attrs.update({
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.message.id": msg_id,
            "messaging.message.body.size": len(body),
        })
        with tracer.start_as_current_span("send " + subject, kind=SpanKind.PRODUCER,
                                          attributes=attrs):
            headers = {"Nats-Msg-Id": msg_id}
            propagator.inject(headers)
            await js.publish(subject, body, headers=headers, timeout=TIMEOUT_S)
    await nc.close()
    provider.shutdown()


def consume_span(tracer, propagator, msg, durable):
    """The CONSUMER span of one delivered message, child of the context in its headers."""
    from opentelemetry.trace import SpanKind

    headers = msg.headers or {}
    parent = propagator.extract(headers)
    attrs = base_attributes(msg.subject)
    attrs.update({
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.consumer.group.name": durable,
        "messaging.destination.subscription.name": durable,
        "messaging.message.body.size": len(msg.data),
    })
    if headers.get("Nats-Msg-Id"):
        attrs["messaging.message.id"] = headers["Nats-Msg-Id"]
    return tracer.start_as_current_span("process " + msg.subject, context=parent,
                                        kind=SpanKind.CONSUMER, attributes=attrs,
                                        record_exception=True, set_status_on_exception=True)


async def invoicer(instance, count):
    import nats
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    provider = tracer_provider("invoicer", instance)
    tracer = provider.get_tracer(SCOPE)
    propagator = TraceContextTextMapPropagator()
    nc = await nats.connect(url(), name="invoicer")
    js = nc.jetstream()
    sub = await js.pull_subscribe_bind(durable=INVOICER, stream=STREAM)
    got = 0
    while got < count:
        for msg in await sub.fetch(count - got, timeout=TIMEOUT_S):
            got += 1
            msg_id = (msg.headers or {}).get("Nats-Msg-Id")
            try:
                with consume_span(tracer, propagator, msg, INVOICER):
                    if msg_id == FAILS:
                        await msg.term()
                        raise RuntimeError("invoicer failed on " + msg_id)
                    await msg.ack_sync(timeout=TIMEOUT_S)
            except RuntimeError:
                pass
    await nc.close()
    provider.shutdown()


async def auditor(count):
    import nats
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    provider = tracer_provider("auditor", "auditor-1")
    tracer = provider.get_tracer(SCOPE)
    propagator = TraceContextTextMapPropagator()
    nc = await nats.connect(url(), name="auditor")
    sub = await nc.subscribe(DELIVER)
    for _ in range(count):
        msg = await sub.next_msg(timeout=TIMEOUT_S)
        with consume_span(tracer, propagator, msg, AUDITOR):
            await msg.ack_sync(timeout=TIMEOUT_S)
    await nc.close()
    provider.shutdown()


async def cleanup():
    import nats

    nc = await nats.connect(url(), name="scenario cleanup")
    await nc.jetstream().delete_stream(STREAM)
    await nc.close()


async def main():
    await setup()
    await checkout()
    await invoicer("invoicer-1", 2)
    await invoicer("invoicer-2", 2)
    await auditor(6)
    if os.environ.get("NATS_CLEANUP") == "1":
        await cleanup()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), 120))
    sys.exit(0)
