import { AgentError } from '../errors.js';

/**
 * Every request must say `Content-Type: application/json`, with no charset or UTF-8. The body parser
 * would decode UTF-16 and others quietly; the contract is UTF-8 only, so any other charset is refused
 * before the body is read. `utf8` is refused too: it is not the charset's registered name, and the body
 * parser refuses it (only `utf-…` passes it), so accepting it here answered a deploy with the body
 * parser's 415 while the same header on a status was a 200. Returns the refusal, or null when the
 * header is right.
 */
export function contentTypeProblem(header: string | undefined): AgentError | null {
  const [media, ...params] = (header ?? '').split(';');
  if (media?.trim().toLowerCase() !== 'application/json') return new AgentError(415, 'Content-Type must be application/json');
  for (const param of params) {
    const [name, value = ''] = param.split('=');
    if (name?.trim().toLowerCase() !== 'charset') continue;
    const charset = value
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .toLowerCase();
    if (charset !== 'utf-8') {
      return new AgentError(415, 'request body must be UTF-8 (Content-Type: application/json; charset=utf-8, or no charset)');
    }
  }
  return null;
}
