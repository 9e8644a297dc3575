import { verify as verifySignature } from 'node:crypto';
import type { CosignKeyPolicy } from '../config/verification.js';
import * as z from '../zod.js';
import { bundleVersionProblem, isBundleType } from './bundle-media.js';
import { firstVerified, type Judgement } from './candidates.js';
import type { Provenance } from './provenance.js';
import { COSIGN_SIGNATURE_ANNOTATION, LIMITS, MEDIA, manifestSchema, parseJson } from './referrers.js';
import type { RegistryClient } from './registry.js';
import { coveredDigest, dsseEnvelopeSchema, IN_TOTO_PAYLOAD_TYPE, pae, parseStatement } from './statement.js';

/**
 * IMAGE_VERIFICATION=cosign-key: a signature made with the configured key over the deployed digest,
 * in either of cosign's forms: legacy (`cosign sign --key`: the `sha256-<hex>.sig` tag, a
 * simple-signing payload layer whose `docker-manifest-digest` is the digest, its signature in the
 * layer's annotation) or cosign 3's bundle (a DSSE in-toto statement naming the digest, stored as a
 * referrer). Plain node:crypto: this mode loads no sigstore library.
 *
 * Security: the key is the trust anchor and the only one: no transparency log is consulted (the
 * agent works offline), so a signature made with a stolen key verifies until the key is replaced.
 * The signed payload, never the registry's listing, says which digest was signed.
 */
const simpleSigningSchema = z.looseObject({
  critical: z.looseObject({
    image: z.looseObject({ 'docker-manifest-digest': z.string().check(z.maxLength(128)) }),
    type: z.literal('cosign container image signature'),
  }),
});

const bundleSchema = z.looseObject({ mediaType: z.string().check(z.maxLength(256)), dsseEnvelope: dsseEnvelopeSchema });

export class CosignKeyVerifier {
  constructor(private readonly policy: CosignKeyPolicy) {}

  async verify(client: RegistryClient, digests: readonly string[]): Promise<Provenance> {
    const legacy: Judgement[] = [];
    for (const digest of digests) legacy.push(...(await this.legacySignatures(client, digest, digests)));
    return firstVerified(
      client,
      digests,
      { wanted: isBundleType, layer: isBundleType, noun: 'signature' },
      (blob) => this.judgeBundle(blob, digests),
      legacy,
    );
  }

  /** The `.sig` tag's layers, each judged; none when the tag does not exist. */
  private async legacySignatures(client: RegistryClient, digest: string, digests: readonly string[]): Promise<Judgement[]> {
    const fetched = await client.manifest(
      `${digest.replace(':', '-')}.sig`,
      [MEDIA.ociManifest, MEDIA.dockerManifest],
      LIMITS.manifestBytes,
    );
    if (fetched === null) return [];
    const manifest = parseJson(fetched.bytes, manifestSchema);
    if (manifest === null) return [{ rank: 0, problem: `the ${digest.replace(':', '-')}.sig tag is not a signature manifest` }];
    const judgements: Judgement[] = [];
    for (const layer of manifest.layers.filter((l) => l.mediaType === MEDIA.simpleSigning).slice(0, LIMITS.candidates)) {
      const signature = layer.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
      if (signature === undefined || layer.size > LIMITS.signaturePayloadBytes) {
        judgements.push({ rank: 0, problem: 'a .sig layer without a signature annotation, or too large' });
        continue;
      }
      const payload = await client.blob(layer.digest, LIMITS.signaturePayloadBytes);
      const judged = this.judgeSimpleSigning(payload, Buffer.from(signature, 'base64'), digests);
      judgements.push(judged);
      if ('provenance' in judged) break;
    }
    return judgements;
  }

  judgeSimpleSigning(payload: Buffer, signature: Buffer, digests: readonly string[]): Judgement {
    if (!this.signedByKey(payload, signature))
      return { rank: 1, problem: 'its signature is not made with COSIGN_PUBLIC_KEY_FILE' };
    const parsed = parseJson(payload, simpleSigningSchema);
    if (parsed === null) return { rank: 2, problem: 'its payload is not a cosign simple-signing payload' };
    const signed = parsed.critical.image['docker-manifest-digest'];
    if (!digests.includes(signed)) return { rank: 3, problem: 'it signs another digest (a signature of another image)' };
    return { provenance: this.provenance(signed, null) };
  }

  judgeBundle(blob: Buffer, digests: readonly string[]): Judgement {
    const bundle = parseJson(blob, bundleSchema);
    if (bundle === null || bundle.dsseEnvelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
      return { rank: 0, problem: 'not a Sigstore bundle holding an in-toto statement (DSSE)' };
    }
    const version = bundleVersionProblem(bundle.mediaType);
    if (version !== null) return { rank: 0, problem: `not an accepted Sigstore bundle: ${version}` };
    const envelope = bundle.dsseEnvelope;
    const payload = Buffer.from(envelope.payload, 'base64');
    const signed = pae(envelope.payloadType, payload);
    if (!envelope.signatures.some((s) => this.signedByKey(signed, Buffer.from(s.sig, 'base64')))) {
      return { rank: 1, problem: 'its signature is not made with COSIGN_PUBLIC_KEY_FILE' };
    }
    const statement = parseStatement(payload);
    if (statement === null) return { rank: 2, problem: 'its payload is not an in-toto statement' };
    const covered = coveredDigest(statement, digests);
    if (covered === null) return { rank: 3, problem: 'its subject is another digest (a signature of another image)' };
    return { provenance: this.provenance(covered, statement.predicateType) };
  }

  private signedByKey(data: Buffer, signature: Buffer): boolean {
    if (signature.length === 0 || signature.length > 1024) return false;
    const key = this.policy.publicKey;
    try {
      // Ed25519 signs the message itself; ECDSA and RSA (PKCS #1 v1.5) sign its SHA-256, as cosign does.
      return verifySignature(key.asymmetricKeyType === 'ed25519' ? null : 'sha256', data, key, signature);
    } catch {
      return false;
    }
  }

  private provenance(digest: string, predicateType: string | null): Provenance {
    return {
      verified_by: 'cosign-key',
      subject_digest: digest,
      repository: null,
      commit: null,
      ref: null,
      workflow: null,
      run_url: null,
      predicate_type: predicateType,
      key_fingerprint: this.policy.fingerprint,
    };
  }
}
