'use strict';
/*
 * The Node.js half of the Kafka scenario (tools/record/kafka_scenario.sh runs the whole):
 * kafkajs traced with @opentelemetry/instrumentation-kafkajs, exported OTLP/JSON.
 *
 *   node orders_kafka.js setup                 topic orders<RUN_SUFFIX>, 3 partitions (plain
 *                                              admin client, not traced)
 *   node orders_kafka.js produce FIRST COUNT   service checkout-js: orders FIRST..FIRST+COUNT-1,
 *                                              one message per send (one per produce request),
 *                                              keyed order-N
 *   node orders_kafka.js consume INSTANCE MODE service billing (client id "billing"), group
 *                                              billing<RUN_SUFFIX>; MODE batch (eachBatch: a
 *                                              `poll` span, `process` spans linking to the
 *                                              producers) or message (eachMessage); runs until
 *                                              SIGTERM, then leaves the group and exports
 *
 * A consumer writes its state to $KAFKA_STATE/<INSTANCE>.assigned (partitions after each
 * join) and <INSTANCE>.count (messages processed), which the orchestrator waits on.
 *
 * Environment: KAFKA_BOOTSTRAP (HOST:PORT), KAFKA_STATE, RUN_SUFFIX, OTEL_EXPORTER_OTLP_ENDPOINT
 * (the exporter appends /v1/traces).
 */

const fs = require('fs');
const path = require('path');

const SUFFIX = process.env.RUN_SUFFIX || '';
const TOPIC = 'orders' + SUFFIX;
const GROUP = 'billing' + SUFFIX;
const BOOTSTRAP = process.env.KAFKA_BOOTSTRAP || '127.0.0.1:9092';
const STATE = process.env.KAFKA_STATE || '.';

function setupTracing(serviceName, instanceId) {
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
  const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
  const { defaultResource, resourceFromAttributes } = require('@opentelemetry/resources');
  const { ATTR_SERVICE_NAME } = require('@opentelemetry/semantic-conventions');
  const { registerInstrumentations } = require('@opentelemetry/instrumentation');
  const { KafkaJsInstrumentation } = require('@opentelemetry/instrumentation-kafkajs');
  const resource = defaultResource().merge(
    resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName, 'service.instance.id': instanceId }),
  );
  const provider = new NodeTracerProvider({
    resource,
    // Long delay: spans are exported by shutdown(), normally in one request.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter(), { scheduledDelayMillis: 60000 })],
  });
  provider.register();
  registerInstrumentations({ tracerProvider: provider, instrumentations: [new KafkaJsInstrumentation()] });
  return provider;
}

function kafka(clientId) {
  const { Kafka, logLevel } = require('kafkajs');
  return new Kafka({ clientId, brokers: [BOOTSTRAP], logLevel: logLevel.NOTHING, retry: { retries: 10 } });
}

async function setup() {
  const admin = kafka('scenario-setup').admin();
  await admin.connect();
  const topics = await admin.listTopics();
  if (!topics.includes(TOPIC)) {
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }], waitForLeaders: true });
  }
  await admin.disconnect();
}

async function produce(first, count) {
  const provider = setupTracing('checkout-js', 'checkout-js-1');
  const producer = kafka('checkout-js').producer({ allowAutoTopicCreation: false });
  await producer.connect();
  for (let i = first; i < first + count; i++) {
    // One message per send: one produce request each.
    await producer.send({
      topic: TOPIC,
      messages: [{ key: `order-${i}`, value: JSON.stringify({ order: `order-${i}`, total: i * 10 }) }],
    });
  }
  await producer.disconnect();
  await provider.shutdown();
}

async function consume(instance, mode) {
  const provider = setupTracing('billing', instance);
  const consumer = kafka('billing').consumer({ groupId: GROUP, sessionTimeout: 10000, heartbeatInterval: 1000 });
  let count = 0;
  const counted = () => fs.writeFileSync(path.join(STATE, `${instance}.count`), String(count));
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    const assigned = e.payload.memberAssignment[TOPIC] || [];
    fs.writeFileSync(path.join(STATE, `${instance}.assigned`), assigned.join(','));
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [TOPIC], fromBeginning: true });
  const run =
    mode === 'batch'
      ? {
          eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
            for (const message of batch.messages) {
              resolveOffset(message.offset);
              count++;
            }
            await heartbeat();
            counted();
          },
        }
      : {
          eachMessage: async () => {
            count++;
            counted();
          },
        };
  await consumer.run(run);
  counted();
  let stopping = false;
  process.on('SIGTERM', async () => {
    if (stopping) return;
    stopping = true;
    await consumer.disconnect();
    await provider.shutdown();
    process.exit(0);
  });
}

async function main() {
  const [what, a, b] = process.argv.slice(2);
  if (what === 'setup') await setup();
  else if (what === 'produce') await produce(Number(a), Number(b));
  else if (what === 'consume') await consume(a, b);
  else throw new Error(`usage: orders_kafka.js setup | produce FIRST COUNT | consume INSTANCE batch|message`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
