// S3 client cost: the client CPU (user + system of this process) per 128 KiB PUT and GET, and the
// throughput, for each candidate client against one S3 endpoint, at concurrency 1 and 8. Issue 24 picks
// the client by this: a well-kept one unless its CPU per request makes the throughput goal impossible.
// "raw" is a minimal SigV4-signed node:http request (unsigned payload), the floor any client adds to.
//
//   AWS_ENDPOINT_URL=http://127.0.0.1:7480 AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… \
//     node --import tsx bench/s3-client.ts [--requests N] [--size BYTES] [--clients sdk,minio,raw]
//   … node --import tsx bench/s3-client.ts --layer [--thread] [--requests N] [--concurrency 4,8,16]
// --layer measures svault's S3 store (src/core/store/s3-store.ts) instead: N blobs put then flushed, read
// back with prefetch() keeping `concurrency` GETs ahead of a sequential reader, and read by `concurrency`
// parallel readers; with --thread, its requests run on a worker thread (S3ThreadClient). The JS thread's
// own CPU is shown apart: that is what a mount's FUSE requests compete with.
// (scripts/ceph-rgw.sh start prints the three variables for a local Ceph RGW.)

import { createHash, createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Client as MinioClient } from 'minio';
import { ADDRESS_BYTES } from '../src/core/pieces/address.js';
import { S3Client as StoreClient } from '../src/core/store/s3-client.js';
import { S3Store } from '../src/core/store/s3-store.js';
import { S3ThreadClient } from '../src/core/store/s3-thread-client.js';
import { readFileSync } from 'node:fs';

interface Endpoint {
  url: URL;
  accessKey: string;
  secretKey: string;
  region: string;
}

/** One client under test: a PUT and a GET of a whole object held in memory. */
interface Candidate {
  name: string;
  put(key: string, body: Buffer): Promise<void>;
  get(key: string): Promise<Buffer>;
  remove(key: string): Promise<void>;
}

const agent = () => new http.Agent({ keepAlive: true, maxSockets: 64 });

function sdkCandidate(ep: Endpoint, bucket: string): Candidate {
  const client = new S3Client({
    endpoint: ep.url.origin,
    region: ep.region,
    forcePathStyle: true,
    credentials: { accessKeyId: ep.accessKey, secretAccessKey: ep.secretKey },
    // The SDK's default CRC32 on every body costs CPU and Ceph 16 rejects it.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { httpAgent: agent() },
  });
  return {
    name: 'sdk',
    async put(key, body) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length }));
    },
    async get(key) {
      const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return readAll(out.Body as NodeJS.ReadableStream, out.ContentLength);
    },
    async remove(key) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
  };
}

function minioCandidate(ep: Endpoint, bucket: string): Candidate {
  const client = new MinioClient({
    endPoint: ep.url.hostname,
    port: Number(ep.url.port) || (ep.url.protocol === 'https:' ? 443 : 80),
    useSSL: ep.url.protocol === 'https:',
    accessKey: ep.accessKey,
    secretKey: ep.secretKey,
    region: ep.region,
    pathStyle: true,
    transportAgent: agent(),
  });
  return {
    name: 'minio',
    async put(key, body) {
      await client.putObject(bucket, key, body, body.length);
    },
    async get(key) {
      return readAll(await client.getObject(bucket, key));
    },
    async remove(key) {
      await client.removeObject(bucket, key);
    },
  };
}

