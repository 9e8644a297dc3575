import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { StateStore } from '../../../src/state/state.js';
import { propertyRuns } from '../../support/sampling.js';

const root = mkdtempSync(join(tmpdir(), 'dreichor-state-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => {
  n += 1;
  return join(root, `s${n}`);
};
const digest = (c: string): string => `sha256:${c.repeat(64)}`;

// Docker's tag grammar: [\w][\w.-]{0,127}. Names of built-in object properties are valid tags too.
const BUILTIN_NAMES = [
  'constructor',
  '__proto__',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'isPrototypeOf',
  '__defineGetter__',
  'prototype',
];
const validTag = fc.oneof(fc.constantFrom(...BUILTIN_NAMES), fc.stringMatching(/^[\w][\w.-]{0,127}$/));

describe('the record of tag digests', () => {
  it('property: every valid tag name is recorded, survives a restart, and keeps its first digest', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(validTag, { minLength: 1, maxLength: 8 }), async (tags) => {
        const dir = freshDir();
        const store = await StateStore.open(dir);
        for (const [i, tag] of tags.entries()) {
          assert.equal(store.recordedDigest(tag), null, `${tag} is new`);
          await store.recordTag(tag, digest(String(i % 10)));
          await store.recordTag(tag, digest('f')); // a second record never replaces the first
        }
        const reopened = await StateStore.open(dir);
        for (const [i, tag] of tags.entries()) assert.equal(reopened.recordedDigest(tag), digest(String(i % 10)), tag);
        assert.equal(reopened.recordedDigest('never-deployed'), null);
      }),
      propertyRuns(80),
    );
  });

  it('writes "__proto__" and "constructor" as ordinary keys of the state file', async () => {
    const dir = freshDir();
    const store = await StateStore.open(dir);
    await store.recordTag('__proto__', digest('a'));
    await store.recordTag('constructor', digest('b'));
    const json = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { tags: Record<string, { digest: string }> };
    assert.deepEqual(Object.keys(json.tags), ['__proto__', 'constructor']);
    assert.equal(Object.getOwnPropertyDescriptor(json.tags, '__proto__')?.value?.digest, digest('a'));
  });

  it('refuses to start on a damaged record rather than forget the tags', async () => {
    const dir = freshDir();
    await StateStore.open(dir);
    for (const bad of [
      '{',
      '{"version":1,"tags":[],"last_deploy":null}',
      '{"version":1,"tags":{"v1":{"digest":1}},"last_deploy":null}',
    ]) {
      writeFileSync(join(dir, 'state.json'), bad);
      await assert.rejects(StateStore.open(dir), /is damaged/);
    }
  });

  it('an interrupted deploy found by recovery does not hide a later deploy', async () => {
    const store = await StateStore.open(freshDir());
    const record = (request_id: string, at: string, outcome: 'failed' | 'interrupted') => ({
      image: 'x:v1',
      outcome,
      reason: null,
      at,
      request_id,
      image_digest: null,
    });
    await store.setLastDeploy(record('later', '2026-01-01T00:00:10.000Z', 'failed'));
    await store.setInterrupted(record('crashed', '2026-01-01T00:00:20.000Z', 'interrupted'), '2026-01-01T00:00:01.000Z');
    assert.equal(store.lastDeploy?.request_id, 'later');
    assert.equal(store.lastInterrupted?.request_id, 'crashed');
    await store.setInterrupted(record('crashed2', '2026-01-01T00:00:30.000Z', 'interrupted'), '2026-01-01T00:00:25.000Z');
    assert.equal(store.lastDeploy?.request_id, 'crashed2');
  });
});
