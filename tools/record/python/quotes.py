#!/usr/bin/env python3
"""A small "quotes" system over RabbitMQ with aio-pika, traced by
opentelemetry-instrumentation-aio-pika and exported as OTLP/HTTP protobuf.

Every service runs in its own OS process with its own TracerProvider and
Resource (service.name, service.instance.id), passed to
AioPikaInstrumentor().instrument(tracer_provider=...). Consumers use
Queue.consume(callback) (the instrumented path).

Parts (QUOTES_PARTS=comma,separated; default: all of them):
  broadcast  ticker --4--> topic exchange "price.events", routing key
               "price.changed.eu"; bound with "price.changed.*" to queue
               "alerts.price" (service alerts) and with "#" to queue
               "archive.price" (service archive). Both ack every message.
  workqueue  ingest --6--> default exchange, routing key "jobs" -> queue
               "jobs", two consumers of service indexer (indexer-1 /
               indexer-2, prefetch 1).
  rpc        gateway --3 requests--> default exchange, routing key
               "quote.rpc" (reply_to = exclusive server-named amq.gen-...
               queue, correlation_id q-N); pricing replies via the default
               exchange with the same correlation_id; gateway consumes the
               3 replies.

Environment: OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL (grpc, else
OTLP/HTTP protobuf; see common.py), RUN_SUFFIX (appended to every
exchange and queue name), AMQP_HOST / AMQP_PORT / AMQP_USER / AMQP_PASSWORD / AMQP_VHOST,
QUOTES_PARTS, HOLD_FILE (see common.py). Every connection is named by its service
(`client_properties={"connection_name": ...}`).
"""
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time

import common

ALL_PARTS = ("broadcast", "workqueue", "rpc")
SUFFIX = os.environ.get("RUN_SUFFIX", "")

EX_PRICE = "price.events" + SUFFIX
RK_PRICE = "price.changed.eu"
Q_ALERTS = "alerts.price" + SUFFIX
Q_ARCHIVE = "archive.price" + SUFFIX
Q_JOBS = "jobs" + SUFFIX
Q_QUOTE = "quote.rpc" + SUFFIX

N_PRICES = 4
N_JOBS = 6
N_QUOTES = 3
TIMEOUT_S = 60.0


def _url():
    return common.amqp("/")


def _provider(service, instance):
    """This process's TracerProvider, with the instrumentation on it."""
    from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor

    provider = common.tracer_provider(service, instance)
    AioPikaInstrumentor().instrument(tracer_provider=provider)
    return provider


async def _connect(name):
    """A connection named `name` (the client-provided `connection_name`)."""
    import aio_pika

    return await aio_pika.connect(_url(), client_properties={"connection_name": name})


def _finish(provider):
    provider.force_flush()
    provider.shutdown()


async def _topology(parts, create):
    """Declares (create=True, after deleting leftovers) or deletes the exchanges and queues."""
    import aio_pika

    conn = await _connect("quotes setup")
    ch = await conn.channel()
    queues = []
    if "broadcast" in parts:
        queues += [Q_ALERTS, Q_ARCHIVE]
    if "workqueue" in parts:
        queues.append(Q_JOBS)
    if "rpc" in parts:
        queues.append(Q_QUOTE)
    for q in queues:
        await ch.queue_delete(q)
    if "broadcast" in parts:
        await ch.exchange_delete(EX_PRICE)
    if create:
        for q in queues:
            await ch.declare_queue(q)
        if "broadcast" in parts:
            ex = await ch.declare_exchange(EX_PRICE, aio_pika.ExchangeType.TOPIC)
            alerts = await ch.get_queue(Q_ALERTS)
            archive = await ch.get_queue(Q_ARCHIVE)
            await alerts.bind(ex, "price.changed.*")
            await archive.bind(ex, "#")
    await conn.close()


def consumer_main(service, instance, queue, events, stop, flush):
    asyncio.run(_consume(service, instance, queue, events, stop, flush))


async def _consume(service, instance, queue, events, stop, flush):
    import aio_pika

    provider = _provider(service, instance)
    conn = await _connect(service)
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=1)
    q = await ch.get_queue(queue)

    async def on_message(message):
        mid = message.message_id
        if service == "indexer":
            await asyncio.sleep(0.05)  # keep round-robin dispatch between the 2 indexers even
        if service == "pricing":
            await ch.default_exchange.publish(
                aio_pika.Message(
                    json.dumps({"price": 42, "request": mid}).encode(),
                    content_type="application/json",
                    correlation_id=message.correlation_id,
                    message_id="reply-" + mid,
                ),
                routing_key=message.reply_to,
            )
        await message.ack()
        events.put(("msg", instance, queue, mid))

    await q.consume(on_message)
    events.put(("ready", instance))
    flushed = False
    while not stop.is_set():
        if flush.is_set() and not flushed:
            provider.force_flush()
            flushed = True
        await asyncio.sleep(0.05)
    await conn.close()
    _finish(provider)


def ticker_main():
    asyncio.run(_ticker())


