#!/usr/bin/env node
// Deploys one image through a deploy agent and verifies it, exactly as CI does. No dependencies:
// Node 20's fetch only. Exits 0 only when the deploy answered 200 and GET /v1/status then shows the
// runtime running the requested image; any other answer (a 3xx from Cloudflare Access, a 403, a
// 5xx, an HTML page) fails with the reason printed.
//
//   AGENT_URL=https://deploy-dev.example.com CF_ACCESS_CLIENT_ID=... CF_ACCESS_CLIENT_SECRET=... \
//   IMAGE=ghcr.io/ceerkle/dreichor-trading/runtime:<tag> ENVIRONMENT=dev node scripts/deploy-and-verify.mjs
const need = (name) => {
  const value = process.env[name];
  if (!value) fail(`${name} is not set`);
  return value;
};

function fail(message) {
  console.error(`deploy failed: ${message}`);
  process.exit(1);
}

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

async function call(method, path, body) {
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
    fail(`${method} ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: reported below
  }
  if (response.status !== 200) {
    const reason = json && typeof json.reason === 'string' ? json.reason : text.slice(0, 500) || '(empty body)';
    const where = response.status >= 300 && response.status < 400 ? ` (redirect to ${response.headers.get('location') ?? '?'}: Cloudflare Access did not accept the token)` : '';
    fail(`${method} ${path} answered ${response.status}${where}: ${reason}`);
  }
  if (json === null) fail(`${method} ${path} answered 200 but not with JSON: ${text.slice(0, 200)}`);
  return json;
}

console.log(`deploying ${image} to ${environment} via ${url}`);
const deployed = await call('POST', '/v1/deploy', { image, environment });
if (deployed.status !== 'deployed' || deployed.image !== image || deployed.environment !== environment) {
  fail(`unexpected deploy answer: ${JSON.stringify(deployed)}`);
}
console.log(`deployed: ${deployed.container_name} runs ${deployed.image} (${deployed.image_digest ?? 'digest unknown'})`);

const status = await call('GET', '/v1/status');
if (status.running !== true) fail(`status says the runtime is not running: ${JSON.stringify(status)}`);
if (status.image !== image) fail(`status shows ${status.image}, not ${image}`);
console.log(`verified: ${status.container_name} running ${status.image} since ${status.started_at}`);
