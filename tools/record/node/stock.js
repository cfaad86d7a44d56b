'use strict';
/*
 * Node.js amqplib scenario traced with @opentelemetry/instrumentation-amqplib
 * and exported with @opentelemetry/exporter-trace-otlp-http (OTLP/JSON).
 *
 *   inventory --4 msgs, routing key "stock.changed.eu"--> topic exchange
 *   "stock.changed" --binding "stock.changed.*"--> queue "catalog.stock"
 *   --> catalog (acks every message)
 *
 * Each service is its own process with its own NodeTracerProvider/Resource
 * (service.name, service.instance.id). `node stock.js` (no argument) is the
 * orchestrator: it declares the topology with a plain (uninstrumented)
 * connection, forks `catalog`, waits until it consumes, forks `inventory`,
 * waits until catalog processed all messages, then stops catalog.
 *
 * Environment: OTEL_EXPORTER_OTLP_ENDPOINT (exporter appends /v1/traces,
 * default http://127.0.0.1:4318), OTEL_EXPORTER_OTLP_PROTOCOL (grpc: export
 * OTLP/gRPC to the endpoint instead of OTLP/JSON), RUN_SUFFIX (appended to exchange/queue
 * names), AMQP_URL (default amqp://guest:guest@127.0.0.1:5672), AMQP_VHOST (the virtual
 * host; default the URL's), HOLD_FILE (when set, catalog exports its spans once every
 * message is processed and stays connected until this file exists, at most 120 s: broker
 * discovery then sees it beside its spans). Every connection is named by its service
 * (`clientProperties: {connection_name}`).
 */

const { fork } = require('child_process');

const SUFFIX = process.env.RUN_SUFFIX || '';
const EXCHANGE = 'stock.changed' + SUFFIX;
const QUEUE = 'catalog.stock' + SUFFIX;
const ROUTING_KEY = 'stock.changed.eu';
const BINDING_KEY = 'stock.changed.*';
const N_MESSAGES = 4;
const AMQP_URL =
  (process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672') +
  (process.env.AMQP_VHOST ? '/' + encodeURIComponent(process.env.AMQP_VHOST) : '');
const TIMEOUT_MS = 60000;
const HOLD_FILE = process.env.HOLD_FILE || '';
const HOLD_MS = 120000;

/** A connection named `name` (the client-provided `connection_name`). */
function connect(amqp, name) {
  return amqp.connect(AMQP_URL, { clientProperties: { connection_name: name } });
}

if (!process.env.OTEL_EXPORTER_OTLP_ENDPOINT) {
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = 'http://127.0.0.1:4318';
}

/** Per-process tracing setup; must run before amqplib is required. */
function setupTracing(serviceName, instanceId) {
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
  const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
  // OTEL_EXPORTER_OTLP_PROTOCOL=grpc: OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT; else OTLP/JSON.
  const { OTLPTraceExporter } = require(
    process.env.OTEL_EXPORTER_OTLP_PROTOCOL === 'grpc'
      ? '@opentelemetry/exporter-trace-otlp-grpc'
      : '@opentelemetry/exporter-trace-otlp-http',
  );
  const { defaultResource, resourceFromAttributes } = require('@opentelemetry/resources');
  const { ATTR_SERVICE_NAME } = require('@opentelemetry/semantic-conventions');
  const { registerInstrumentations } = require('@opentelemetry/instrumentation');
  const { AmqplibInstrumentation } = require('@opentelemetry/instrumentation-amqplib');

  const resource = defaultResource().merge(
    resourceFromAttributes({
      [ATTR_SERVICE_NAME]: serviceName,
      'service.instance.id': instanceId,
    }),
  );
  const provider = new NodeTracerProvider({
    resource,
    // Long delay: spans are exported by shutdown(), normally in one request.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter(), { scheduledDelayMillis: 60000 })],
  });
  provider.register();
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [new AmqplibInstrumentation()],
  });
  return provider;
}

