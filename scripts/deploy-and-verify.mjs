#!/usr/bin/env node
// Deploys one image through a deploy agent and verifies it, exactly as CI does. No dependencies:
// Node's fetch only. Exits 0 only when the deploy answered 200 and GET /v1/status then shows the
// runtime running the requested image; any other answer (a 3xx from Cloudflare Access, a 403, a
// 5xx, an HTML page) fails with the reason printed.
//
// While the deploy runs it polls the status and prints each phase as it starts (pulling -> created
// -> stopping -> starting -> checking -> deployed), so a CI log shows what the agent is doing. In
// GitHub Actions it also writes a job summary (image, digest, what built it, previous image, start time, request id,
// the rollback input) and turns a failure into an ::error:: annotation with the agent's reason.
//
//   AGENT_URL=https://deploy-dev.example.com CF_ACCESS_CLIENT_ID=... CF_ACCESS_CLIENT_SECRET=... \
//   IMAGE=ghcr.io/ceerkle/dreichor-trading/runtime:<tag> ENVIRONMENT=dev node scripts/deploy-and-verify.mjs
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const inActions = process.env['GITHUB_ACTIONS'] === 'true';
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;

// GitHub's workflow-command escaping, so a reason with newlines stays one annotation.
const escapeCommand = (text) => text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');

function fail(message, requestId = null) {
  const id = requestId === null ? '' : ` (request ${requestId})`;
  console.error(`deploy failed: ${message}${id}`);
  if (inActions) console.log(`::error title=Deploy failed::${escapeCommand(`${message}${id}`)}`);
  summary([`## Deploy failed`, '', '```', `${message}${id}`, '```']);
  process.exit(1);
}

function summary(lines) {
  const file = process.env['GITHUB_STEP_SUMMARY'];
  if (file) appendFileSync(file, `${lines.join('\n')}\n`);
}

const need = (name) => {
  const value = process.env[name];
  if (!value) fail(`${name} is not set`);
  return value;
};

const url = need('AGENT_URL').replace(/\/+$/, '');
const image = need('IMAGE');
const environment = need('ENVIRONMENT');
const headers = {
  'CF-Access-Client-Id': need('CF_ACCESS_CLIENT_ID'),
  'CF-Access-Client-Secret': need('CF_ACCESS_CLIENT_SECRET'),
  'Content-Type': 'application/json',
};
// Cloudflare gives up on an origin after 100 s; the agent answers before that.
const timeoutMs = Number(process.env['DEPLOY_CLIENT_TIMEOUT_SECONDS'] ?? 110) * 1000;
const pollMs = Number(process.env['DEPLOY_POLL_MS'] ?? 1000);

/** One request; the answer's JSON, or an explanation of what came back instead. */
async function request(method, path, body) {
  let response;
  try {
    response = await fetch(`${url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      // A redirect is Access refusing the token (a login page): a failure, never something to follow.
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    return {
      ok: false,
      message: `${method} ${path}: ${error instanceof Error ? error.message : String(error)}`,
      requestId: null,
    };
  }
  const requestId = response.headers.get('x-request-id');
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: reported below
  }
  if (response.status !== 200) {
    const reason = json && typeof json.reason === 'string' ? json.reason : text.slice(0, 500) || '(empty body)';
    const where =
      response.status >= 300 && response.status < 400
        ? ` (redirect to ${response.headers.get('location') ?? '?'}: Cloudflare Access did not accept the token)`
        : '';
    return { ok: false, message: `${method} ${path} answered ${response.status}${where}: ${reason}`, requestId };
  }
  if (json === null)
    return { ok: false, message: `${method} ${path} answered 200 but not with JSON: ${text.slice(0, 200)}`, requestId };
  return { ok: true, json, requestId };
}

async function call(method, path, body) {
  const answer = await request(method, path, body);
  if (!answer.ok) fail(answer.message, answer.requestId);
  return answer;
}

/** Prints each phase of the deploy in progress until `done` resolves. Polling errors are ignored. */
async function watchPhases(done) {
  let finished = false;
  done.finally(() => (finished = true));
  let last = null;
  while (!finished) {
    const answer = await request('GET', '/v1/status');
    const phase = answer.ok && answer.json.deploy_in_progress ? answer.json.phase : null;
    if (phase && phase !== last) {
      console.log(`[${elapsed()}] ${phase}`);
      last = phase;
    }
    await Promise.race([sleep(pollMs), done.catch(() => undefined)]);
  }
}

console.log(`deploying ${image} to ${environment} via ${url}`);
const deploying = call('POST', '/v1/deploy', { image, environment });
await watchPhases(deploying);
const { json: deployed, requestId } = await deploying;
if (deployed.status !== 'deployed' || deployed.image !== image || deployed.environment !== environment) {
  fail(`unexpected deploy answer: ${JSON.stringify(deployed)}`, requestId);
}
console.log(
  `[${elapsed()}] deployed: ${deployed.container_name} runs ${deployed.image} (${deployed.image_digest ?? 'digest unknown'})`,
);

// Supply chain: what built the image, as the agent verified it (IMAGE_VERIFICATION).
const provenance = deployed.provenance ?? null;
if (provenance !== null) {
  console.log(
    provenance.verified_by === 'cosign-key'
      ? `built: signed with key ${provenance.key_fingerprint}`
      : `built: ${provenance.repository} at ${provenance.commit} (${provenance.ref}) by ${provenance.run_url}`,
  );
}

const { json: status } = await call('GET', '/v1/status');
if (status.running !== true) fail(`status says the runtime is not running: ${JSON.stringify(status)}`, requestId);
if (status.image !== image) fail(`status shows ${status.image}, not ${image}`, requestId);
console.log(`verified: ${status.container_name} running ${status.image} since ${status.started_at}`);

const previous = deployed.previous_image ?? null;
const previousTag =
  previous === null
    ? null
    : previous
        .replace(/@sha256:[0-9a-f]{64}$/, '')
        .split(':')
        .at(-1);
summary([
  `## Deployed to ${environment}`,
  '',
  '| | |',
  '|---|---|',
  `| image | \`${deployed.image}\` |`,
  `| digest | \`${deployed.image_digest ?? 'unknown'}\` |`,
  `| previous image | ${previous === null ? 'none' : `\`${previous}\``} |`,
  `| started at | ${deployed.started_at ?? 'unknown'} |`,
  ...provenanceRows(provenance),
  `| request id | \`${requestId ?? 'unknown'}\` (the agent's audit log: \`request_id\`) |`,
  `| rollback | ${previousTag === null ? 'nothing to roll back to' : `run this workflow with environment \`${environment}\` and tag \`${previousTag}\``} |`,
]);

/** The summary's rows for what built the image: the commit and workflow run, or the signing key. */
function provenanceRows(p) {
  // The values come from a verified certificate, but a table cell must not be able to end early.
  const cell = (v) => (typeof v === 'string' && v !== '' ? `\`${v.replace(/[`|\n\r]/g, '')}\`` : 'unknown');
  if (p === null) return ['| verified | no: the agent runs with IMAGE_VERIFICATION=none |'];
  if (p.verified_by === 'cosign-key') return [`| verified | cosign signature by key ${cell(p.key_fingerprint)} |`];
  return [
    `| verified | GitHub attestation (${cell(p.predicate_type)}) |`,
    `| built from | ${cell(p.repository)} commit ${cell(p.commit)} (${cell(p.ref)}) |`,
    `| build run | ${cell(p.run_url)} |`,
    `| signer workflow | ${cell(p.workflow)} |`,
  ];
}
