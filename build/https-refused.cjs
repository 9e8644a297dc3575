// Bundling stub for docker-modem's `require('https')` (lib/http.js). The agent reaches the engine by a
// unix socket only (config.ts refuses any other DOCKER_HOST), so the engine client never speaks TLS,
// and loading node:https with its TLS layer at start-up cost about 5 MiB of idle memory.
'use strict';
const refuse = () => {
  throw new Error('HTTPS transport to the Docker engine is not supported by the deploy agent');
};
module.exports = { request: refuse, get: refuse };
