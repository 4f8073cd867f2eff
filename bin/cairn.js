#!/usr/bin/env node
// The `cairn` executable: the compiled CLI (built by `npm ci` through the `prepare` script).
require('../dist/server/cli/index.js').main(process.argv.slice(2));
