import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import * as z from '../zod.js';
import { ATTESTATION_VARIABLES, COSIGN_VARIABLES, fail, type Variable } from './config-sources.js';

/**
 * The supply-chain policy, read once at start (IMAGE_VERIFICATION and the variables that go with
 * it). Nothing here loads sigstore: the trusted root is checked for its shape only and kept as JSON,
 * the key is parsed with node:crypto. A missing, unknown or inconsistent combination stops the agent
 * at start, naming the variable.
 */
export const VERIFICATION_MODES = ['github-attestation', 'cosign-key', 'none'] as const;
export type VerificationMode = (typeof VERIFICATION_MODES)[number];

export interface AttestationPolicy {
  readonly mode: 'github-attestation';
  /** One or more Sigstore trusted roots (public-good, GitHub's own instance), as JSON. */
  readonly trustedRoots: readonly Readonly<Record<string, unknown>>[];
  /** `<owner>/<repo>`. */
  readonly repository: string;
  /** `<owner>/<repo>/.github/workflows/<file>`. */
  readonly signerWorkflow: string;
  /** Exact refs, or prefixes when they end in `*`; null: any ref. */
  readonly sourceRefs: readonly string[] | null;
  readonly predicateType: string;
  readonly issuer: string;
}

export interface CosignKeyPolicy {
  readonly mode: 'cosign-key';
  readonly publicKey: KeyObject;
  /** `sha256:<hex>` of the key's SubjectPublicKeyInfo (DER). */
  readonly fingerprint: string;
}

export type VerificationPolicy = AttestationPolicy | CosignKeyPolicy | { readonly mode: 'none' };

/**
 * Whether two GitHub owner/repository names are the same: GitHub treats `Ceerkle/Dreichor-Trading`
 * and `ceerkle/dreichor-trading` as one repository. ASCII case only. Security: a Unicode case fold
 * would make the Kelvin sign (U+212A) equal to "k"; GitHub's names are ASCII, so nothing else folds.
 */
export function sameGitHubName(a: string, b: string): boolean {
  const fold = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
  return a.length === b.length && fold(a) === fold(b);
}

export const DEFAULT_PREDICATE_TYPE = 'https://slsa.dev/provenance/v1';
export const DEFAULT_ISSUER = 'https://token.actions.githubusercontent.com';

type Raw = Partial<Record<'IMAGE_VERIFICATION' | (typeof ATTESTATION_VARIABLES)[number] | 'COSIGN_PUBLIC_KEY_FILE', string>>;

// GitHub's own rules: an owner is up to 39 of [A-Za-z0-9-]; a repository up to 100 of [A-Za-z0-9._-].
const REPOSITORY = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})\/[A-Za-z0-9._-]{1,100}$/;
const WORKFLOW_FILE = /^[A-Za-z0-9._-]{1,200}\.ya?ml$/;
// A ref, exact or ending in one "*" (a prefix); no other wildcard, no space, no control character.
const REF_PATTERN = /^refs\/[\x21-\x29\x2b-\x7e]{1,250}\*?$/;
const MAX_ROOT_FILE_BYTES = 1024 * 1024;

const trustedRootShape = z.looseObject({
  mediaType: z.string().check(z.regex(/^application\/vnd\.dev\.sigstore\.trustedroot(\.v\d+\.\d+)?\+json/)),
  certificateAuthorities: z.array(z.looseObject({})).check(z.minLength(1)),
  tlogs: z.optional(z.array(z.looseObject({}))),
  timestampAuthorities: z.optional(z.array(z.looseObject({}))),
});

export function verificationPolicy(raw: Raw): VerificationPolicy {
  const mode = raw.IMAGE_VERIFICATION;
  if (mode === undefined) {
    fail('IMAGE_VERIFICATION', 'is required: github-attestation, cosign-key or none (an explicit choice)');
  }
  if (!(VERIFICATION_MODES as readonly string[]).includes(mode)) {
    fail('IMAGE_VERIFICATION', 'must be "github-attestation", "cosign-key" or "none"');
  }
  const unused = (variables: readonly Variable[], why: string) => {
    for (const variable of variables) if (raw[variable as keyof Raw] !== undefined) fail(variable, why);
  };
  if (mode === 'none') {
    unused([...ATTESTATION_VARIABLES, ...COSIGN_VARIABLES], 'is set but IMAGE_VERIFICATION is "none": nothing would check it');
    return { mode: 'none' };
  }
  if (mode === 'cosign-key') {
    unused(ATTESTATION_VARIABLES, 'is only used with IMAGE_VERIFICATION=github-attestation');
    return cosignKey(raw.COSIGN_PUBLIC_KEY_FILE);
  }
  unused(COSIGN_VARIABLES, 'is only used with IMAGE_VERIFICATION=cosign-key');
  return attestation(raw);
}

