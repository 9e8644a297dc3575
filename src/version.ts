/**
 * The agent's version and the commit it was built from, fixed in the bundle by scripts/build.mjs
 * (esbuild `define`). Run from source (tests), they read as the package version and "source".
 */
declare const __AGENT_VERSION__: string | undefined;
declare const __AGENT_COMMIT__: string | undefined;

export const VERSION: string = typeof __AGENT_VERSION__ === 'string' ? __AGENT_VERSION__ : '0.0.0-source';
export const COMMIT: string = typeof __AGENT_COMMIT__ === 'string' ? __AGENT_COMMIT__ : 'source';
