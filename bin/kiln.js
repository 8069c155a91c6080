#!/usr/bin/env node
// The kiln CLI. Runs the compiled TypeScript in dist/ (`npm run build`).
import { main } from "../dist/main.js";

process.exitCode = await main(process.argv.slice(2));
