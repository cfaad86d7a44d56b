#!/usr/bin/env python3
"""A small "press" built from Celery workers on RabbitMQ, traced by
opentelemetry-instrumentation-celery and exported as OTLP/HTTP protobuf.

Every worker and the producer run in their own OS process with their own
TracerProvider and Resource (service.name, service.instance.id), passed to
CeleryInstrumentor().instrument(tracer_provider=...). Workers run the solo
pool, so tasks execute in the instrumented process. Broker: the machine's
RabbitMQ (amqp); result backend: rpc:// (replies over AMQP, untraced).

What runs (the shapes Celery offers):
  work queue  frontend --6 tasks press.render--> queue "render", consumed by
              two renderer workers (renderer-1 / renderer-2, prefetch 1).
              press.render raises for page 4; the other 5 each call
              press.mail.delay() from inside the task (a producer span
              nested in the consumer span) -> queue "mail", consumed by the
              backoffice worker (backoffice-1).
  broadcast   frontend --2 tasks press.flush--> Broadcast queue
              "cache.flush" (a fanout exchange; every renderer worker binds
              its own bcast.<uuid> queue), so both renderers run each flush.
  request/reply
              frontend calls press.quote.delay(n).get() twice -> queue
              "quote", consumed by backoffice; the result comes back through
              the rpc:// backend.

Environment: OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL (grpc, else
OTLP/HTTP protobuf; see common.py), RUN_SUFFIX (appended to every
queue and exchange name), AMQP_HOST / AMQP_PORT / AMQP_USER / AMQP_PASSWORD / AMQP_VHOST,
HOLD_FILE (see common.py). Every connection is named by its service: Celery hands
`broker_transport_options` to kombu, whose py-amqp transport passes them to
`amqp.Connection`, so `{"client_properties": {"connection_name": ...}}` there names it.
"""
import multiprocessing as mp
import os
import sys
import threading
import time

import common

SUFFIX = os.environ.get("RUN_SUFFIX", "")
Q_RENDER = "render" + SUFFIX
Q_MAIL = "mail" + SUFFIX
Q_QUOTE = "quote" + SUFFIX
BC_FLUSH = "cache.flush" + SUFFIX

N_RENDER = 6
FAILING_PAGE = 4
N_FLUSH = 2
N_QUOTE = 2
TIMEOUT_S = 60.0

EVENTS = None  # the orchestrator's queue, set in each worker process


def _url():
    return common.amqp("//")


def make_app(service):
    """The press app; its broker connections are named `service`."""
    from celery import Celery
    from kombu import Queue
    from kombu.common import Broadcast

    app = Celery("press", broker=_url(), backend="rpc://")
    app.conf.update(
        task_queues=(Queue(Q_RENDER), Queue(Q_MAIL), Queue(Q_QUOTE), Broadcast(BC_FLUSH)),
        task_routes={
            "press.render": {"queue": Q_RENDER},
            "press.mail": {"queue": Q_MAIL},
            "press.quote": {"queue": Q_QUOTE},
            "press.flush": {"queue": BC_FLUSH, "exchange": BC_FLUSH},
        },
        worker_prefetch_multiplier=1,
        # No remote control: its per-worker pidbox queue would clash between concurrent runs.
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        broker_transport_options={"client_properties": {"connection_name": service}},
    )

    def done(task, arg, outcome="ok"):
        if EVENTS is not None:
            EVENTS.put(("task", os.environ.get("PRESS_INSTANCE", "?"), task, arg, outcome))

    @app.task(name="press.render")
    def render(page):
        time.sleep(0.05)  # keep round-robin dispatch between the 2 renderers even
        if page == FAILING_PAGE:
            done("render", page, "failed")
            raise RuntimeError("renderer failed on page %d" % page)
        mail.delay(page)
        done("render", page)

    @app.task(name="press.mail")
    def mail(page):
        done("mail", page)

    @app.task(name="press.flush")
    def flush(n):
        done("flush", n)

    @app.task(name="press.quote", ignore_result=False)
    def quote(n):
        done("quote", n)
        return n * 10

    return app


