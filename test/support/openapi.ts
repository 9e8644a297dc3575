import { readFileSync } from 'node:fs';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';

/**
 * Checks an answer of the agent against docs/openapi.json: its body against the schema the document
 * gives for that path, method and status (or `default`), and the headers it declares required. The
 * integration tier's HTTP helper (harness.ts) runs it on every answer it receives, so the published
 * document cannot drift from what the agent answers.
 */

interface Operation {
  readonly responses: Readonly<
    Record<string, { readonly $ref?: string; readonly content?: unknown; readonly headers?: unknown }>
  >;
}
interface Document {
  readonly paths: Readonly<Record<string, Readonly<Record<string, Operation>>>>;
  readonly components: {
    readonly schemas: Readonly<Record<string, unknown>>;
    readonly responses: Readonly<Record<string, unknown>>;
    readonly headers: Readonly<Record<string, { readonly required?: boolean; readonly schema: unknown }>>;
  };
}

type Response = { readonly content?: unknown; readonly headers?: Readonly<Record<string, { readonly $ref: string }>> };

const SCHEMAS = '#/components/schemas/';

export class OpenApiChecker {
  private readonly ajv = new Ajv2020({ allErrors: true, strict: true });
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(private readonly doc: Document) {
    // The components as one schema of definitions, the document's references pointed at them.
    const defs: unknown = JSON.parse(JSON.stringify(doc.components.schemas).replaceAll(`"${SCHEMAS}`, '"#/$defs/'));
    this.ajv.addSchema({ $id: 'openapi', $defs: defs });
  }

  static fromFile(file: string | URL = new URL('../../docs/openapi.json', import.meta.url)): OpenApiChecker {
    return new OpenApiChecker(JSON.parse(readFileSync(file, 'utf8')) as Document);
  }

  /** The problems of one answer; empty when it is what the document says. */
  problems(method: string, path: string, status: number, headers: Headers, text: string): string[] {
    const route = path.split('?')[0] ?? path;
    const operation = this.doc.paths[route]?.[method.toLowerCase()];
    // An unknown path or another method: the document's generic error answer.
    const response = this.resolve(
      operation?.responses[String(status)] ?? operation?.responses['default'] ?? { $ref: '#/components/responses/Error' },
    );
    const where = `${method} ${route} ${status}`;
    const problems: string[] = [];
    for (const [name, ref] of Object.entries(response.headers ?? {})) {
      const header = this.doc.components.headers[ref.$ref.replace('#/components/headers/', '')];
      if (header?.required === true && !headers.get(name)) problems.push(`${where}: header ${name} missing`);
    }
    if (operation === undefined && status === 405 && !headers.get('Allow')) problems.push(`${where}: header Allow missing`);
    const schema = this.schemaOf(response);
    if (schema === null) return problems;
    if (!(headers.get('content-type') ?? '').startsWith('application/json'))
      problems.push(`${where}: content type ${headers.get('content-type')}, not application/json`);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return [...problems, `${where}: body is not JSON: ${text.slice(0, 200)}`];
    }
    const validate = this.validator(schema);
    if (!validate(body))
      problems.push(`${where}: body does not match ${schema}: ${this.ajv.errorsText(validate.errors)}: ${text.slice(0, 500)}`);
    return problems;
  }

  private resolve(r: { readonly $ref?: string }): Response {
    if (r.$ref === undefined) return r as Response;
    const name = r.$ref.replace('#/components/responses/', '');
    const found = this.doc.components.responses[name];
    if (found === undefined) throw new Error(`openapi.json: no response ${r.$ref}`);
    return found as Response;
  }

  private schemaOf(response: Response): string | null {
    const content = response.content as Record<string, { schema?: { $ref?: string } }> | undefined;
    const ref = content?.['application/json']?.schema?.$ref;
    return ref === undefined ? null : ref.replace(SCHEMAS, '');
  }

  private validator(name: string): ValidateFunction {
    let v = this.validators.get(name);
    if (v === undefined) {
      v = this.ajv.getSchema(`openapi#/$defs/${name}`);
      if (v === undefined) throw new Error(`openapi.json: no schema ${name}`);
      this.validators.set(name, v);
    }
    return v;
  }
}
