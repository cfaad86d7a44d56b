"""What the aio-pika and Celery scenarios share: the broker settings and one TracerProvider
per service process.

OTEL_EXPORTER_OTLP_PROTOCOL=grpc exports over OTLP/gRPC (OTEL_EXPORTER_OTLP_ENDPOINT is then
the gRPC URL, http:// meaning plaintext); anything else exports OTLP/HTTP protobuf.
"""
import os


def amqp(path="/"):
    """The broker URL from AMQP_HOST / AMQP_PORT / AMQP_USER / AMQP_PASSWORD."""
    return "amqp://%s:%s@%s:%s%s" % (
        os.environ.get("AMQP_USER", "guest"),
        os.environ.get("AMQP_PASSWORD", "guest"),
        os.environ.get("AMQP_HOST", "127.0.0.1"),
        os.environ.get("AMQP_PORT", "5672"),
        path,
    )


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