def _provider(service, instance):
    """This process's TracerProvider, with the instrumentation on it."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    provider = common.tracer_provider(service, instance)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    return provider


def worker_main(service, instance, queues, events, flush):
    global EVENTS
    EVENTS = events
    os.environ["PRESS_INSTANCE"] = instance
    from celery import signals

    provider = _provider(service, instance)
    app = make_app(service)

    def flush_when_told():
        flush.wait()
        provider.force_flush()

    threading.Thread(target=flush_when_told, daemon=True).start()
    signals.worker_ready.connect(lambda **_: events.put(("ready", instance)), weak=False)
    signals.worker_shutdown.connect(lambda **_: provider.force_flush(), weak=False)
    app.worker_main(
        argv=["worker", "--pool=solo", "--loglevel=WARNING", "--without-gossip", "--without-mingle",
              "--without-heartbeat", "-n", "%s@press%s" % (instance, SUFFIX), "-Q", ",".join(queues)]
    )
    provider.shutdown()


def frontend_main():
    provider = _provider("frontend", "frontend-1")
    app = make_app("frontend")
    for page in range(1, N_RENDER + 1):
        app.tasks["press.render"].delay(page)
    for n in range(1, N_FLUSH + 1):
        app.tasks["press.flush"].delay(n)
    answers = [app.tasks["press.quote"].delay(n).get(timeout=TIMEOUT_S) for n in range(1, N_QUOTE + 1)]
    print("frontend: quotes %s" % answers, flush=True)
    provider.shutdown()


def _purge():
    """Deletes the queues and the fanout exchange (an uninstrumented connection)."""
    from kombu import Connection

    options = {"client_properties": {"connection_name": "press setup"}}
    with Connection(_url(), transport_options=options) as conn:
        ch = conn.channel()
        for q in (Q_RENDER, Q_MAIL, Q_QUOTE):
            ch.queue_delete(q)
        ch.exchange_delete(BC_FLUSH)


def main():
    _purge()
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    flush = ctx.Event()
    workers = [
        ("renderer", "renderer-1", [Q_RENDER, BC_FLUSH]),
        ("renderer", "renderer-2", [Q_RENDER, BC_FLUSH]),
        ("backoffice", "backoffice-1", [Q_MAIL, Q_QUOTE]),
    ]
    procs = [ctx.Process(target=worker_main, args=(s, i, q, events, flush), name=i) for s, i, q in workers]
    for p in procs:
        p.start()
    expected = {"render": N_RENDER, "mail": N_RENDER - 1, "flush": N_FLUSH * 2, "quote": N_QUOTE}
    counts = {k: 0 for k in expected}
    per_instance, ready = {}, set()
    deadline = time.monotonic() + TIMEOUT_S

    def pump():
        try:
            ev = events.get(timeout=0.5)
        except Exception:
            return
        if ev[0] == "ready":
            ready.add(ev[1])
        else:
            _, instance, task, arg, outcome = ev
            counts[task] += 1
            per_instance.setdefault(instance, []).append("%s-%s:%s" % (task, arg, outcome))

    rc = 0
    try:
        while len(ready) < len(workers):
            if time.monotonic() > deadline:
                sys.exit("workers not ready: %s" % ready)
            pump()
        front = ctx.Process(target=frontend_main, name="frontend")
        front.start()
        while any(counts[k] < n for k, n in expected.items()):
            if time.monotonic() > deadline:
                sys.exit("timeout: ran %s, expected %s" % (counts, expected))
            pump()
        front.join(TIMEOUT_S)
        if front.exitcode != 0:
            print("frontend exited with %s" % front.exitcode, file=sys.stderr)
            rc = 1
        if common.hold_file():
            flush.set()
            common.hold(common.hold_file())
    finally:
        for p in procs:
            if p.pid is not None:
                os.kill(p.pid, 15)  # warm shutdown: the worker finishes and flushes its spans
        for p in procs:
            p.join(TIMEOUT_S)
            if p.exitcode not in (0, None):
                print("worker %s exited with %s" % (p.name, p.exitcode), file=sys.stderr)
                rc = 1
        _purge()
    for inst in sorted(per_instance):
        print("%s: %s" % (inst, " ".join(per_instance[inst])), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
