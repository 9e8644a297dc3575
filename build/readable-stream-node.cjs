// Bundling stub for readable-stream, the userland copy of Node.js streams (13 modules) that
// docker-modem's http_duplex.js loads for Duplex. Node.js's own node:stream has the same Duplex, so
// the copy is not carried.
'use strict';
module.exports = require('node:stream');
