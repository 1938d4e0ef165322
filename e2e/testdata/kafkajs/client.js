// client.js: kafkajs steps driven by gregor's e2e tests (e2e/kafkajs_test.go).
//
// Usage: node client.js STEP, with the broker address in GREGOR_BROKER and
// the step's parameters in further environment variables (see each step).
// Every result is one JSON object per line on stdout; kafkajs's own logs go
// to stderr. The exit status is 0 only when the step succeeded.
'use strict'

const { Kafka, CompressionTypes, logLevel } = require('kafkajs')

const env = (name, def) => {
  const v = process.env[name]
  if (v === undefined || v === '') {
    if (def === undefined) throw new Error(`environment variable ${name} is required`)
    return def
  }
  return v
}

const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')

// kafkajs logs to stdout by default; keep stdout for results.
const stderrLogger = () => ({ namespace, level, label, log }) => {
  const { message, ...extra } = log
  process.stderr.write(`kafkajs ${label} [${namespace}] ${message} ${JSON.stringify(extra)}\n`)
}

const kafka = new Kafka({
  clientId: env('CLIENT_ID', 'gregor-e2e'),
  brokers: [env('GREGOR_BROKER')],
  logLevel: logLevel[env('KAFKAJS_LOG_LEVEL', 'WARN')],
  logCreator: stderrLogger,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 2000 },
})

// admin-create: create TOPICS (comma separated) with PARTITIONS each, then
// print the metadata and the offsets of each.
async function adminCreate() {
  const topics = env('TOPICS').split(',')
  const partitions = parseInt(env('PARTITIONS'), 10)
  const admin = kafka.admin()
  await admin.connect()
  try {
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: topics.map(topic => ({ topic, numPartitions: partitions, replicationFactor: 1 })),
    })
    out({ step: 'created', created })
    // Creating again must fail with TOPIC_ALREADY_EXISTS, which kafkajs
    // reports as false (not an exception).
    const again = await admin.createTopics({
      topics: topics.map(topic => ({ topic, numPartitions: partitions, replicationFactor: 1 })),
    })
    out({ step: 'created-again', created: again })
    await printMetadata(admin, topics)
  } finally {
    await admin.disconnect()
  }
}

async function printMetadata(admin, topics) {
  const md = await admin.fetchTopicMetadata({ topics })
  for (const t of md.topics) {
    out({
      step: 'metadata',
      topic: t.name,
      partitions: t.partitions
        .map(p => ({ partition: p.partitionId, leader: p.leader, error: p.partitionErrorCode, replicas: p.replicas, isr: p.isr }))
        .sort((a, b) => a.partition - b.partition),
    })
  }
  const listed = await admin.listTopics()
  out({ step: 'list', topics: listed.sort() })
}

// admin-offsets: print fetchTopicOffsets for each of TOPICS.
async function adminOffsets() {
  const admin = kafka.admin()
  await admin.connect()
  try {
    for (const topic of env('TOPICS').split(',')) {
      const offs = await admin.fetchTopicOffsets(topic)
      out({
        step: 'offsets',
        topic,
        partitions: offs
          .map(o => ({ partition: o.partition, low: o.low, high: o.high, offset: o.offset }))
          .sort((a, b) => a.partition - b.partition),
      })
    }
  } finally {
    await admin.disconnect()
  }
}

// admin-delete: delete TOPICS, then print the topic list.
async function adminDelete() {
  const topics = env('TOPICS').split(',')
  const admin = kafka.admin()
  await admin.connect()
  try {
    await admin.deleteTopics({ topics, timeout: 10000 })
    out({ step: 'deleted', topics })
    const listed = await admin.listTopics()
    out({ step: 'list', topics: listed.sort() })
  } finally {
    await admin.disconnect()
  }
}

// produce: send COUNT records to TOPIC in sends of BATCH records, with acks
// ACKS (-1, 1), compression COMPRESSION (none, gzip), idempotence when
// IDEMPOTENT=1. Record i has key "k<i>", value "<PREFIX>-<i>" and header
// seq=<i>. Prints one line per acknowledged send.
async function produce() {
  const topic = env('TOPIC')
  const count = parseInt(env('COUNT'), 10)
  const batch = parseInt(env('BATCH', '100'), 10)
  const acks = parseInt(env('ACKS', '-1'), 10)
  const prefix = env('PREFIX', 'kafkajs')
  const idempotent = env('IDEMPOTENT', '0') === '1'
  const compression = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }[env('COMPRESSION', 'none')]
  if (compression === undefined) throw new Error(`unsupported COMPRESSION ${process.env.COMPRESSION}`)

  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    idempotent,
    maxInFlightRequests: idempotent ? 1 : undefined,
  })
  await producer.connect()
  try {
    for (let from = 0; from < count; from += batch) {
      const messages = []
      for (let i = from; i < Math.min(from + batch, count); i++) {
        messages.push({ key: `k${i}`, value: `${prefix}-${i}`, headers: { seq: String(i) } })
      }
      const res = await producer.send({ topic, acks, compression, messages })
      for (const r of res) {
        out({ step: 'acked', partition: r.partition, baseOffset: r.baseOffset, error: r.errorCode })
      }
    }
    out({ step: 'produced', count })
  } finally {
    await producer.disconnect()
  }
}

