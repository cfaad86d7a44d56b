#!/usr/bin/env python3
"""A small "shop" built from several services talking over RabbitMQ with pika,
traced by opentelemetry-instrumentation-pika and exported as OTLP/HTTP protobuf.

Every service runs in its own OS process with its own TracerProvider and
Resource (service.name, service.instance.id); the pika channel of each service
is instrumented with PikaInstrumentor.instrument_channel(channel,
tracer_provider=...). No global tracer provider is installed.
With SHOP_INSTRUMENT=global each process calls PikaInstrumentor().instrument(
tracer_provider=...) instead, as zero-code instrumentation does: that wraps both
BlockingConnection.channel and the asynchronous Connection.channel underneath
it, so every basic_publish gives two nested PRODUCER spans of one message
(BlockingChannel's around its inner Channel's).

Parts (select with SHOP_PARTS=comma,separated; default: all but retry):
  broadcast  orders --5--> fanout exchange "order.created"
               -> queue "shipping.order-created" (service shipping, acks all)
               -> queue "billing.order-created"  (service billing; message
                  order-3 raises inside the consumer callback, after a
                  basic_nack(requeue=False); the other 4 are acked)
  workqueue  checkout --6--> default exchange, routing key "tasks"
               -> queue "tasks", two consumers of service worker
                  (service.instance.id worker-1 / worker-2, prefetch 1)
  rpc        wallet --3 requests--> default exchange, routing key
               "identity.2fa" (reply_to = exclusive server-named amq.gen-...
               queue, correlation_id 2fa-N); identity replies to reply_to via
               the default exchange with the same correlation_id; wallet
               consumes the 3 replies.
  audit      audit --2--> topic exchange "audit.events" (routing key
               "audit.login"), no queue bound: messages are dropped.
  retry      (not in the default) cashier --4--> default exchange, routing key
               "payments" -> queue "payments" (x-dead-letter-exchange
               "payments.dlx", a fanout exchange bound to queue "payments.dead"),
               service settler: every first delivery is nacked with requeue, every
               redelivery acked except payment-2's, nacked without requeue (dead-lettered
               into "payments.dead"): 4 redeliveries, 1 dead letter.
  deadletter (not in the default) ledger --5--> default exchange, routing key
               "ledger.entries" -> queue "ledger.entries" (x-dead-letter-exchange
               "ledger.dlx", a fanout exchange bound to queue "ledger.dead"), service
               poster (poster-1, prefetch 1): entry-1 and entry-5 acked; entry-2 and
               entry-4 rejected with basic_reject(requeue=False), so RabbitMQ moves them
               through "ledger.dlx" into "ledger.dead"; entry-3 nacked with requeue on its
               first delivery and acked on its redelivery. Service reconciler
               (reconciler-1) consumes "ledger.dead" and acks both dead letters.
               With SHOP_BROKER_DIR=DIR the management API's answers for the virtual
               host (exchanges, queues, bindings, consumers, connections, channels) are
               written to DIR while every consumer is still connected.

Environment:
  OTEL_EXPORTER_OTLP_ENDPOINT  default http://127.0.0.1:4318 (SDK appends /v1/traces)
  OTEL_EXPORTER_OTLP_COMPRESSION  e.g. gzip (read by the SDK exporter)
  RUN_SUFFIX    appended to every exchange and queue name (default empty)
  AMQP_HOST / AMQP_PORT / AMQP_USER / AMQP_PASSWORD  default 127.0.0.1 / 5672 / guest / guest
  AMQP_VHOST    the virtual host (default /)
  SHOP_PARTS    see above
  SHOP_INSTRUMENT  channel (default: instrument_channel on each channel) or global
  SHOP_HOLD_FILE (or HOLD_FILE, as the other scenarios read it)  when set, the consumers export their spans once every message is processed
                and stay connected until this file exists (at most 120 s): broker discovery
                then sees them beside the spans. Every connection is named by its service
                (the client-provided `connection_name`).
"""
import json
import multiprocessing as mp
import os
import sys
import time

DEFAULT_PARTS = ("broadcast", "workqueue", "rpc", "audit")
ALL_PARTS = DEFAULT_PARTS + ("retry", "deadletter")
SUFFIX = os.environ.get("RUN_SUFFIX", "")

