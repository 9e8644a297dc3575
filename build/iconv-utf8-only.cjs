// Bundling stub for iconv-lite, which body-parser and raw-body load to decode request bodies. The
// agent accepts UTF-8 bodies only (src/content-type.ts refuses any other charset before the body is
// read), so 500 KB of encoding tables would never be used. UTF-8 is decoded as iconv-lite does it,
// leading byte-order mark removed; any other encoding is "not recognized", which body-parser and
// raw-body answer with 415.
'use strict';
const { StringDecoder } = require('node:string_decoder');

const known = (encoding) => typeof encoding === 'string' && /^utf-?8$/i.test(encoding);
const refuse = (encoding) => {
  throw new Error(`Encoding not recognized: '${encoding}' (searched as: '${String(encoding).toLowerCase()}')`);
};
const stripBom = (text) => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

module.exports = {
  encodingExists: known,
  decode(buffer, encoding) {
    if (!known(encoding)) refuse(encoding);
    return stripBom(Buffer.isBuffer(buffer) ? buffer.toString('utf8') : String(buffer));
  },
  getDecoder(encoding) {
    if (!known(encoding)) refuse(encoding);
    const decoder = new StringDecoder('utf8');
    let first = true;
    return {
      write(chunk) {
        const text = decoder.write(chunk);
        if (first && text !== '') {
          first = false;
          return stripBom(text);
        }
        return text;
      },
      end() {
        return decoder.end();
      },
    };
  },
};
