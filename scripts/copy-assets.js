// Copies non-TypeScript runtime assets (Lua scripts, the SBE schema) next to the compiled output.
//   node scripts/copy-assets.js [outDir]   (default dist, the outDir of tsconfig.json and tsconfig.build.json)
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const outDir = path.resolve(root, process.argv[2] ?? 'dist');
const exts = new Set(['.lua', '.xml']);

function copyTree(fromDir, toDir) {
  if (!fs.existsSync(fromDir)) return;
  for (const entry of fs.readdirSync(fromDir, { withFileTypes: true })) {
    const from = path.join(fromDir, entry.name);
    const to = path.join(toDir, entry.name);
    if (entry.isDirectory()) copyTree(from, to);
    else if (exts.has(path.extname(entry.name))) {
      fs.mkdirSync(toDir, { recursive: true });
      fs.copyFileSync(from, to);
    }
  }
}

// A renamed script (apply-depth-batch-11 -> -12) must not survive in dist: both would register one command.
function removeStale(fromDir, toDir) {
  if (!fs.existsSync(toDir)) return;
  for (const entry of fs.readdirSync(toDir, { withFileTypes: true })) {
    const from = path.join(fromDir, entry.name);
    const to = path.join(toDir, entry.name);
    if (entry.isDirectory()) removeStale(from, to);
    else if (exts.has(path.extname(entry.name)) && !fs.existsSync(from)) fs.rmSync(to);
  }
}

removeStale(path.join(root, 'src'), path.join(outDir, 'src'));
copyTree(path.join(root, 'src'), path.join(outDir, 'src'));
