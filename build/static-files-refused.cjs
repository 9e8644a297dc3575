// Bundling stub for send and serve-static, which Express loads for express.static, res.sendFile and
// res.download. The agent answers JSON and serves no file, so they are not carried; a call fails
// loudly.
'use strict';
const refuse = () => {
  throw new Error('serving files is not supported by the deploy agent');
};
module.exports = new Proxy(refuse, { get: () => refuse });
