// Bundling stub for dockerode's lib/session.js. That module loads gRPC and protobufjs at start-up
// (about 1 MiB of code and 30 MB of memory) to serve BuildKit sessions for image builds; the agent
// never builds an image, so the bundle carries a stub that refuses instead.
'use strict';
module.exports = function withSession(_docker, _auth, handler) {
  handler(new Error('image builds are not supported by the deploy agent'), null, () => undefined);
};
