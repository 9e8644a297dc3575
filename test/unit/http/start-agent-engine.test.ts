/**
 * startAgent's wiring to the engine (http/app.ts), through the real engine wrapper (src/docker.ts,
 * dockerode inside) against a scripted Docker API on a unix socket: what it asks the engine before it
 * trusts an empty STATE_DIR, and that it starts the background clean-up. Both decide safety, and
 * neither runs in a test that builds the deployer by hand. Well under a second.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LABEL, OWNER } from '../../../src/deploy/runtime-spec.js';
import { AgentError } from '../../../src/errors.js';
import { startAgent } from '../../../src/http/app.js';
import { tempDir } from '../../support/temp-dir.js';
import { unitConfig } from '../../support/unit-config.js';

const dir = tempDir('start-agent-engine');
const NAME = 'dreichor-runtime-dev';
const OWN_LABELS = { [LABEL.owner]: OWNER, [LABEL.environment]: 'dev', [LABEL.containerName]: NAME };
const LEFTOVER_ID = 'c'.repeat(64);

/** What the scripted engine holds: the container at the fixed name (or none), and the list it answers. */
interface Script {
  fixed: Record<string, string> | null;
  listed: { Id: string; Names: string[]; State: string; Labels: Record<string, string> }[];
}

const inspectAnswer = (labels: Record<string, string>) => ({
  Id: 'a'.repeat(64),
  Image: `sha256:${'b'.repeat(64)}`,
  Name: `/${NAME}`,
  State: { Running: true, Status: 'running', ExitCode: 0, StartedAt: '2026-12-06T00:00:00Z' },
  Config: { Image: 'registry.invalid/dreichor/runtime:v1', Labels: labels },
  HostConfig: { RestartPolicy: { Name: 'no' } },
});

describe('startAgent and the engine', () => {
  const socketPath = join(dir, 'docker.sock');
  const requests: string[] = [];
  let script: Script = { fixed: null, listed: [] };
  let server: Server;
  const answer = (res: ServerResponse, status: number, body?: unknown) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(body === undefined ? '' : JSON.stringify(body));
  };
  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '').replace(/^\/v[0-9.]+/, '');
      requests.push(`${req.method} ${path.split('?')[0]}`);
      if (req.method === 'GET' && path.startsWith(`/containers/${NAME}/json`))
        return script.fixed === null
          ? answer(res, 404, { message: 'No such container' })
          : answer(res, 200, inspectAnswer(script.fixed));
      if (req.method === 'GET' && path.startsWith('/containers/json')) return answer(res, 200, script.listed);
      if (req.method === 'DELETE' && path.startsWith(`/containers/${LEFTOVER_ID}`)) return answer(res, 204);
      return answer(res, 404, { message: `not scripted: ${req.method} ${path}` });
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const config = (name: string) => unitConfig(join(dir, name), { DOCKER_HOST: `unix://${socketPath}` });

  it("an empty STATE_DIR while the fixed name carries this agent's labels: refused, the state was lost", async () => {
    script = { fixed: OWN_LABELS, listed: [] };
    const started = await startAgent(config('lost-state'), { port: 0 }).then(
      async (agent) => {
        await agent.close();
        return assert.fail('started on an empty STATE_DIR beside a container with its own labels');
      },
      (error: unknown) => error,
    );
    assert.ok(started instanceof AgentError && started.code === 'state_refused', String(started));
    assert.match(started.reason, /carries this agent's labels: the state was lost/);
    assert.ok(requests.includes(`GET /containers/${NAME}/json`), requests.join(', '));
  });

  it('an empty STATE_DIR beside a container of another owner, or another environment, at the fixed name: a fresh install', async () => {
    for (const [i, labels] of [
      {},
      { ...OWN_LABELS, [LABEL.owner]: 'someone-else' },
      { ...OWN_LABELS, [LABEL.environment]: 'prod' },
    ].entries()) {
      script = { fixed: labels, listed: [] };
      const agent = await startAgent(config(`fresh-${i}`), { port: 0 });
      await agent.close();
    }
  });

  it('starts the background clean-up: a stopped staging container of its own is removed, unasked', async () => {
    script = {
      fixed: null,
      listed: [{ Id: LEFTOVER_ID, Names: [`/${NAME}-staging-0badcafe`], State: 'exited', Labels: OWN_LABELS }],
    };
    requests.length = 0;
    const agent = await startAgent(config('clean-up'), { port: 0 });
    try {
      const deadline = Date.now() + 5_000;
      while (!requests.includes(`DELETE /containers/${LEFTOVER_ID}`) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 20));
      assert.ok(requests.includes(`DELETE /containers/${LEFTOVER_ID}`), `not removed: ${requests.join(', ')}`);
    } finally {
      await agent.close();
    }
  });
});
