/**
 * Cosign signatures made with node:crypto, in both of cosign's forms, and pushed to a registry as
 * cosign pushes them: the legacy `sha256-<hex>.sig` tag (a simple-signing payload layer, the
 * signature in its annotation) and cosign 3's bundle (a DSSE statement naming the digest), stored as
 * a referrer with @sigstore/oci, the same call `actions/attest` makes.
 */
import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { attachArtifactToImage, type Credentials } from '@sigstore/oci';
import { chooseEntry, type Platform } from '../../src/supply-chain/platform.js';
import { indexSchema } from '../../src/supply-chain/referrers.js';

export interface CosignKey {
  readonly privateKey: KeyObject;
  readonly publicKeyPem: string;
}

export function cosignKey(): CosignKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString() };
}

/** cosign's simple-signing payload for `digest`. */
export const simpleSigningPayload = (reference: string, digest: string): Buffer =>
  Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': reference },
        image: { 'docker-manifest-digest': digest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  );

const sha256 = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const EMPTY_CONFIG = Buffer.from('{}');

/** The manifest media types an engine pushes: Docker's and OCI's, single and index. */
export const MEDIA = {
  docker: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  oci: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
} as const;

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}
/** This machine's architecture as registries name it. */
export const ARCHITECTURE = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;

/** A registry over plain HTTP on 127.0.0.1: pushes a blob and a manifest. */
export class RegistryWriter {
  constructor(
    readonly host: string,
    readonly path: string,
    private readonly authorization: string | null = null,
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.authorization === null ? extra : { Authorization: this.authorization, ...extra };
  }

  async blob(data: Buffer): Promise<string> {
    const digest = sha256(data);
    const start = await fetch(`http://${this.host}/v2/${this.path}/blobs/uploads/`, {
      method: 'POST',
      headers: this.headers(),
      signal: AbortSignal.timeout(10_000),
    });
    if (start.status !== 202) throw new Error(`blob upload: ${start.status}`);
    const location = new URL(start.headers.get('location') ?? '', `http://${this.host}`);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, {
      method: 'PUT',
      body: data,
      headers: this.headers({ 'Content-Type': 'application/octet-stream' }),
      signal: AbortSignal.timeout(10_000),
    });
    if (put.status !== 201) throw new Error(`blob put: ${put.status}`);
    return digest;
  }

  async manifest(reference: string, manifest: object, mediaType = 'application/vnd.oci.image.manifest.v1+json'): Promise<string> {
    const body = Buffer.from(JSON.stringify(manifest));
    const put = await fetch(`http://${this.host}/v2/${this.path}/manifests/${reference}`, {
      method: 'PUT',
      body,
      headers: this.headers({ 'Content-Type': mediaType }),
      signal: AbortSignal.timeout(10_000),
    });
    if (put.status !== 201) throw new Error(`manifest put ${reference}: ${put.status} ${await put.text()}`);
    return sha256(body);
  }

  /**
   * The image manifest an engine of `platform` runs from what was pushed as `digest`: that manifest
   * itself (the classic image store pushes one), or, when the push was an index (the containerd store
   * of Docker 28 pushes an OCI index), the entry the agent itself chooses (src/supply-chain/platform.ts),
   * so that a test and the agent cannot disagree on which manifest runs.
   */
  async platformManifest(digest: string, platform: Platform): Promise<Descriptor> {
    const res = await fetch(`http://${this.host}/v2/${this.path}/manifests/${digest}`, {
      headers: this.headers({ Accept: [MEDIA.docker, MEDIA.oci, MEDIA.dockerList, MEDIA.ociIndex].join(', ') }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = Buffer.from(await res.arrayBuffer());
    const mediaType = res.headers.get('content-type') ?? MEDIA.docker;
    if (mediaType !== MEDIA.dockerList && mediaType !== MEDIA.ociIndex) return { digest, size: body.byteLength, mediaType };
    const list = indexSchema.parse(JSON.parse(body.toString('utf8')));
    const entry = chooseEntry(digest, list.manifests, platform);
    return { digest: entry.digest, size: entry.size, mediaType: entry.mediaType };
  }

  /** An OCI artifact manifest holding `layer` (config: the empty descriptor), optionally naming a subject. */
  async artifact(
    layer: Buffer,
    layerMediaType: string,
    annotations: Record<string, string> = {},
    subject?: object,
  ): Promise<object> {
    const layerDigest = await this.blob(layer);
    const configDigest = await this.blob(EMPTY_CONFIG);
    return {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: configDigest, size: EMPTY_CONFIG.length },
      layers: [{ mediaType: layerMediaType, digest: layerDigest, size: layer.length, annotations }],
      ...(subject === undefined ? {} : { subject }),
    };
  }
}

/** cosign's legacy form: the `.sig` tag of `digest`, one simple-signing layer signed with `key`. */
export async function pushLegacySignature(
  registry: RegistryWriter,
  key: KeyObject,
  digest: string,
  signedDigest = digest,
): Promise<void> {
  const payload = simpleSigningPayload(`${registry.host}/${registry.path}`, signedDigest);
  const signature = sign('sha256', payload, key).toString('base64');
  const manifest = await registry.artifact(payload, 'application/vnd.dev.cosign.simplesigning.v1+json', {
    'dev.cosignproject.cosign/signature': signature,
  });
  await registry.manifest(`${digest.replace(':', '-')}.sig`, manifest);
}

/** cosign 3's bundle: a DSSE in-toto statement naming `signedDigest`, signed with `key` (JSON). */
export function cosignBundle(
  key: KeyObject,
  signedDigest: string,
  predicateType = 'https://sigstore.dev/cosign/sign/v1',
  mediaType = 'application/vnd.dev.sigstore.bundle.v0.3+json',
): object {
  const payload = Buffer.from(
    JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'runtime', digest: { sha256: signedDigest.replace('sha256:', '') } }],
      predicateType,
      predicate: {},
    }),
  );
  const payloadType = 'application/vnd.in-toto+json';
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${payloadType.length} ${payloadType} ${payload.length} `), payload]);
  return {
    mediaType,
    verificationMaterial: { publicKey: { hint: 'cosign-key' }, tlogEntries: [] },
    dsseEnvelope: {
      payload: payload.toString('base64'),
      payloadType,
      signatures: [{ sig: sign('sha256', pae, key).toString('base64'), keyid: '' }],
    },
  };
}

/** Stores a bundle as a referrer of `digest`, as actions/attest does (the sha256- tag where there is no referrers API). */
export async function attachBundle(
  host: string,
  path: string,
  digest: string,
  bundle: object,
  credentials: Credentials | null = null,
  mediaType = 'application/vnd.dev.sigstore.bundle.v0.3+json',
): Promise<void> {
  await attachArtifactToImage({
    imageName: `${host}/${path}`,
    imageDigest: digest,
    artifact: Buffer.from(JSON.stringify(bundle)),
    mediaType,
    // An open registry: no sign-in (@sigstore/oci expects a 401 challenge when it has credentials).
    credentials: credentials ?? (undefined as unknown as Credentials),
    annotations: { 'dev.sigstore.bundle.predicateType': 'https://slsa.dev/provenance/v1' },
  });
}
