"""What the aio-pika and Celery scenarios share: the broker settings and one TracerProvider
per service process.

OTEL_EXPORTER_OTLP_PROTOCOL=grpc exports over OTLP/gRPC (OTEL_EXPORTER_OTLP_ENDPOINT is then
the gRPC URL, http:// meaning plaintext); anything else exports OTLP/HTTP protobuf.
"""
import os


def amqp(path="/"):
    """The broker URL from AMQP_HOST / AMQP_PORT / AMQP_USER / AMQP_PASSWORD; the virtual
    host from AMQP_VHOST (percent-encoded), else `path` (the client's spelling of "/")."""
    from urllib.parse import quote

    vhost = os.environ.get("AMQP_VHOST")
    return "amqp://%s:%s@%s:%s%s" % (
        os.environ.get("AMQP_USER", "guest"),
        os.environ.get("AMQP_PASSWORD", "guest"),
        os.environ.get("AMQP_HOST", "127.0.0.1"),
        os.environ.get("AMQP_PORT", "5672"),
        "/" + quote(vhost, safe="") if vhost else path,
    )


def hold_file():
    """HOLD_FILE: when set, the consumers export their spans once every message is processed
    and stay connected until this file exists (at most HOLD_S): broker discovery then sees
    them beside their spans."""
    return os.environ.get("HOLD_FILE")


HOLD_S = 120.0


def hold(path):
    """Waits (at most HOLD_S) until `path` exists."""
    import time

    print("holding the consumers until %s exists" % path, flush=True)
    deadline = time.monotonic() + HOLD_S
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.1)


def tracer_provider(service, instance):
    """One TracerProvider + Resource for this process. Its long schedule delay leaves every
    span to shutdown(), normally one export request per process."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    resource = Resource.create({"service.name": service, "service.instance.id": instance})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=60000))
    return provider
