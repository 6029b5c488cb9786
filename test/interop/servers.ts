// Starting each real server from its recipe (test/interop/recipes.ts) in a temporary directory, in the
// foreground, and stopping it by PID and process group.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findBinary, Proc, waitForListen } from './harness';
import { render, type Recipe } from './recipes';

/** A running server: its process, directory, the values its recipe was rendered with, its error log. */
export interface RunningServer {
  proc: Proc;
  dir: string;
  values: Record<string, string>;
  errorLog: string;
  stop(): Promise<void>;
}

/** Writes the recipe's files into `dir` with `values` (DIR is set to `dir`) and returns the rendered command. */
export function writeRecipe(
  recipe: Recipe,
  dir: string,
  values: Record<string, string | number>,
): { values: Record<string, string>; command: string } {
  const all: Record<string, string> = { DIR: dir };
  for (const [k, v] of Object.entries(values)) all[k] = String(v);
  for (const file of recipe.files) fs.writeFileSync(path.join(dir, file.name), render(file.template, all));
  return { values: all, command: render(recipe.command, all) };
}

/** Splits a rendered command line (no quoting needed in ours) and resolves its program. */
export function argv(command: string): string[] {
  const parts = command.split(/\s+/).filter((p) => p !== '');
  const binary = findBinary(parts[0]!);
  if (binary === null) throw new Error(`${parts[0]} not found`);
  return [binary, ...parts.slice(1)];
}

/** Starts `recipe` in `dir` and waits until every port in `waitFor` accepts connections. */
export async function startRecipe(
  recipe: Recipe,
  dir: string,
  values: Record<string, string | number>,
  options: {
    waitFor: (number | string)[];
    errorLog: string;
    env?: NodeJS.ProcessEnv;
    before?: () => void;
    cwd?: string;
  },
): Promise<RunningServer> {
  const { values: all, command } = writeRecipe(recipe, dir, values);
  options.before?.();
  const proc = new Proc(recipe.id, argv(command), { cwd: options.cwd ?? dir, env: options.env ?? process.env });
  try {
    for (const where of options.waitFor) await waitForListen(where, 20_000, proc);
  } catch (error) {
    await proc.stop('SIGKILL', 1000);
    throw new Error(`${(error as Error).message}\nerror log:\n${readTail(options.errorLog)}`);
  }
  return { proc, dir, values: all, errorLog: options.errorLog, stop: () => proc.stop('SIGTERM', 5000) };
}

function readTail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').slice(-3000);
  } catch {
    return '(none)';
  }
}