EX_ORDER_CREATED = "order.created" + SUFFIX
Q_SHIPPING = "shipping.order-created" + SUFFIX
Q_BILLING = "billing.order-created" + SUFFIX
Q_TASKS = "tasks" + SUFFIX
Q_IDENTITY = "identity.2fa" + SUFFIX
EX_AUDIT = "audit.events" + SUFFIX
Q_PAYMENTS = "payments" + SUFFIX
EX_PAYMENTS_DLX = "payments.dlx" + SUFFIX
Q_PAYMENTS_DEAD = "payments.dead" + SUFFIX
Q_LEDGER = "ledger.entries" + SUFFIX
EX_LEDGER_DLX = "ledger.dlx" + SUFFIX
Q_LEDGER_DEAD = "ledger.dead" + SUFFIX

N_ORDERS = 5
N_TASKS = 6
N_2FA = 3
N_AUDIT = 2
N_PAYMENTS = 4
BILLING_FAILS_MESSAGE_ID = "order-3"
SETTLER_REJECTS_MESSAGE_ID = "payment-2"
N_ENTRIES = 5
POSTER_REJECTS = ("entry-2", "entry-4")
POSTER_REQUEUES = "entry-3"

TIMEOUT_S = 60.0


BILLING_ERROR = "billing failed to charge "


def _params(name):
    import pika

    return pika.ConnectionParameters(
        host=os.environ.get("AMQP_HOST", "127.0.0.1"),
        port=int(os.environ.get("AMQP_PORT", "5672")),
        virtual_host=os.environ.get("AMQP_VHOST", "/"),
        credentials=pika.PlainCredentials(
            os.environ.get("AMQP_USER", "guest"), os.environ.get("AMQP_PASSWORD", "guest")
        ),
        client_properties={"connection_name": name},
    )


