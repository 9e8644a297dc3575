// Bundling stub for what dockerode loads only to build images or copy archives: its BuildKit client
// (lib/buildkit.js: gRPC and protobufjs) and tar-fs (build contexts). The agent never builds an image
// nor copies files into a container, so the bundle carries a stub that refuses instead.
'use strict';
const refuse = () => {
  throw new Error('image builds and archives are not supported by the deploy agent');
};
module.exports = new Proxy(refuse, { get: () => refuse });
