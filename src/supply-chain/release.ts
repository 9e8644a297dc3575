import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/config-sources.js';
import { type AttestationPolicy, verificationPolicy } from '../config/verification.js';
import { describe } from '../errors.js';
import { AttestationVerifier } from './attestation.js';
import type { Provenance } from './provenance.js';

/**
 * `agent.js verify-release <file> <bundle> --trusted-root <file>`: whether a release file of the
 * agent itself is what this repository's release workflow built, checked offline with the same code
 * that checks runtime images (attestation.ts) before scripts/install.sh installs anything.
 *
 * Security, what each check answers: a file changed after the build (the statement's subject is the
 * file's SHA-256); an attestation signed by anyone (the certificate chain to the trusted root, the
 * transparency log or timestamp); a file built by another workflow of this repository (one that any
 * contributor could add) or by another repository (a fork): the certificate's SAN must be exactly
 * release.yml of RELEASE_REPOSITORY, run from a tag v*.
 */
export const RELEASE_REPOSITORY = 'ceerkle/dreichor-deploy-agent';
export const RELEASE_WORKFLOW = '.github/workflows/release.yml';
const RELEASE_REFS = 'refs/tags/v*';
const MAX_FILE_BYTES = 64 * 1024 * 1024;
const MAX_BUNDLE_BYTES = 16 * 1024 * 1024;
const MAX_BUNDLES = 16;

export type ReleaseVerdict =
  | { readonly ok: true; readonly digest: string; readonly provenance: Provenance }
  | { readonly ok: false; readonly check: string; readonly problem: string };

/** The named check a refusal of attestation.ts stands for, and its reason in this command's words. */
const CHECKS: readonly (readonly [RegExp, string, (repository: string) => string])[] = [
  [/SIGSTORE_TRUSTED_ROOT_FILE/, 'signature', () => 'the trusted root'],
  [/ATTESTATION_PREDICATE_TYPE/, 'predicate type', () => 'SLSA provenance v1'],
  [/ATTESTATION_ISSUER/, 'issuer', () => "GitHub Actions' OIDC issuer"],
  [/ATTESTATION_SIGNER_WORKFLOW/, 'workflow', (r) => `${r}/${RELEASE_WORKFLOW}`],
  [/ATTESTATION_REPOSITORY/, 'repository', (r) => r],
  [/ATTESTATION_SOURCE_REFS/, 'ref', () => `a release tag (${RELEASE_REFS})`],
];

function named(problem: string, repository: string): { check: string; problem: string } {
  // A fork's release.yml is another workflow, but the check that fails is the repository's.
  const signer = /^signed by workflow "https:\/\/github\.com\/([^/"]+\/[^/"]+)\//.exec(problem);
  if (signer !== null && signer[1]?.toLowerCase() !== repository.toLowerCase()) {
    return {
      check: 'repository',
      problem: `${problem.replace(/ATTESTATION_SIGNER_WORKFLOW/, `${repository}/${RELEASE_WORKFLOW}`)}: built in another repository`,
    };
  }
  for (const [variable, check, words] of CHECKS) {
    if (variable.test(problem)) return { check, problem: problem.replace(variable, words(repository)) };
  }
  if (/subject is another digest/.test(problem))
    return {
      check: 'subject digest',
      problem: 'it attests another file: this file was changed after it was built, or is another file',
    };
  return { check: 'bundle', problem };
}

/** The bundles of a file: one JSON bundle (the release asset) or JSON lines (`gh attestation download`). */
function bundlesOf(text: string): Buffer[] {
  const trimmed = text.trim();
  try {
    JSON.parse(trimmed);
    return [Buffer.from(trimmed)];
  } catch {
    return trimmed
      .split('\n')
      .filter((line) => line.trim() !== '')
      .slice(0, MAX_BUNDLES)
      .map((line) => Buffer.from(line));
  }
}

