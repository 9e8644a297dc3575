import { request as httpRequest, type IncomingMessage } from 'node:http';

/**
 * One GET over node:http / node:https, answering the few parts of a fetch Response the registry
 * client reads (status, headers, a body to read or drop).
 *
 * Memory: not the global fetch. Its first use loads undici (its JavaScript and the llhttp parser),
 * which the plain agent never loads and which stays for the process's life: measured on Node.js 24,
 * +16 MiB of RSS for one `fetch` or `new Response()`, against +1.7 MiB for seven node:http GETs.
 * That was most of the verifying agent's extra memory after its deploys (92.7 vs 73.6 MiB).
 * node:https is loaded at the first https GET, not at start: with its TLS layer it is about 5 MiB that
 * an idle agent does not need.
 */
export interface Answer {
  readonly status: number;
  header(name: string): string | null;
  /** The body's chunks; ends with an error if the signal fires while it is read. */
  readonly body: AsyncIterable<Buffer>;
  /** Drops the rest of the body and the connection. */
  discard(): void;
}

/** No redirect followed (the caller checks each hop); `signal` covers the answer's body too. */
export async function httpGet(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<Answer> {
  const send = url.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
  return new Promise<Answer>((resolve, reject) => {
    // The User-Agent fetch sent, so that a registry's logs (and their tests) see the agent as before.
    const req = send(url, { method: 'GET', headers: { 'User-Agent': 'node', ...headers }, signal }, (res: IncomingMessage) => {
      resolve({
        status: res.statusCode ?? 0,
        header: (name) => {
          const value = res.headers[name.toLowerCase()];
          return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
        },
        body: chunks(res, signal),
        discard: () => {
          res.destroy();
        },
      });
    });
    // An abort ends the request with a generic AbortError: the signal's own reason (its timeout) wins.
    req.once('error', (error) => reject(signal.aborted ? signal.reason : error));
    req.end();
  });
}

async function* chunks(res: IncomingMessage, signal: AbortSignal): AsyncIterable<Buffer> {
  try {
    for await (const chunk of res) yield chunk as Buffer;
  } catch (error) {
    throw signal.aborted ? signal.reason : error;
  }
}
