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
// Security: everything the agent answers is the agent's, the image's or the runtime's text (a failure
// reason quotes the runtime's last log lines), and the runner reads every line of this job's output
// for workflow commands: a runtime that logs `::warning title=Deployed OK::`, `::add-mask::` or
// `::stop-commands::` would steer the job that decides on production. So that text is printed only
// inside a `::stop-commands::<random token>` block (resumed after), each of its lines escaped so that
// none can start a command anyway (`::` at a line's start, `##[` anywhere), and in the job summary
// inside a code fence longer than any backtick run in it. The inputs are checked before any call.
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const inActions = process.env['GITHUB_ACTIONS'] === 'true';
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
// Nobody outside this process knows it, so nothing printed inside the block can end it.
const resumeToken = randomBytes(16).toString('hex');

// GitHub's workflow-command escaping, so a reason with newlines stays one annotation.
const escapeCommand = (text) => text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');

/** A line of someone else's text that the runner cannot read as a command, wherever it is printed. */
const inert = (line) => {
  const unlegacy = line.replace(/##\[/g, '## [');
  return /^\s*::/.test(unlegacy) ? `| ${unlegacy}` : unlegacy;
};

/** Prints text that came from the agent (or through it, from the image or the runtime). */
function show(text) {
  const lines = String(text)
    .split(/\r\n|\r|\n/)
    .map(inert);
  if (inActions) console.log(`::stop-commands::${resumeToken}`);
  for (const line of lines) console.log(line);
  if (inActions) console.log(`::${resumeToken}::`);
}

/** A fenced code block that no backtick run in `text` can close. */
function fenced(text) {
  const longest = Math.max(0, ...[...String(text).matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return [`${fence}text`, String(text), fence];
}

function fail(message, requestId = null) {
  const id = requestId === null ? '' : ` (request ${requestId})`;
  show(`deploy failed: ${message}${id}`);
  // The data of a command is escaped whole (one line), and it is printed outside the stopped block.
  if (inActions) console.log(`::error title=Deploy failed::${escapeCommand(`${message}${id}`)}`);
  summary(['## Deploy failed', '', ...fenced(`${message}${id}`)]);
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

// The image reference: a lower-case repository (host[:port]/path), a tag by the OCI grammar, and an
// optional digest pin. Nothing else, no whitespace, no line break: it is printed and sent as it is.
const IMAGE_GRAMMAR =
  /^[a-z0-9][a-z0-9._-]*(:[0-9]{1,5})?(\/[a-z0-9][a-z0-9._-]*)+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?$/;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

function agentUrl(value) {
  let parsed;
  try {
    parsed = new URL(value);
  } catch {
    fail('AGENT_URL is not a URL');
  }
  // Security: the service token travels in the headers; over plain http anyone on the path reads it.
  if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && LOOPBACK.has(parsed.hostname))) {
    fail('AGENT_URL must be an https URL (plain http only to 127.0.0.1, localhost or [::1])');
  }
  if (parsed.username !== '' || parsed.password !== '' || parsed.search !== '' || parsed.hash !== '') {
    fail('AGENT_URL must not carry credentials, a query or a fragment');
  }
  return parsed.href.replace(/\/+$/, '');
}

const url = agentUrl(need('AGENT_URL'));
const image = need('IMAGE');
if (image.length > 512 || !IMAGE_GRAMMAR.test(image)) {
  fail('IMAGE is not an image reference with a tag (repository:tag, a tag of letters, digits, _ . -, at most 128)');
}
const environment = need('ENVIRONMENT');
if (environment !== 'dev' && environment !== 'prod') fail('ENVIRONMENT must be "dev" or "prod"');
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
  // The agent's request ids are UUIDs; anything else is not printed.
  const header = response.headers.get('x-request-id');
  const requestId = header !== null && /^[0-9a-f-]{36}$/.test(header) ? header : null;
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
    if (typeof phase === 'string' && phase !== last) {
      show(`[${elapsed()}] ${phase}`);
      last = phase;
    }
    await Promise.race([sleep(pollMs), done.catch(() => undefined)]);
  }
}

// Only checked inputs here: this line is not someone else's text.
console.log(`deploying ${image} to ${environment} via ${url}`);
const deploying = call('POST', '/v1/deploy', { image, environment });
await watchPhases(deploying);
const { json: deployed, requestId } = await deploying;
if (deployed.status !== 'deployed' || deployed.image !== image || deployed.environment !== environment) {
  fail(`unexpected deploy answer: ${JSON.stringify(deployed)}`, requestId);
}
show(`[${elapsed()}] deployed: ${deployed.container_name} runs ${deployed.image} (${deployed.image_digest ?? 'digest unknown'})`);

// Supply chain: what built the image, as the agent verified it (IMAGE_VERIFICATION).
const provenance = deployed.provenance ?? null;
if (provenance !== null) {
  show(
    provenance.verified_by === 'cosign-key'
      ? `built: signed with key ${provenance.key_fingerprint}`
      : `built: ${provenance.repository} at ${provenance.commit} (${provenance.ref}) by ${provenance.run_url}`,
  );
}

const { json: status } = await call('GET', '/v1/status');
if (status.running !== true) fail(`status says the runtime is not running: ${JSON.stringify(status)}`, requestId);
if (status.image !== image) fail(`status shows ${status.image}, not ${image}`, requestId);
show(`verified: ${status.container_name} running ${status.image} since ${status.started_at}`);

// The summary's values from the agent: a table cell that cannot end early, or a fence, or 'unknown'.
const cell = (v) => (typeof v === 'string' && v !== '' ? `\`${v.replace(/[`|\n\r<>]/g, '')}\`` : 'unknown');
const previous =
  typeof deployed.previous_image === 'string' && IMAGE_GRAMMAR.test(deployed.previous_image) ? deployed.previous_image : null;
const previousTag =
  previous === null
    ? null
    : previous
        .replace(/@sha256:[0-9a-f]{64}$/, '')
        .split(':')
        .at(-1);
const digest =
  typeof deployed.image_digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(deployed.image_digest) ? deployed.image_digest : null;
summary([
  `## Deployed to ${environment}`,
  '',
  '| | |',
  '|---|---|',
  `| image | \`${image}\` |`,
  `| digest | ${cell(digest)} |`,
  `| previous image | ${previous === null ? 'none' : `\`${previous}\``} |`,
  `| started at | ${cell(deployed.started_at)} |`,
  ...provenanceRows(provenance),
  `| request id | ${cell(requestId)} (the agent's audit log: \`request_id\`) |`,
  `| rollback | ${previousTag === null ? 'nothing to roll back to' : `run this workflow with environment \`${environment}\` and tag \`${previousTag}\``} |`,
]);

/** The summary's rows for what built the image: the commit and workflow run, or the signing key. */
function provenanceRows(p) {
  if (p === null) return ['| verified | no: the agent runs with IMAGE_VERIFICATION=none |'];
  if (p.verified_by === 'cosign-key') return [`| verified | cosign signature by key ${cell(p.key_fingerprint)} |`];
  return [
    `| verified | GitHub attestation (${cell(p.predicate_type)}) |`,
    `| built from | ${cell(p.repository)} commit ${cell(p.commit)} (${cell(p.ref)}) |`,
    `| build run | ${cell(p.run_url)} |`,
    `| signer workflow | ${cell(p.workflow)} |`,
  ];
}
