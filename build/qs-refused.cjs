// Bundling stub for qs, which Express loads for its "extended" query parser and body-parser for
// urlencoded bodies, with some forty helper modules behind it (side-channel, get-intrinsic,
// object-inspect), about 0.6 MB of the idle agent. The agent keeps Express 5's "simple" query parser
// (node:querystring) and reads JSON bodies only (src/http/app.ts), so neither path is ever taken; if
// one were configured by mistake, it fails loudly instead of parsing.
'use strict';
const refuse = () => {
  throw new Error('qs (extended query strings, urlencoded bodies) is not carried by the deploy agent');
};
module.exports = { parse: refuse, stringify: refuse };
