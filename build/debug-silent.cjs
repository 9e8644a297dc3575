// Bundling stub for debug, the DEBUG=... tracer that Express, its router, body-parser and docker-modem
// load (with node:tty for its colours). The agent's log is pino's JSON on standard output, and DEBUG is
// not set under systemd; a tracer that never prints is what production runs already, without the
// module and node:tty held in memory. To trace Express's internals, run the sources (npm run start
// after a build without this alias), not the installed bundle.
'use strict';
function createDebug() {
  const trace = () => {};
  trace.enabled = false;
  trace.extend = createDebug;
  return trace;
}
createDebug.enable = () => {};
createDebug.disable = () => '';
createDebug.enabled = () => false;
module.exports = createDebug;
