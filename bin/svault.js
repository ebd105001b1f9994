#!/usr/bin/env node
// Launcher: runs the compiled CLI (npm install builds dist/ through the postinstall step).
import '../dist/src/cli.js';