/** Judges the file against every bundle; the first that passes every check wins, else the furthest refusal. */
export function verifyRelease(file: Buffer, bundleText: string, policy: AttestationPolicy): ReleaseVerdict {
  const digest = `sha256:${createHash('sha256').update(file).digest('hex')}`;
  const verifier = new AttestationVerifier(policy);
  let best: { rank: number; problem: string } | null = null;
  for (const bundle of bundlesOf(bundleText)) {
    const judgement = verifier.judge(bundle, [digest]);
    if ('provenance' in judgement) return { ok: true, digest, provenance: judgement.provenance };
    if (best === null || judgement.rank > best.rank) best = judgement;
  }
  if (best === null) return { ok: false, check: 'bundle', problem: 'the bundle file holds no attestation' };
  return { ok: false, ...named(best.problem, policy.repository) };
}

/** The policy for a release of `repository`: its release.yml, from a tag v*, SLSA provenance. */
export function releasePolicy(trustedRootFile: string, repository: string): AttestationPolicy {
  const policy = verificationPolicy({
    IMAGE_VERIFICATION: 'github-attestation',
    SIGSTORE_TRUSTED_ROOT_FILE: trustedRootFile,
    ATTESTATION_REPOSITORY: repository,
    ATTESTATION_SIGNER_WORKFLOW: `${repository}/${RELEASE_WORKFLOW}`,
    ATTESTATION_SOURCE_REFS: RELEASE_REFS,
  });
  if (policy.mode !== 'github-attestation') throw new Error('unreachable: the release policy is an attestation policy');
  return policy;
}

const USAGE =
  'usage: agent.js verify-release <release file> <bundle> --trusted-root <trusted_root.jsonl> [--repository <owner>/<repo>]';

/** The command: what to print and the exit code (0 verified, 1 refused, 2 cannot check). */
export function verifyReleaseCommand(args: readonly string[]): { readonly code: 0 | 1 | 2; readonly text: string } {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (error) {
    return { code: 2, text: `${describe(error)}\n${USAGE}` };
  }
  const { file, bundle, trustedRoot, repository } = parsed;
  let policy: AttestationPolicy;
  let bytes: Buffer;
  let bundleText: string;
  try {
    policy = releasePolicy(resolve(trustedRoot), repository);
    bytes = readBounded(file, MAX_FILE_BYTES);
    bundleText = readBounded(bundle, MAX_BUNDLE_BYTES).toString('utf8');
  } catch (error) {
    const what =
      error instanceof ConfigError
        ? error.message
            .replace(/^SIGSTORE_TRUSTED_ROOT_FILE/, '--trusted-root')
            .replace(/^ATTESTATION_REPOSITORY/, '--repository')
        : describe(error);
    return { code: 2, text: `cannot check ${file}: ${what}` };
  }
  const verdict = verifyRelease(bytes, bundleText, policy);
  if (!verdict.ok) return { code: 1, text: `${file}: refused, check failed: ${verdict.check}: ${verdict.problem}` };
  const p = verdict.provenance;
  return {
    code: 0,
    text: `${file}: verified: ${verdict.digest}, built by ${p.workflow} from ${p.repository} at ${p.ref} (commit ${p.commit}), run ${p.run_url}`,
  };
}

function parse(args: readonly string[]) {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { 'trusted-root': { type: 'string' }, repository: { type: 'string', default: RELEASE_REPOSITORY } },
    allowPositionals: true,
    strict: true,
  });
  const [file, bundle, ...rest] = positionals;
  if (file === undefined || bundle === undefined || rest.length > 0)
    throw new Error('a release file and its bundle are required');
  const trustedRoot = values['trusted-root'];
  if (trustedRoot === undefined) throw new Error('--trusted-root is required');
  return { file, bundle, trustedRoot, repository: values.repository };
}

function readBounded(path: string, max: number): Buffer {
  if (statSync(path).size > max) throw new Error(`${path} is larger than ${max} bytes`);
  return readFileSync(path);
}