def _provider(service, instance):
    """One TracerProvider + Resource per service process."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service, "service.instance.id": instance})
    provider = TracerProvider(resource=resource)
    # Long schedule delay: everything is exported by shutdown(), normally in a
    # single request per process.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=60000))
    return provider


def _instrumented_channel(provider, service):
    import pika
    from opentelemetry.instrumentation.pika import PikaInstrumentor

    if os.environ.get("SHOP_INSTRUMENT", "channel") == "global":
        PikaInstrumentor().instrument(tracer_provider=provider)
        conn = pika.BlockingConnection(_params(service))
        return conn, conn.channel()
    conn = pika.BlockingConnection(_params(service))
    ch = conn.channel()
    PikaInstrumentor.instrument_channel(ch, tracer_provider=provider)
    return conn, ch


def _finish(conn, provider):
    try:
        if conn.is_open:
            conn.close()
    finally:
        provider.force_flush()
        provider.shutdown()


# --------------------------------------------------------------------------
# topology (plain, uninstrumented connection: produces no spans)


def setup_topology(parts):
    import pika

    conn = pika.BlockingConnection(_params("shop setup"))
    ch = conn.channel()
    if "broadcast" in parts:
        ch.exchange_delete(EX_ORDER_CREATED)
        ch.queue_delete(Q_SHIPPING)
        ch.queue_delete(Q_BILLING)
        ch.exchange_declare(EX_ORDER_CREATED, exchange_type="fanout")
        for q in (Q_SHIPPING, Q_BILLING):
            ch.queue_declare(q)
            ch.queue_bind(q, EX_ORDER_CREATED)
    if "workqueue" in parts:
        ch.queue_delete(Q_TASKS)
        ch.queue_declare(Q_TASKS)
    if "rpc" in parts:
        ch.queue_delete(Q_IDENTITY)
        ch.queue_declare(Q_IDENTITY)
    if "audit" in parts:
        ch.exchange_delete(EX_AUDIT)
        ch.exchange_declare(EX_AUDIT, exchange_type="topic")
    if "retry" in parts:
        _delete_retry(ch)
        ch.exchange_declare(EX_PAYMENTS_DLX, exchange_type="fanout")
        ch.queue_declare(Q_PAYMENTS_DEAD)
        ch.queue_bind(Q_PAYMENTS_DEAD, EX_PAYMENTS_DLX)
        ch.queue_declare(Q_PAYMENTS, arguments={"x-dead-letter-exchange": EX_PAYMENTS_DLX})
    if "deadletter" in parts:
        _delete_deadletter(ch)
        ch.exchange_declare(EX_LEDGER_DLX, exchange_type="fanout")
        ch.queue_declare(Q_LEDGER_DEAD)
        ch.queue_bind(Q_LEDGER_DEAD, EX_LEDGER_DLX)
        ch.queue_declare(Q_LEDGER, arguments={"x-dead-letter-exchange": EX_LEDGER_DLX})
    conn.close()


def _delete_deadletter(ch):
    ch.queue_delete(Q_LEDGER)
    ch.queue_delete(Q_LEDGER_DEAD)
    ch.exchange_delete(EX_LEDGER_DLX)


def _delete_retry(ch):
    ch.queue_delete(Q_PAYMENTS)
    ch.queue_delete(Q_PAYMENTS_DEAD)
    ch.exchange_delete(EX_PAYMENTS_DLX)


def teardown_topology(parts):
    import pika

    conn = pika.BlockingConnection(_params("shop teardown"))
    ch = conn.channel()
    if "broadcast" in parts:
        ch.queue_delete(Q_SHIPPING)
        ch.queue_delete(Q_BILLING)
        ch.exchange_delete(EX_ORDER_CREATED)
    if "workqueue" in parts:
        ch.queue_delete(Q_TASKS)
    if "rpc" in parts:
        ch.queue_delete(Q_IDENTITY)
    if "audit" in parts:
        ch.exchange_delete(EX_AUDIT)
    if "retry" in parts:
        _delete_retry(ch)
    if "deadletter" in parts:
        _delete_deadletter(ch)
    conn.close()


# --------------------------------------------------------------------------
# consumers (long-running until told to stop)


def consumer_main(service, instance, queue, events, stop, flush):
    import pika

    provider = _provider(service, instance)
    conn, ch = _instrumented_channel(provider, service)
    flushed = False
    ch.basic_qos(prefetch_count=1)

    def on_message(channel, method, properties, body):
        mid = properties.message_id
        if service == "billing" and mid == BILLING_FAILS_MESSAGE_ID:
            channel.basic_nack(method.delivery_tag, requeue=False)
            events.put(("msg", instance, queue, mid, "failed"))
            # A builtin exception type keeps exception.type stable ("RuntimeError").
            raise RuntimeError(BILLING_ERROR + mid)
        if service == "settler":
            if not method.redelivered:
                channel.basic_nack(method.delivery_tag, requeue=True)
                return
            if mid == SETTLER_REJECTS_MESSAGE_ID:
                channel.basic_nack(method.delivery_tag, requeue=False)
                events.put(("msg", instance, queue, mid, "dead-lettered"))
                return
        if service == "poster":
            if mid in POSTER_REJECTS:
                channel.basic_reject(method.delivery_tag, requeue=False)
                events.put(("msg", instance, queue, mid, "rejected"))
                return
            if mid == POSTER_REQUEUES and not method.redelivered:
                channel.basic_nack(method.delivery_tag, requeue=True)
                return
        if service == "worker":
            time.sleep(0.05)  # keep round-robin dispatch between the 2 workers even
        if service == "identity":
            channel.basic_publish(
                exchange="",
                routing_key=properties.reply_to,
                body=json.dumps({"ok": True, "request": mid}).encode(),
                properties=pika.BasicProperties(
                    content_type="application/json",
                    correlation_id=properties.correlation_id,
                    message_id="reply-" + mid,
                ),
            )
        channel.basic_ack(method.delivery_tag)
        events.put(("msg", instance, queue, mid, "ok"))

    ch.basic_consume(queue, on_message)
    events.put(("ready", instance))
    while not stop.is_set():
        if flush.is_set() and not flushed:
            provider.force_flush()
            flushed = True
        try:
            conn.process_data_events(time_limit=0.1)
        except RuntimeError as exc:
            if not str(exc).startswith(BILLING_ERROR):
                raise
            # The exception escaped the (instrumented) consumer callback, so
            # the consumer span was ended with status ERROR + an exception
            # event. Keep consuming.
    ch.close()
    _finish(conn, provider)


# --------------------------------------------------------------------------
# producers


def _props(**kw):
    import pika

    return pika.BasicProperties(content_type="application/json", **kw)


def orders_main():
    provider = _provider("orders", "orders-1")
    conn, ch = _instrumented_channel(provider, "orders")
    for i in range(1, N_ORDERS + 1):
        ch.basic_publish(
            exchange=EX_ORDER_CREATED,
            routing_key="",
            body=json.dumps({"order": i}).encode(),
            properties=_props(message_id="order-%d" % i),
        )
    _finish(conn, provider)


def checkout_main():
    provider = _provider("checkout", "checkout-1")
    conn, ch = _instrumented_channel(provider, "checkout")
    for i in range(1, N_TASKS + 1):
        ch.basic_publish(
            exchange="",
            routing_key=Q_TASKS,
            body=json.dumps({"task": i}).encode(),
            properties=_props(message_id="task-%d" % i),
        )
    _finish(conn, provider)


def cashier_main():
    provider = _provider("cashier", "cashier-1")
    conn, ch = _instrumented_channel(provider, "cashier")
    for i in range(1, N_PAYMENTS + 1):
        ch.basic_publish(
            exchange="",
            routing_key=Q_PAYMENTS,
            body=json.dumps({"payment": i}).encode(),
            properties=_props(message_id="payment-%d" % i),
        )
    _finish(conn, provider)


def ledger_main():
    provider = _provider("ledger", "ledger-1")
    conn, ch = _instrumented_channel(provider, "ledger")
    for i in range(1, N_ENTRIES + 1):
        ch.basic_publish(
            exchange="",
            routing_key=Q_LEDGER,
            body=json.dumps({"entry": i}).encode(),
            properties=_props(message_id="entry-%d" % i),
        )
    _finish(conn, provider)


def record_broker(directory, parts):
    """Writes the management API's answers for this virtual host, as discovery reads them,
    once its statistics show what happened (the poster's redelivery and both dead letters
    delivered), at most 60 s."""
    import base64
    import urllib.parse
    import urllib.request

    base = os.environ.get("MANAGEMENT_URL", "http://127.0.0.1:15672").rstrip("/")
    vhost = urllib.parse.quote(os.environ.get("AMQP_VHOST", "/"), safe="")
    auth = base64.b64encode(
        ("%s:%s" % (os.environ.get("AMQP_USER", "guest"), os.environ.get("AMQP_PASSWORD", "guest"))).encode()
    ).decode()

    def get(path):
        req = urllib.request.Request(base + "/api/" + path, headers={"Authorization": "Basic " + auth})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def settled(queues):
        by = {q["name"]: q.get("message_stats", {}) for q in queues}
        return (
            by.get(Q_LEDGER, {}).get("redeliver", 0) >= 1
            and by.get(Q_LEDGER, {}).get("ack", 0) >= N_ENTRIES - len(POSTER_REJECTS)
            and by.get(Q_LEDGER_DEAD, {}).get("ack", 0) >= len(POSTER_REJECTS)
        )

    deadline = time.monotonic() + 60.0
    while not settled(get("queues/" + vhost)) and time.monotonic() < deadline:
        time.sleep(0.5)
    os.makedirs(directory, exist_ok=True)
    vname = os.environ.get("AMQP_VHOST", "/")
    for name, path in (
        ("exchanges", "exchanges/" + vhost),
        ("queues", "queues/" + vhost),
        ("bindings", "bindings/" + vhost),
        ("consumers", "consumers/" + vhost),
        ("connections", "connections"),
        ("channels", "channels"),
    ):
        answer = [a for a in get(path) if a.get("vhost", vname) == vname]
        with open(os.path.join(directory, name + ".json"), "w") as f:
            json.dump(answer, f, indent=2, sort_keys=True)
            f.write("\n")


def audit_main():
    provider = _provider("audit", "audit-1")
    conn, ch = _instrumented_channel(provider, "audit")
    for i in range(1, N_AUDIT + 1):
        ch.basic_publish(
            exchange=EX_AUDIT,
            routing_key="audit.login",
            body=json.dumps({"event": i}).encode(),
            properties=_props(message_id="audit-%d" % i),
        )
    _finish(conn, provider)


def wallet_main():
    provider = _provider("wallet", "wallet-1")
    conn, ch = _instrumented_channel(provider, "wallet")
    reply_queue = ch.queue_declare(queue="", exclusive=True).method.queue  # amq.gen-...
    replies = []

    def on_reply(channel, method, properties, body):
        replies.append(properties.correlation_id)
        channel.basic_ack(method.delivery_tag)

    ch.basic_consume(reply_queue, on_reply)
    for i in range(1, N_2FA + 1):
        ch.basic_publish(
            exchange="",
            routing_key=Q_IDENTITY,
            body=json.dumps({"user": "u%d" % i}).encode(),
            properties=_props(
                message_id="2fa-req-%d" % i,
                correlation_id="2fa-%d" % i,
                reply_to=reply_queue,
            ),
        )
    deadline = time.monotonic() + TIMEOUT_S
    while len(replies) < N_2FA and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)
    ch.close()
    _finish(conn, provider)
    if len(replies) != N_2FA:
        sys.exit("wallet: got %d replies, expected %d" % (len(replies), N_2FA))
    print("wallet: reply queue %s, replies %s" % (reply_queue, sorted(replies)), flush=True)


# --------------------------------------------------------------------------
# orchestration


def main():
    parts = [p for p in os.environ.get("SHOP_PARTS", ",".join(DEFAULT_PARTS)).split(",") if p]
    bad = set(parts) - set(ALL_PARTS)
    if bad:
        sys.exit("unknown SHOP_PARTS: %s" % ",".join(sorted(bad)))
    setup_topology(parts)

    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    stop = ctx.Event()
    flush = ctx.Event()

    consumers = []  # (service, instance, queue)
    expected = {}  # queue -> processed messages
    if "broadcast" in parts:
        consumers += [("shipping", "shipping-1", Q_SHIPPING), ("billing", "billing-1", Q_BILLING)]
        expected[Q_SHIPPING] = N_ORDERS
        expected[Q_BILLING] = N_ORDERS
    if "workqueue" in parts:
        consumers += [("worker", "worker-1", Q_TASKS), ("worker", "worker-2", Q_TASKS)]
        expected[Q_TASKS] = N_TASKS
    if "rpc" in parts:
        consumers += [("identity", "identity-1", Q_IDENTITY)]
        expected[Q_IDENTITY] = N_2FA
    if "retry" in parts:
        consumers += [("settler", "settler-1", Q_PAYMENTS)]
        expected[Q_PAYMENTS] = N_PAYMENTS
    if "deadletter" in parts:
        consumers += [("poster", "poster-1", Q_LEDGER), ("reconciler", "reconciler-1", Q_LEDGER_DEAD)]
        expected[Q_LEDGER] = N_ENTRIES
        expected[Q_LEDGER_DEAD] = len(POSTER_REJECTS)

    procs = []
    for service, instance, queue in consumers:
        p = ctx.Process(target=consumer_main, args=(service, instance, queue, events, stop, flush), name=instance)
        p.start()
        procs.append(p)

    counts = {q: 0 for q in expected}
    per_instance = {}
    ready = set()
    deadline = time.monotonic() + TIMEOUT_S

    def pump(block_s):
        try:
            ev = events.get(timeout=block_s)
        except Exception:
            return
        if ev[0] == "ready":
            ready.add(ev[1])
        elif ev[0] == "msg":
            _, instance, queue, mid, outcome = ev
            counts[queue] += 1
            per_instance.setdefault(instance, []).append((mid, outcome))

    while len(ready) < len(consumers):
        if time.monotonic() > deadline:
            sys.exit("consumers not ready: %s" % ready)
        pump(0.5)

    producers = []
    if "broadcast" in parts:
        producers.append(orders_main)
    if "workqueue" in parts:
        producers.append(checkout_main)
    if "rpc" in parts:
        producers.append(wallet_main)
    if "audit" in parts:
        producers.append(audit_main)
    if "retry" in parts:
        producers.append(cashier_main)
    if "deadletter" in parts:
        producers.append(ledger_main)
    pprocs = [ctx.Process(target=fn, name=fn.__name__) for fn in producers]
    for p in pprocs:
        p.start()

    while any(counts[q] < n for q, n in expected.items()):
        if time.monotonic() > deadline:
            stop.set()
            sys.exit("timeout: processed %s, expected %s" % (counts, expected))
        pump(0.5)
    broker_dir = os.environ.get("SHOP_BROKER_DIR")
    if broker_dir:
        record_broker(broker_dir, parts)
    hold = os.environ.get("SHOP_HOLD_FILE") or os.environ.get("HOLD_FILE")
    if hold:
        flush.set()
        print("holding the consumers until %s exists" % hold, flush=True)
        held = time.monotonic() + 120.0
        while not os.path.exists(hold) and time.monotonic() < held:
            time.sleep(0.1)
    stop.set()

    rc = 0
    for p in pprocs + procs:
        p.join(TIMEOUT_S)
        if p.exitcode != 0:
            print("process %s exited with %s" % (p.name, p.exitcode), file=sys.stderr)
            rc = 1
    teardown_topology(parts)
    for inst in sorted(per_instance):
        print("%s: %s" % (inst, " ".join("%s:%s" % x for x in per_instance[inst])), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
