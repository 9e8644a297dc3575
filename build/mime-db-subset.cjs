// Bundling stub for mime-db, the 150 KB table of every media type that mime-types (Express's
// res.type/res.json, accepts, type-is) loads and indexes at start-up, about 2,000 objects held for
// the agent's life. The agent answers JSON only (res.json, and Express's plain-text/HTML fall-backs);
// these entries are copied from mime-db as they are, so the answers carry the same headers.
'use strict';
module.exports = {
  'application/json': { source: 'iana', charset: 'UTF-8', compressible: true, extensions: ['json', 'map'] },
  'application/octet-stream': { source: 'iana', compressible: true, extensions: ['bin'] },
  'text/html': { source: 'iana', compressible: true, extensions: ['html', 'htm', 'shtml'] },
  'text/plain': { source: 'iana', compressible: true, extensions: ['txt', 'text', 'conf', 'def', 'list', 'log', 'in', 'ini'] },
};