// consume: join group GROUP on TOPIC from the beginning and print every
// record (and every assignment) until stdin closes; then leave the group
// and print the group's committed offsets. If EXIT_AFTER is set, stop by
// itself after that many records.
async function consume() {
  const topic = env('TOPIC')
  const groupId = env('GROUP')
  const exitAfter = parseInt(env('EXIT_AFTER', '0'), 10)
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: 10000,
    rebalanceTimeout: 10000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
  })
  let stop
  const stopped = new Promise(resolve => { stop = resolve })
  process.stdin.on('end', () => stop('stdin closed'))
  process.stdin.on('error', () => stop('stdin error'))
  process.stdin.resume()

  consumer.on(consumer.events.GROUP_JOIN, e => {
    out({ step: 'joined', memberId: e.payload.memberId, leader: e.payload.isLeader, protocol: e.payload.groupProtocol,
      assignment: e.payload.memberAssignment })
  })
  consumer.on(consumer.events.CRASH, e => {
    out({ step: 'crash', why: String(e.payload.error) })
  })

  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  let n = 0
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const headers = {}
      for (const [k, v] of Object.entries(message.headers || {})) headers[k] = v.toString()
      out({
        step: 'record',
        partition,
        offset: message.offset,
        key: message.key ? message.key.toString() : null,
        value: message.value ? message.value.toString() : null,
        headers,
      })
      n++
      if (exitAfter > 0 && n >= exitAfter) stop('count reached')
    },
  })
  const why = await stopped
  await consumer.disconnect()
  out({ step: 'stopped', why, records: n })

  const admin = kafka.admin()
  await admin.connect()
  try {
    const res = await admin.fetchOffsets({ groupId, topics: [topic] })
    for (const t of res) {
      out({
        step: 'committed',
        topic: t.topic,
        partitions: t.partitions.map(p => ({ partition: p.partition, offset: p.offset })).sort((a, b) => a.partition - b.partition),
      })
    }
  } finally {
    await admin.disconnect()
  }
}

// txn: a transactional producer (TXN_ID) writes COUNT records to TOPIC
// in one transaction with the offset OFFSET of INPUT partition 0 for GROUP
// (sendOffsets) and commits it, then writes ABORTED records in a second
// transaction and aborts it. Then a read_committed consumer in group
// READER prints what it reads until it has COUNT records or 20 s passed.
async function txn() {
  const topic = env('TOPIC')
  const input = env('INPUT')
  const count = parseInt(env('COUNT'), 10)
  const aborted = parseInt(env('ABORTED'), 10)
  const producer = kafka.producer({ transactionalId: env('TXN_ID'), idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  try {
    const t1 = await producer.transaction()
    const messages = []
    for (let i = 0; i < count; i++) messages.push({ key: `k${i}`, value: `committed-${i}` })
    await t1.send({ topic, messages })
    await t1.sendOffsets({ consumerGroupId: env('GROUP'), topics: [{ topic: input, partitions: [{ partition: 0, offset: env('OFFSET') }] }] })
    await t1.commit()
    out({ step: 'committed', count })
    const t2 = await producer.transaction()
    const bad = []
    for (let i = 0; i < aborted; i++) bad.push({ key: `k${i}`, value: `aborted-${i}` })
    await t2.send({ topic, messages: bad })
    await t2.abort()
    out({ step: 'aborted', count: aborted })
  } finally {
    await producer.disconnect()
  }
  const consumer = kafka.consumer({ groupId: env('READER'), readUncommitted: false, maxWaitTimeInMs: 200 })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  let n = 0
  let done
  const finished = new Promise(resolve => { done = resolve })
  const timer = setTimeout(() => done('timeout'), 20000)
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      out({ step: 'record', partition, offset: message.offset, value: message.value.toString() })
      if (++n >= count) done('count reached')
    },
  })
  const why = await finished
  clearTimeout(timer)
  // Give an aborted record, were it delivered, the time to show up.
  await new Promise(resolve => setTimeout(resolve, 1000))
  await consumer.disconnect()
  out({ step: 'read', why, records: n })
}

const steps = {
  txn,
  'admin-create': adminCreate,
  'admin-offsets': adminOffsets,
  'admin-delete': adminDelete,
  produce,
  consume,
}

const step = steps[process.argv[2]]
if (!step) {
  process.stderr.write(`usage: node client.js ${Object.keys(steps).join('|')}\n`)
  process.exit(2)
}
step().then(
  () => process.exit(0),
  err => {
    process.stderr.write(`step ${process.argv[2]} failed: ${err && err.stack ? err.stack : err}\n`)
    out({ step: 'error', why: String(err) })
    process.exit(1)
  },
)