async def _ticker():
    import aio_pika

    provider = _provider("ticker", "ticker-1")
    conn = await _connect("ticker")
    ch = await conn.channel()
    ex = await ch.get_exchange(EX_PRICE)
    for i in range(1, N_PRICES + 1):
        await ex.publish(
            aio_pika.Message(json.dumps({"price": i}).encode(), message_id="price-%d" % i),
            routing_key=RK_PRICE,
        )
    await conn.close()
    _finish(provider)


def ingest_main():
    asyncio.run(_ingest())


async def _ingest():
    import aio_pika

    provider = _provider("ingest", "ingest-1")
    conn = await _connect("ingest")
    ch = await conn.channel()
    for i in range(1, N_JOBS + 1):
        await ch.default_exchange.publish(
            aio_pika.Message(json.dumps({"job": i}).encode(), message_id="job-%d" % i),
            routing_key=Q_JOBS,
        )
    await conn.close()
    _finish(provider)


def gateway_main():
    rc = asyncio.run(_gateway())
    if rc:
        sys.exit(rc)


async def _gateway():
    import aio_pika

    provider = _provider("gateway", "gateway-1")
    conn = await _connect("gateway")
    ch = await conn.channel()
    reply = await ch.declare_queue("", exclusive=True)  # amq.gen-...
    replies = []
    done = asyncio.Event()

    async def on_reply(message):
        replies.append(message.correlation_id)
        await message.ack()
        if len(replies) == N_QUOTES:
            done.set()

    await reply.consume(on_reply)
    for i in range(1, N_QUOTES + 1):
        await ch.default_exchange.publish(
            aio_pika.Message(
                json.dumps({"symbol": "S%d" % i}).encode(),
                message_id="quote-req-%d" % i,
                correlation_id="q-%d" % i,
                reply_to=reply.name,
            ),
            routing_key=Q_QUOTE,
        )
    try:
        await asyncio.wait_for(done.wait(), TIMEOUT_S)
    except asyncio.TimeoutError:
        pass
    await conn.close()
    _finish(provider)
    if len(replies) != N_QUOTES:
        return "gateway: got %d replies, expected %d" % (len(replies), N_QUOTES)
    print("gateway: reply queue %s, replies %s" % (reply.name, sorted(replies)), flush=True)
    return None


def main():
    parts = [p for p in os.environ.get("QUOTES_PARTS", ",".join(ALL_PARTS)).split(",") if p]
    bad = set(parts) - set(ALL_PARTS)
    if bad:
        sys.exit("unknown QUOTES_PARTS: %s" % ",".join(sorted(bad)))
    asyncio.run(_topology(parts, create=True))

    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    stop = ctx.Event()
    flush = ctx.Event()
    consumers, expected, producers = [], {}, []
    if "broadcast" in parts:
        consumers += [("alerts", "alerts-1", Q_ALERTS), ("archive", "archive-1", Q_ARCHIVE)]
        expected.update({Q_ALERTS: N_PRICES, Q_ARCHIVE: N_PRICES})
        producers.append(ticker_main)
    if "workqueue" in parts:
        consumers += [("indexer", "indexer-1", Q_JOBS), ("indexer", "indexer-2", Q_JOBS)]
        expected[Q_JOBS] = N_JOBS
        producers.append(ingest_main)
    if "rpc" in parts:
        consumers.append(("pricing", "pricing-1", Q_QUOTE))
        expected[Q_QUOTE] = N_QUOTES
        producers.append(gateway_main)

    procs = []
    for service, instance, queue in consumers:
        p = ctx.Process(target=consumer_main, args=(service, instance, queue, events, stop, flush), name=instance)
        p.start()
        procs.append(p)
    counts = {q: 0 for q in expected}
    per_instance, ready = {}, set()
    deadline = time.monotonic() + TIMEOUT_S

    def pump(block_s):
        try:
            ev = events.get(timeout=block_s)
        except Exception:
            return
        if ev[0] == "ready":
            ready.add(ev[1])
        else:
            _, instance, queue, mid = ev
            counts[queue] += 1
            per_instance.setdefault(instance, []).append(mid)

    while len(ready) < len(consumers):
        if time.monotonic() > deadline:
            stop.set()
            sys.exit("consumers not ready: %s" % ready)
        pump(0.5)
    pprocs = [ctx.Process(target=fn, name=fn.__name__) for fn in producers]
    for p in pprocs:
        p.start()
    while any(counts[q] < n for q, n in expected.items()):
        if time.monotonic() > deadline:
            stop.set()
            sys.exit("timeout: processed %s, expected %s" % (counts, expected))
        pump(0.5)
    if common.hold_file():
        for p in pprocs:
            p.join(TIMEOUT_S)  # the producers' connections are gone when discovery looks
        flush.set()
        common.hold(common.hold_file())
    stop.set()
    rc = 0
    for p in pprocs + procs:
        p.join(TIMEOUT_S)
        if p.exitcode != 0:
            print("process %s exited with %s" % (p.name, p.exitcode), file=sys.stderr)
            rc = 1
    asyncio.run(_topology(parts, create=False))
    for inst in sorted(per_instance):
        print("%s: %s" % (inst, " ".join(per_instance[inst])), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
