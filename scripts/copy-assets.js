// Copies non-TypeScript runtime assets (Lua scripts, the SBE schema) next to the compiled output.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
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

copyTree(path.join(root, 'src'), path.join(root, 'dist', 'src'));
