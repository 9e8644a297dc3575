/**
 * Sigstore without Sigstore: @sigstore/mock's Fulcio, CT log, Rekor and timestamp authority served on
 * 127.0.0.1 by a server of the test's own, and @sigstore/sign's DSSEBundleBuilder signing through
 * them, so attestations are made with real cryptography and verified by the agent exactly as GitHub's
 * are. Two instances, as GitHub has: "public-good" (a Rekor entry with an inclusion proof and an SCT
 * in the certificate) and "github" (GitHub's private instance: a signed timestamp, no Rekor, no CT).
 *
 * Known wrinkle, handled here: the mock Rekor stores a `dsse` proposal as it arrives; real Rekor
 * stores `{envelopeHash, payloadHash, signatures}`, which is what a verifier compares the bundle
 * with. The server converts the proposal before the mock logs it.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { bundleToJSON } from '@sigstore/bundle';
import {
  fulcioHandler,
  type HandlerFn,
  initializeCA,
  initializeCTLog,
  initializeTLog,
  initializeTSA,
  rekorHandler,
  tsaHandler,
} from '@sigstore/mock';
import { DSSEBundleBuilder, FulcioSigner, RekorWitness, TSAWitness, type Witness } from '@sigstore/sign';

export type Instance = 'public-good' | 'github';

/** The claims of a GitHub Actions OIDC token, as Fulcio turns them into certificate extensions. */
export interface GitHubClaims {
  readonly repository: string;
  /** `<owner>/<repo>/.github/workflows/<file>@<ref>`: the SAN and OID .9. */
  readonly job_workflow_ref: string;
  readonly ref: string;
  readonly sha: string;
  readonly run_id: string;
  readonly iss?: string;
}

export const githubClaims = (overrides: Partial<GitHubClaims> = {}): GitHubClaims => ({
  repository: 'ceerkle/dreichor-trading',
  job_workflow_ref: 'ceerkle/dreichor-trading/.github/workflows/build.yml@refs/heads/main',
  ref: 'refs/heads/main',
  sha: 'a'.repeat(40),
  run_id: '4242',
  iss: 'https://token.actions.githubusercontent.com',
  ...overrides,
});

const keyPair = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const b64 = (bytes: ArrayBufferView | Buffer): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
const b64url = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** The claims of the agent's own release.yml run from tag v1.2.3 of `repository` (supply-chain/release.ts). */
export const releaseClaims = (repository: string, overrides: Partial<GitHubClaims> = {}): GitHubClaims =>
  githubClaims({
    repository,
    job_workflow_ref: `${repository}/.github/workflows/release.yml@refs/tags/v1.2.3`,
    ref: 'refs/tags/v1.2.3',
    ...overrides,
  });

type CA = Awaited<ReturnType<typeof initializeCA>>;

/** What the next certificate gets differently from a real Fulcio's (a crafted case). */
interface Crafting {
  /** The legacy issuer extension (.1, plain bytes) in place of the token's `iss`. */
  legacyIssuer: string | null;
}

/** A CA that issues as `ca` does, with the crafted changes of the moment. */
const craftingCA = (ca: CA, crafting: Crafting): CA => ({
  rootCertificate: ca.rootCertificate,
  issueCertificate: (options) => {
    const legacyIssuer = crafting.legacyIssuer;
    if (legacyIssuer === null) return ca.issueCertificate(options);
    const extensions = (options.extensions ?? []).map((e) =>
      e.oid === '1.3.6.1.4.1.57264.1.1' ? { ...e, value: legacyIssuer } : e,
    );
    return ca.issueCertificate({ ...options, extensions });
  },
});

export interface AttestOptions {
  /** A certificate whose legacy issuer (.1) says this while .8 says the token's `iss`. */
  readonly legacyIssuer?: string;
  /** The other instance's witness: a Rekor entry for GitHub's CA, a signed timestamp for public-good's. */
  readonly witness?: 'rekor' | 'tsa';
  /** The DSSE payload type signed, in place of in-toto's. */
  readonly payloadType?: string;
}