async function catalogMain() {
  const provider = setupTracing('catalog', 'catalog-1');
  const amqp = require('amqplib');
  const conn = await connect(amqp, 'catalog');
  const ch = await conn.createChannel();
  await ch.prefetch(1);
  await ch.consume(QUEUE, (msg) => {
    if (!msg) return;
    ch.ack(msg);
    process.send({ type: 'msg', id: msg.properties.messageId });
  });
  process.on('message', async (m) => {
    if (m && m.type === 'flush') {
      await provider.forceFlush();
      process.send({ type: 'flushed' });
    }
    if (m && m.type === 'stop') {
      await ch.close();
      await conn.close();
      await provider.shutdown();
      process.exit(0);
    }
  });
  process.send({ type: 'ready' });
}

async function inventoryMain() {
  const provider = setupTracing('inventory', 'inventory-1');
  const amqp = require('amqplib');
  const conn = await connect(amqp, 'inventory');
  const ch = await conn.createChannel();
  for (let i = 1; i <= N_MESSAGES; i++) {
    ch.publish(EXCHANGE, ROUTING_KEY, Buffer.from(JSON.stringify({ sku: `sku-${i}`, delta: -i })), {
      contentType: 'application/json',
      messageId: `stock-${i}`,
    });
  }
  await ch.close(); // flushes pending publishes
  await conn.close();
  await provider.shutdown();
}

async function withPlainChannel(fn) {
  const amqp = require('amqplib'); // orchestrator: not instrumented
  const conn = await connect(amqp, 'stock setup');
  const ch = await conn.createChannel();
  try {
    await fn(ch);
  } finally {
    await ch.close();
    await conn.close();
  }
}

function waitExit(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.on('exit', (code) => resolve(code));
  });
}

async function orchestrate() {
  await withPlainChannel(async (ch) => {
    await ch.deleteQueue(QUEUE);
    await ch.deleteExchange(EXCHANGE);
    await ch.assertExchange(EXCHANGE, 'topic', { durable: false });
    await ch.assertQueue(QUEUE, { durable: false });
    await ch.bindQueue(QUEUE, EXCHANGE, BINDING_KEY);
  });

  const timer = setTimeout(() => {
    console.error('timeout');
    process.exit(1);
  }, TIMEOUT_MS);

  const received = [];
  const catalog = fork(__filename, ['catalog']);
  let allReceived;
  let flushed;
  const done = new Promise((resolve) => (allReceived = resolve));
  const exported = new Promise((resolve) => (flushed = resolve));
  const ready = new Promise((resolve) => {
    catalog.on('message', (m) => {
      if (m.type === 'ready') resolve();
      if (m.type === 'flushed') flushed();
      if (m.type === 'msg') {
        received.push(m.id);
        if (received.length === N_MESSAGES) allReceived();
      }
    });
  });
  await ready;

  const inventory = fork(__filename, ['inventory']);
  const invCode = await waitExit(inventory);
  await done;
  if (HOLD_FILE) {
    clearTimeout(timer);
    catalog.send({ type: 'flush' });
    await exported;
    console.log(`holding the consumers until ${HOLD_FILE} exists`);
    const fs = require('fs');
    const until = Date.now() + HOLD_MS;
    while (!fs.existsSync(HOLD_FILE) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  catalog.send({ type: 'stop' });
  const catCode = await waitExit(catalog);
  clearTimeout(timer);

  await withPlainChannel(async (ch) => {
    await ch.deleteQueue(QUEUE);
    await ch.deleteExchange(EXCHANGE);
  });
  console.log(`catalog-1: ${received.join(' ')}`);
  if (invCode !== 0 || catCode !== 0) {
    console.error(`exit codes: inventory=${invCode} catalog=${catCode}`);
    process.exit(1);
  }
}

const role = process.argv[2];
const main = role === 'catalog' ? catalogMain : role === 'inventory' ? inventoryMain : orchestrate;
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
