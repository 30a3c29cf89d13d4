// scripts/changed-stacks (Python, used by the deploy workflow) against the CDK app itself: the
// stacks it names are the stacks the app synthesises, and the paths it says touch a function are
// exactly the paths that change that function's asset hash (lib/workspace.ts).
import { App, Stack } from 'aws-cdk-lib';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BUNDLING_STACKS, buildMessagesApp } from '../lib/app';
import { deployRoleStackName } from '../lib/github-deploy-role';
import { loadWorkspace } from '../lib/workspace';
import { cdkJsonContext, copyWorkspace } from './helpers';

const SCRIPT = join(__dirname, '..', '..', 'scripts', 'changed-stacks');

function changedStacks(args: string[], repo?: string): string[] {
  const out = execFileSync('python3', [SCRIPT, '--format', 'json', ...(repo ? ['--repo', repo] : []), ...args], { encoding: 'utf8' });
  return JSON.parse(out);
}

/** The app's stacks as `cdk synth` builds them (the same construct tree; bundling skipped). */
function appStacks(context: Record<string, string>): Stack[] {
  const app = new App({ context: { ...cdkJsonContext(), [BUNDLING_STACKS]: [], ...context } });
  buildMessagesApp(app);
  return app.node.children.filter(Stack.isStack);
}

test('its stacks are the app\'s stacks, base first', () => {
  const stacks = appStacks({ githubRepository: 'octo-org/octo-repo' });
  const listed = changedStacks(['--all']);
  // Every app stack but the deploy role, which CI never deploys (it is the role CI deploys with).
  expect(listed.length).toBe(4);
  expect([...listed].sort()).toEqual(stacks.map((s) => s.stackName).filter((s) => s !== deployRoleStackName('EfsMessages')).sort());
  // The CLI orders a deploy by the stacks' dependencies anyway; base first is for people reading it.
  expect(listed[0]).toBe('EfsMessages-base');
});

test('with another stackPrefix too', () => {
  const names = appStacks({ stackPrefix: 'Demo' }).map((s) => s.stackName);
  expect([...changedStacks(['--all', '--prefix', 'Demo'])].sort()).toEqual([...names].sort());
});

describe('a path touches a function stack exactly when it changes that function’s asset hash', () => {
  const root = copyWorkspace();
  const hashes = () => Object.fromEntries(loadWorkspace(root).functions.map((f) => [f.binaryName, f.sourceHash]));
  const before = hashes();
  const binaries = Object.keys(before);
  const stackOf = (binary: string) => `EfsMessages-${binary}`;

  test.each([
    'functions/get/src/new.rs',
    'functions/get/src/tests/inline.rs',
    'functions/get/page/extra.css',
    'functions/get/tests/api.rs',
    'functions/post/benches/b.rs',
    'functions/post/.hidden/file',
    'functions/post/.dotfile',
    'functions/delete/target/release/x',
    'functions/delete/node_modules/x/index.js',
    'shared/src/new.rs',
    'shared/tests/new.rs',
    'shared/examples/e.rs',
    'test-support/src/new.rs',
    'conformance/tests/x.rs',
    'efs-model/src/new.rs',
    'conformance/src/new.rs',
    'Cargo.lock',
    '.cargo/config.toml',
    'rust-toolchain.toml',
    'bench/src/x.rs',
    'fuzz/src/x.rs',
    'docs/x.md',
  ])('%s', (path) => {
    const file = join(root, path);
    const existed = existsSync(file);
    const original = existed ? readFileSync(file) : undefined;
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${original ?? ''}\n// changed by a test\n`);
    try {
      const after = hashes();
      const changedByHash = binaries.filter((b) => after[b] !== before[b]).map(stackOf);
      const functionStacks = changedStacks(['--files', path], root).filter((s) => s !== 'EfsMessages-base');
      expect(functionStacks.sort()).toEqual(changedByHash.sort());
    } finally {
      if (original === undefined) {
        rmSync(file);
      } else {
        writeFileSync(file, original);
      }
    }
  });
});