export class SigstoreMock {
  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly roots: Record<Instance, object>,
    private readonly crafting: Crafting,
  ) {}

  static async start(): Promise<SigstoreMock> {
    // The instances run on the real clock; the trusted root says they were valid from a minute back.
    const clock = new Date(Date.now() - 60_000);
    const ctLog = await initializeCTLog(keyPair());
    const publicCA = await initializeCA(keyPair(), ctLog);
    const githubCA = await initializeCA(keyPair());
    const tsa = await initializeTSA(keyPair());
    const routes = new Map<string, HandlerFn>();
    const crafting: Crafting = { legacyIssuer: null };
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const route = routes.get(`${req.method} ${req.url}`);
        if (route === undefined) {
          res.writeHead(404).end();
          return;
        }
        void route(Buffer.concat(chunks).toString('utf8')).then(
          (r) => {
            res.writeHead(r.statusCode, { 'Content-Type': r.contentType ?? 'application/json' });
            res.end(typeof r.response === 'string' ? r.response : Buffer.from(r.response.buffer));
          },
          (error: unknown) => res.writeHead(500).end(String(error)),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const tlog = await initializeTLog(url, keyPair());

    const rekor = rekorHandler(tlog);
    routes.set(`POST ${rekor.path}`, (body) => rekor.fn(asRealRekorStoresIt(body)));
    // One Fulcio path, two CAs: the signer names which one in its URL's first segment.
    for (const [prefix, ca] of [
      ['/public-good', publicCA],
      ['/github', githubCA],
    ] as const) {
      const fulcio = fulcioHandler(craftingCA(ca, crafting), { subjectClaim: 'sub' });
      routes.set(`POST ${prefix}${fulcio.path}`, fulcio.fn);
    }
    const timestamp = tsaHandler(tsa);
    routes.set(`POST ${timestamp.path}`, timestamp.fn);

    const since = clock.toISOString();
    const caEntry = (root: ArrayBufferView) => ({
      subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
      uri: 'https://fulcio.sigstore.mock',
      certChain: { certificates: [{ rawBytes: b64(root) }] },
      validFor: { start: since },
    });
    const logEntry = (publicKey: Buffer, keyId: Buffer) => ({
      baseUrl: url,
      hashAlgorithm: 'SHA2_256',
      publicKey: { rawBytes: publicKey.toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: since } },
      logId: { keyId: keyId.toString('base64') },
    });
    const mediaType = 'application/vnd.dev.sigstore.trustedroot+json;version=0.1';
    const roots: Record<Instance, object> = {
      'public-good': {
        mediaType,
        tlogs: [logEntry(tlog.publicKey, createHash('sha256').update(tlog.publicKey).digest())],
        certificateAuthorities: [caEntry(publicCA.rootCertificate)],
        ctlogs: [logEntry(ctLog.publicKey, Buffer.from(ctLog.logID.buffer, ctLog.logID.byteOffset, ctLog.logID.byteLength))],
        timestampAuthorities: [],
      },
      github: {
        mediaType,
        tlogs: [],
        certificateAuthorities: [caEntry(githubCA.rootCertificate)],
        ctlogs: [],
        timestampAuthorities: [
          {
            subject: { organization: 'sigstore.mock', commonName: 'sigstore-tsa' },
            uri: `${url}/api/v1/timestamp`,
            certChain: { certificates: [{ rawBytes: b64(tsa.intCertificate) }, { rawBytes: b64(tsa.rootCertificate) }] },
            validFor: { start: since },
          },
        ],
      },
    };
    return new SigstoreMock(server, url, roots, crafting);
  }

  /** The trusted root of an instance, as `gh attestation trusted-root` writes one. */
  trustedRoot(instance: Instance): object {
    return this.roots[instance];
  }

  /** Both, as JSON lines: what `gh attestation trusted-root` writes for an organisation with both. */
  trustedRootLines(): string {
    return `${JSON.stringify(this.roots['public-good'])}\n${JSON.stringify(this.roots.github)}\n`;
  }

  /** A v0.3 bundle (JSON) of an in-toto statement (or of any bytes), signed as a GitHub workflow with `claims`. */
  async attest(
    statement: object | Buffer,
    claims: GitHubClaims,
    instance: Instance = 'public-good',
    options: AttestOptions = {},
  ): Promise<object> {
    const token = `${b64url({ alg: 'none' })}.${b64url({ sub: `https://github.com/${claims.job_workflow_ref}`, ...claims, run_attempt: '1', event_name: 'push' })}.x`;
    const signer = new FulcioSigner({
      fulcioBaseURL: `${this.url}/${instance}`,
      identityProvider: { getToken: () => Promise.resolve(token) },
      retry: 0,
      timeout: 10_000,
    });
    const witnesses: Witness[] =
      (options.witness ?? (instance === 'public-good' ? 'rekor' : 'tsa')) === 'rekor'
        ? [new RekorWitness({ rekorBaseURL: this.url, entryType: 'dsse', retry: 0, timeout: 10_000 })]
        : [new TSAWitness({ tsaBaseURL: this.url, retry: 0, timeout: 10_000 })];
    const builder = new DSSEBundleBuilder({ signer, witnesses, certificateChain: false });
    this.crafting.legacyIssuer = options.legacyIssuer ?? null;
    try {
      const data = Buffer.isBuffer(statement) ? statement : Buffer.from(JSON.stringify(statement));
      const bundle = await builder.create({ data, type: options.payloadType ?? 'application/vnd.in-toto+json' });
      return bundleToJSON(bundle) as object;
    } finally {
      this.crafting.legacyIssuer = null;
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/** A SLSA provenance statement for `digest`, as actions/attest-build-provenance makes one. */
export const provenanceStatement = (digest: string, predicateType = 'https://slsa.dev/provenance/v1'): object => ({
  _type: 'https://in-toto.io/Statement/v1',
  subject: [{ name: 'ghcr.io/ceerkle/dreichor-trading/runtime', digest: { sha256: digest.replace('sha256:', '') } }],
  predicateType,
  predicate: { buildDefinition: { buildType: 'https://actions.github.io/buildtypes/workflow/v1' }, runDetails: {} },
});

/** The mock Rekor logs a proposal as it arrives; real Rekor logs a dsse entry's hashes and signatures. */
function asRealRekorStoresIt(body: string): string {
  const proposal = JSON.parse(body) as {
    kind: string;
    apiVersion: string;
    spec: { proposedContent?: { envelope: string; verifiers: string[] } };
  };
  const proposed = proposal.spec.proposedContent;
  if (proposal.kind !== 'dsse' || proposed === undefined) return body;
  const envelope = JSON.parse(proposed.envelope) as { payload: string; signatures: { sig: string }[] };
  const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
  return JSON.stringify({
    apiVersion: proposal.apiVersion,
    kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: sha(proposed.envelope) },
      payloadHash: { algorithm: 'sha256', value: sha(Buffer.from(envelope.payload, 'base64')) },
      signatures: envelope.signatures.map((s, i) => ({
        signature: s.sig,
        verifier: proposed.verifiers[i] ?? proposed.verifiers[0],
      })),
    },
  });
}