function rawCandidate(ep: Endpoint, bucket: string): Candidate {
  const keepAlive = agent();
  const request = (method: string, key: string, body?: Buffer): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const path = `/${bucket}/${key}`;
      const headers = signV4(ep, method, path, body?.length);
      const req = http.request({ host: ep.url.hostname, port: ep.url.port, method, path, headers, agent: keepAlive }, (res) => {
        readAll(res, Number(res.headers['content-length'])).then((data) => {
          if ((res.statusCode ?? 500) >= 300) reject(new Error(`${method} ${path}: HTTP ${res.statusCode}`));
          else resolve(data);
        }, reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  return {
    name: 'raw',
    async put(key, body) {
      await request('PUT', key, body);
    },
    get: (key) => request('GET', key),
    async remove(key) {
      await request('DELETE', key);
    },
  };
}

/** AWS Signature V4 headers for a request with an unsigned payload (what the floor needs and no more). */
function signV4(ep: Endpoint, method: string, path: string, length?: number): Record<string, string> {
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  const host = ep.url.host;
  const payload = 'UNSIGNED-PAYLOAD';
  const canonical = [method, path, '', `host:${host}`, `x-amz-content-sha256:${payload}`, `x-amz-date:${amzDate}`, '', 'host;x-amz-content-sha256;x-amz-date', payload].join('\n');
  const scope = `${day}/${ep.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  let key: Buffer = createHmac('sha256', `AWS4${ep.secretKey}`).update(day).digest();
  for (const part of [ep.region, 's3', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  const headers: Record<string, string> = {
    host,
    'x-amz-content-sha256': payload,
    'x-amz-date': amzDate,
    authorization: `AWS4-HMAC-SHA256 Credential=${ep.accessKey}/${scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${signature}`,
  };
  if (length !== undefined) headers['content-length'] = String(length);
  return headers;
}

async function readAll(stream: NodeJS.ReadableStream, length?: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length);
}

interface Phase {
  client: string;
  op: 'PUT' | 'GET';
  concurrency: number;
  requests: number;
  /** Client CPU (user + system) per request, µs. */
  cpuUs: number;
  jsUs: number;
  mibPerS: number;
}

/** CPU time of the calling thread (the JS thread here), µs: utime + stime of /proc/thread-self/stat, in 10 ms ticks. */
function threadCpuUs(): number {
  const fields = readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

interface Measured {
  /** Client CPU (user + system, every thread of the process) per request, µs. */
  cpuUs: number;
  /** CPU of the JS thread alone per request, µs. */
  jsUs: number;
  seconds: number;
}

/** Runs `requests` calls of `op`, `concurrency` at a time, and measures this process's CPU and the wall time. */
async function phase(concurrency: number, requests: number, op: (i: number) => Promise<unknown>): Promise<Measured> {
  let next = 0;
  const cpu = process.cpuUsage();
  const js = threadCpuUs();
  const t = process.hrtime.bigint();
  const lane = async (): Promise<void> => {
    while (next < requests) await op(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  const used = process.cpuUsage(cpu);
  return { cpuUs: (used.user + used.system) / requests, jsUs: (threadCpuUs() - js) / requests, seconds };
}

async function ensureBucket(ep: Endpoint, bucket: string): Promise<void> {
  const client = new StoreClient({ endpoint: ep.url, region: ep.region, accessKeyId: ep.accessKey, secretAccessKey: ep.secretKey }, bucket);
  try {
    await client.ensureBucket();
  } finally {
    client.close();
  }
}

/** The S3 store layer at each concurrency: upload-behind puts, prefetching sequential reads, parallel reads. */
async function layer(ep: Endpoint, bucket: string, requests: number, size: number, concurrencies: number[], thread: boolean): Promise<void> {
  const connection = { endpoint: ep.url, region: ep.region, accessKeyId: ep.accessKey, secretAccessKey: ep.secretKey };
  const body = randomBytes(size);
  console.log(`svault S3 store, requests on ${thread ? 'a worker thread' : 'the JS thread'}, ${size} B blobs, ${requests} per phase, endpoint ${ep.url.origin}, node ${process.version}`);
  console.log('phase                   conc  CPU/request  JS thread/request  throughput');
  const line = (what: string, c: number, r: Measured, n: number) =>
    console.log(`${what.padEnd(22)}  ${String(c).padStart(4)}  ${(r.cpuUs / 1000).toFixed(3).padStart(8)} ms  ${(r.jsUs / 1000).toFixed(3).padStart(12)} ms  ${((n * size) / r.seconds / 2 ** 20).toFixed(1).padStart(7)} MiB/s`);
  for (const c of concurrencies) {
    const client = thread ? new S3ThreadClient(connection, bucket) : new StoreClient(connection, bucket);
    const store = new S3Store({ client, prefix: `bench-layer-${c}-${Date.now()}/`, uploadsInFlight: c, readsAhead: c });
    const addresses = Array.from({ length: requests }, () => randomBytes(ADDRESS_BYTES));
    const put = await phase(1, requests, async (i) => {
      await store.put(addresses[i] as Buffer, body);
      if (i === requests - 1) await store.flush();
    });
    line('put + flush', c, put, requests);
    const sequential = await phase(1, requests, async (i) => {
      store.prefetch(addresses.slice(i + 1, i + 1 + c));
      const got = await store.get(addresses[i] as Buffer);
      if (got?.length !== size) throw new Error(`blob ${i}: ${got?.length} bytes`);
    });
    line('get, sequential+ahead', c, sequential, requests);
    const parallel = await phase(c, requests, async (i) => {
      const got = await store.get(addresses[i] as Buffer);
      if (got?.length !== size) throw new Error(`blob ${i}: ${got?.length} bytes`);
    });
    line('get, parallel', c, parallel, requests);
    await phase(c, requests, (i) => store.delete(addresses[i] as Buffer));
    store.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '400' },
      size: { type: 'string', default: String(128 * 1024) },
      clients: { type: 'string', default: 'sdk,minio,raw' },
      concurrency: { type: 'string', default: '1,8' },
      bucket: { type: 'string', default: 'svault-bench' },
      layer: { type: 'boolean', default: false },
      thread: { type: 'boolean', default: false },
    },
  });
  const endpoint = process.env.AWS_ENDPOINT_URL;
  const accessKey = process.env.AWS_ACCESS_KEY_ID;
  const secretKey = process.env.AWS_SECRET_ACCESS_KEY;
  if (!endpoint || !accessKey || !secretKey) throw new Error('set AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  const ep: Endpoint = { url: new URL(endpoint), accessKey, secretKey, region: process.env.AWS_REGION ?? 'us-east-1' };
  const requests = Number(values.requests);
  const size = Number(values.size);
  const bucket = values.bucket as string;
  await ensureBucket(ep, bucket);
  if (values.layer) {
    await layer(ep, bucket, requests, size, (values.concurrency as string).split(',').map(Number), values.thread === true);
    return;
  }
  const makers: Record<string, (e: Endpoint, b: string) => Candidate> = { sdk: sdkCandidate, minio: minioCandidate, raw: rawCandidate };
  const body = randomBytes(size);
  const results: Phase[] = [];
  for (const name of (values.clients as string).split(',')) {
    const make = makers[name];
    if (!make) throw new Error(`unknown client ${name}`);
    const c = make(ep, bucket);
    const key = (i: number) => `bench/${name}/${String(i % requests).padStart(6, '0')}`;
    await phase(4, 50, (i) => c.put(key(i), body)); // warm up: connections, JIT
    await phase(4, 50, (i) => c.get(key(i)));
    for (const concurrency of (values.concurrency as string).split(',').map(Number)) {
      const put = await phase(concurrency, requests, (i) => c.put(key(i), body));
      results.push({ client: name, op: 'PUT', concurrency, requests, cpuUs: put.cpuUs, jsUs: put.jsUs, mibPerS: (requests * size) / put.seconds / 2 ** 20 });
      const get = await phase(concurrency, requests, async (i) => {
        const got = await c.get(key(i));
        if (got.length !== size) throw new Error(`GET ${key(i)}: ${got.length} bytes, not ${size}`);
      });
      results.push({ client: name, op: 'GET', concurrency, requests, cpuUs: get.cpuUs, jsUs: get.jsUs, mibPerS: (requests * size) / get.seconds / 2 ** 20 });
    }
    await phase(8, requests, (i) => c.remove(key(i)));
  }
  console.log(`${size} B objects, ${requests} requests per phase, endpoint ${ep.url.origin}, node ${process.version}`);
  console.log('client  op   conc  CPU/request  throughput');
  for (const r of results) {
    console.log(`${r.client.padEnd(6)}  ${r.op}  ${String(r.concurrency).padStart(4)}  ${(r.cpuUs / 1000).toFixed(3).padStart(8)} ms  ${r.mibPerS.toFixed(1).padStart(7)} MiB/s`);
  }
}

await main();
