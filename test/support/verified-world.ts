/**
 * The fault matrix's verified deploys (test/unit/deploy/fault-matrix.test.ts): a scripted registry of
 * the case's own holding tag v2, as an image index or a single manifest, whose manifest for the
 * engine's platform is signed by a key in cosign's legacy form; IMAGE_VERIFICATION=cosign-key with
 * the verifier in this thread (production runs it in a child process: verify-process.ts; its reads
 * of the registry are the same). Every read of that registry is a step of the matrix.
 */
import { sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { Config } from '../../src/config/config.js';
import { createImageVerifier, type ImageVerifier } from '../../src/supply-chain/verifier.js';
import { cosignKey, simpleSigningPayload } from './cosign.js';
import type { FakeEngine } from './fake-engine.js';
import { OCI_MANIFEST, ScriptedRegistry } from './scripted-registry.js';

export interface VerifiedSigner {
  readonly keyFile: string;
  /** The signature of `payload`: the same bytes each time, so that every case reads the same names. */
  signatureOf(payload: Buffer): string;
}

/** A key, its public half written to `keyFile` (COSIGN_PUBLIC_KEY_FILE). */
export function verifiedSigner(keyFile: string): VerifiedSigner {
  const key = cosignKey();
  writeFileSync(keyFile, key.publicKeyPem);
  const made = new Map<string, string>();
  return {
    keyFile,
    signatureOf: (payload) => {
      const text = payload.toString('utf8');
      const signature = made.get(text) ?? sign('sha256', payload, key.privateKey).toString('base64');
      made.set(text, signature);
      return signature;
    },
  };
}

export interface VerifiedWorld {
  readonly registry: ScriptedRegistry;
  readonly verifier: ImageVerifier | null;
  readonly config: Config;
}

/** A registry holding tag v2, signed, an engine that resolves v2 to it, and a configuration that verifies it. */
export async function verifiedWorld(
  shape: 'index' | 'single',
  engine: FakeEngine,
  signer: VerifiedSigner,
  configWith: (extra: Readonly<Record<string, string>>) => Config,
): Promise<VerifiedWorld> {
  const registry = await ScriptedRegistry.start();
  const run = registry.image('v2', ...(shape === 'single' ? ['v2'] : []));
  const tagDigest =
    shape === 'index' ? registry.index([{ ...run, platform: { os: 'linux', architecture: 'amd64' } }], 'v2').digest : run.digest;
  // The same bytes in every case (not the case's own registry port): the reads' names are the steps'.
  const payload = simpleSigningPayload('registry.invalid/dreichor/runtime', run.digest);
  const empty = registry.blob(Buffer.from('{}'));
  registry.manifest(
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { ...empty, mediaType: 'application/vnd.oci.empty.v1+json' },
      layers: [
        {
          ...registry.blob(payload),
          mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
          annotations: { 'dev.cosignproject.cosign/signature': signer.signatureOf(payload) },
        },
      ],
    },
    OCI_MANIFEST,
    `${run.digest.replace(':', '-')}.sig`,
  );
  engine.tagDigest = tagDigest;
  engine.tagIsIndex = shape === 'index';
  engine.imageIds.set(run.digest, run.config);
  const config = configWith({
    IMAGE_REPOSITORY: registry.repository,
    IMAGE_VERIFICATION: 'cosign-key',
    COSIGN_PUBLIC_KEY_FILE: signer.keyFile,
  });
  return { registry, verifier: createImageVerifier(config.imageVerification), config };
}
