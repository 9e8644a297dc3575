import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import type { AttestationPolicy } from '../config/verification.js';
import { bundleVersionProblem, isBundleType } from './bundle-media.js';
import { firstVerified, type Judgement } from './candidates.js';
import { githubIdentity, identityProblem, signerIdentitySchema } from './certificate-identity.js';
import type { RegistryClient } from './registry.js';
import { coveredDigest, IN_TOTO_PAYLOAD_TYPE, parseStatement } from './statement.js';
import { readSigningTimeStrictly } from './timestamp-time.js';

/**
 * IMAGE_VERIFICATION=github-attestation: a Sigstore bundle, as actions/attest-build-provenance
 * stores it beside the image, verified offline with sigstore-js against the configured trusted
 * root(s). Loaded only when this mode is configured, in the check's own child process (verifier.ts,
 * verify-process.ts), never in the agent's heap.
 *
 * Security, the threats each check answers: a bundle signed by anyone (certificate chain to the
 * root's Fulcio, signature over the DSSE envelope); a back-dated or unlogged signature (the
 * transparency log and SCT, or the signed timestamp, as the root's instance has them); another
 * image's attestation replayed (the statement's subject must be this digest); another kind of
 * statement (the predicate type); another workflow, repository or branch of anyone's GitHub
 * (issuer, SAN, OIDs .12 and .14 from the certificate, read as DER).
 */

interface RootVerifier {
  readonly verifier: Verifier;
}

export class AttestationVerifier {
  private readonly roots: RootVerifier[];

  constructor(private readonly policy: AttestationPolicy) {
    this.roots = policy.trustedRoots.map((json) => {
      const root = TrustedRoot.fromJSON(json);
      // What the root's instance provides is what is required: public-good Sigstore has a
      // transparency log and CT log (an inclusion proof and an SCT); GitHub's own instance has
      // neither and a timestamp authority instead. One timestamp (log entry or TSA) always.
      const options = {
        tlogThreshold: root.tlogs.length > 0 ? 1 : 0,
        ctlogThreshold: root.ctlogs.length > 0 ? 1 : 0,
        timestampThreshold: 1,
      };
      return { verifier: new Verifier(toTrustMaterial(root), options) };
    });
  }

  verify(client: RegistryClient, digests: readonly string[]): ReturnType<typeof firstVerified> {
    return firstVerified(client, digests, { wanted: isBundleType, layer: isBundleType, noun: 'attestation' }, (blob) =>
      this.judge(blob, digests),
    );
  }

  /** One candidate bundle against every check, in order; the rank says how far it got. */
  judge(blob: Buffer, digests: readonly string[]): Judgement {
    let bundle: ReturnType<typeof bundleFromJSON>;
    try {
      bundle = bundleFromJSON(JSON.parse(blob.toString('utf8')));
    } catch {
      return { rank: 0, problem: 'not a valid Sigstore bundle' };
    }
    // Security: v0.2 and v0.3 only, by the bundle's own mediaType (bundleFromJSON then required an
    // inclusion proof of every log entry; a v0.1 bundle has only the log's promise).
    const version = bundleVersionProblem(bundle.mediaType);
    if (version !== null) return { rank: 0, problem: `not an accepted Sigstore bundle: ${version}` };
    if (bundle.content.$case !== 'dsseEnvelope' || bundle.content.dsseEnvelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
      return { rank: 0, problem: 'the bundle holds no in-toto statement (DSSE)' };
    }
    const envelope = bundle.content.dsseEnvelope;

    let identity: unknown;
    const failures: string[] = [];
    try {
      const entity = toSignedEntity(bundle);
      for (const t of entity.timestamps) if (t.$case === 'timestamp-authority') readSigningTimeStrictly(t.timestamp);
      for (const { verifier } of this.roots) {
        try {
          identity = verifier.verify(entity).identity ?? {};
          break;
        } catch (error) {
          failures.push(describeFailure(error));
        }
      }
    } catch (error) {
      failures.push(describeFailure(error));
    }
    if (identity === undefined) {
      return { rank: 1, problem: `its signature does not verify against SIGSTORE_TRUSTED_ROOT_FILE (${failures.join('; ')})` };
    }

    const statement = parseStatement(Buffer.from(envelope.payload));
    if (statement === null) return { rank: 2, problem: 'its payload is not an in-toto statement' };
    if (statement.predicateType !== this.policy.predicateType) {
      return {
        rank: 2,
        problem: `predicate type ${JSON.stringify(statement.predicateType.slice(0, 200))}, not ATTESTATION_PREDICATE_TYPE`,
      };
    }
    const covered = coveredDigest(statement, digests);
    if (covered === null) return { rank: 3, problem: 'its subject is another digest (an attestation of another image)' };

    const parsed = signerIdentitySchema.safeParse(identity);
    if (!parsed.success) return { rank: 4, problem: 'its certificate carries no readable identity' };
    const id = githubIdentity(parsed.data);
    const problem = identityProblem(id, this.policy);
    if (problem !== null) return { rank: 4, problem };
    return {
      provenance: {
        verified_by: 'github-attestation',
        subject_digest: covered,
        repository: id.repository,
        commit: id.commit,
        ref: id.ref,
        workflow: id.san,
        run_url: id.runUrl,
        predicate_type: statement.predicateType,
        key_fingerprint: null,
      },
    };
  }
}

/** sigstore-js's verdict, short: its code and message, never the certificate. */
function describeFailure(error: unknown): string {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : null;
  const message = error instanceof Error ? error.message.replace(/\s+/g, ' ').slice(0, 160) : 'unknown error';
  return code === null ? message : `${code}: ${message}`;
}
