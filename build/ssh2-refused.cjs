// Bundling stub. docker-modem loads ssh2 at start-up for DOCKER_HOST=ssh://, which the agent's
// configuration refuses; ssh2's native addons cannot live in a single-file bundle. Failing loudly
// here keeps a future misuse from silently opening an SSH path to the engine.
'use strict';
class Client {
  constructor() {
    throw new Error('SSH transport to the Docker engine is not supported by the deploy agent');
  }
}
module.exports = { Client };