function attestation(raw: Raw): AttestationPolicy {
  const trustedRoots = readTrustedRoots(raw.SIGSTORE_TRUSTED_ROOT_FILE);
  const repository = raw.ATTESTATION_REPOSITORY;
  if (repository === undefined) fail('ATTESTATION_REPOSITORY', 'is required with IMAGE_VERIFICATION=github-attestation');
  if (!REPOSITORY.test(repository)) fail('ATTESTATION_REPOSITORY', 'must be <owner>/<repo>, as on GitHub');
  const workflow = raw.ATTESTATION_SIGNER_WORKFLOW;
  if (workflow === undefined) fail('ATTESTATION_SIGNER_WORKFLOW', 'is required with IMAGE_VERIFICATION=github-attestation');
  const prefix = `${repository}/.github/workflows/`;
  // Security: the signer workflow is the identity that decides what may run; one of another
  // repository would let that repository's workflows build what this agent runs. The owner and
  // repository are GitHub's names, compared without case; the path after them is exact.
  const [owner = '', repo = ''] = workflow.split('/');
  const named = `${owner}/${repo}`;
  if (
    !sameGitHubName(named, repository) ||
    !workflow.startsWith('/.github/workflows/', named.length) ||
    !WORKFLOW_FILE.test(workflow.slice(prefix.length))
  ) {
    fail('ATTESTATION_SIGNER_WORKFLOW', `must be ${prefix}<file>.yml: a workflow of ATTESTATION_REPOSITORY`);
  }
  let sourceRefs: string[] | null = null;
  if (raw.ATTESTATION_SOURCE_REFS !== undefined) {
    sourceRefs = raw.ATTESTATION_SOURCE_REFS.split(',').map((r) => r.trim());
    if (sourceRefs.length > 32 || !sourceRefs.every((r) => REF_PATTERN.test(r))) {
      fail('ATTESTATION_SOURCE_REFS', 'must be up to 32 comma-separated refs such as refs/heads/main or refs/tags/v*');
    }
  }
  const predicateType = raw.ATTESTATION_PREDICATE_TYPE ?? DEFAULT_PREDICATE_TYPE;
  if (!/^[\x21-\x7e]{1,256}$/.test(predicateType)) fail('ATTESTATION_PREDICATE_TYPE', 'must be a predicate type URI');
  const issuer = raw.ATTESTATION_ISSUER ?? DEFAULT_ISSUER;
  if (!/^https:\/\/[\x21-\x7e]{1,256}$/.test(issuer)) fail('ATTESTATION_ISSUER', 'must be an https URL');
  return { mode: 'github-attestation', trustedRoots, repository, signerWorkflow: workflow, sourceRefs, predicateType, issuer };
}

function readFile(variable: Variable, path: string | undefined, maxBytes: number): string {
  if (path === undefined) fail(variable, 'is required with this IMAGE_VERIFICATION');
  if (!isAbsolute(path) || path.includes('\0')) fail(variable, 'must be an absolute path');
  try {
    if (statSync(path).size > maxBytes) fail(variable, `is larger than ${maxBytes} bytes`);
    return readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof Error && error.name === 'ConfigError') throw error;
    const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : 'unreadable';
    fail(variable, `cannot be read (${code})`);
  }
}

/** A trusted root, or JSON lines of several (what `gh attestation trusted-root` writes). */
function readTrustedRoots(path: string | undefined): Readonly<Record<string, unknown>>[] {
  const text = readFile('SIGSTORE_TRUSTED_ROOT_FILE', path, MAX_ROOT_FILE_BYTES).trim();
  let documents: unknown[];
  try {
    documents = [JSON.parse(text)];
  } catch {
    try {
      documents = text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as unknown);
    } catch {
      fail('SIGSTORE_TRUSTED_ROOT_FILE', 'is neither a JSON trusted root nor JSON lines of trusted roots');
    }
  }
  if (documents.length === 0 || documents.length > 8) fail('SIGSTORE_TRUSTED_ROOT_FILE', 'must hold 1 to 8 trusted roots');
  return documents.map((d) => {
    const parsed = trustedRootShape.safeParse(d);
    if (!parsed.success) {
      fail('SIGSTORE_TRUSTED_ROOT_FILE', 'is not a Sigstore trusted root (application/vnd.dev.sigstore.trustedroot+json)');
    }
    if ((parsed.data.tlogs?.length ?? 0) === 0 && (parsed.data.timestampAuthorities?.length ?? 0) === 0) {
      fail('SIGSTORE_TRUSTED_ROOT_FILE', 'has a trusted root with neither a transparency log nor a timestamp authority');
    }
    return parsed.data;
  });
}

function cosignKey(path: string | undefined): CosignKeyPolicy {
  const pem = readFile('COSIGN_PUBLIC_KEY_FILE', path, 64 * 1024);
  let publicKey: KeyObject;
  try {
    // Security: a public key only. A private key here would parse too (node derives the public
    // half), but it would mean the signing key sits on the deploy host: refused.
    if (/PRIVATE KEY/.test(pem)) fail('COSIGN_PUBLIC_KEY_FILE', 'holds a private key: give the public key (cosign.pub)');
    publicKey = createPublicKey({ key: pem, format: 'pem' });
  } catch (error) {
    if (error instanceof Error && error.name === 'ConfigError') throw error;
    fail('COSIGN_PUBLIC_KEY_FILE', 'is not a PEM public key');
  }
  if (!['ec', 'ed25519', 'rsa'].includes(publicKey.asymmetricKeyType ?? '')) {
    fail('COSIGN_PUBLIC_KEY_FILE', 'must be an ECDSA, Ed25519 or RSA public key');
  }
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return { mode: 'cosign-key', publicKey, fingerprint: `sha256:${createHash('sha256').update(der).digest('hex')}` };
}
