// Bundling stub for thread-stream, which pino loads at start-up for its transports (logging from a
// worker thread). The agent logs to standard output with pino's own destination and configures no
// transport, so the worker machinery is not carried; a transport configured by mistake fails loudly.
'use strict';
module.exports = class ThreadStream {
  constructor() {
    throw new Error('pino transports are not supported by the deploy agent: it logs to standard output');
  }
};
