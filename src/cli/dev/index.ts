import type { Command } from 'commander';
import { registerReplay } from './replay';
import { registerStack } from './stack';

// The development-only commands: `replay` (simulated or CSV market data, with the simulated exchange) and
// `stack` (the local emulators). They and what only they use (src/dev) are not in the production build
// (tsconfig.build.json); main.ts registers them when this module is present.

export function registerDevCommands(program: Command): void {
  registerReplay(program);
  registerStack(program);
}
