#!/usr/bin/env -S node --initial-old-space-size=64 --max-semi-space-size=4
// Launcher: runs the compiled CLI (npm install builds dist/ through the postinstall step). The node
// flags are the mount server's (src/cli/server-flags.ts): `svault mount -f` serves in this process.
import '../dist/src/cli/cli.js';
