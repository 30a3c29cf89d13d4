import { appendFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { DEFAULT_WORKSPACE_ROOT, loadWorkspace, parseRouter } from '../lib/workspace';
import { CONTRACT_ROUTES, copyWorkspace, FUNCTION_NAMES } from './helpers';

const router = (body: string) => parse(`[workspace]\nmembers = []\n[workspace.metadata.lambda.watch.router]\n${body}`);

describe('the route table in the root Cargo.toml', () => {
  const workspace = loadWorkspace(DEFAULT_WORKSPACE_ROOT);

  test('is exactly the contract route table', () => {
    const routes = workspace.routes.map((r) => [r.method, r.path, r.functionName]);
    expect(routes).toHaveLength(CONTRACT_ROUTES.length);
    expect(new Set(routes.map((r) => r.join(' ')))).toEqual(new Set(CONTRACT_ROUTES.map((r) => r.join(' '))));
  });

  test('names three functions, each a binary of its own workspace crate', () => {
    expect(workspace.functions.map((f) => f.binaryName).sort()).toEqual([...FUNCTION_NAMES].sort());
    const dirs = Object.fromEntries(workspace.functions.map((f) => [f.binaryName, f.crateDir]));
    expect(dirs).toEqual({
      'get-messages': 'functions/get',
      'post-message': 'functions/post',
      'delete-messages': 'functions/delete',
    });
    expect(workspace.manifestPath).toBe(join(DEFAULT_WORKSPACE_ROOT, 'Cargo.toml'));
  });

  test('only the function serving nothing but GET is read-only', () => {
    const readOnly = Object.fromEntries(workspace.functions.map((f) => [f.binaryName, f.readOnly]));
    expect(readOnly).toEqual({ 'get-messages': true, 'post-message': false, 'delete-messages': false });
  });
});

describe('parseRouter', () => {
  test('reads per-method entries and upper-cases methods', () => {
    expect(parseRouter(router('"/a" = [{ method = "get", function = "f" }]'))).toEqual([
      { method: 'GET', path: '/a', functionName: 'f' },
    ]);
  });

  test('rejects the all-methods string form, which cannot be bound per method', () => {
    expect(() => parseRouter(router('"/a" = "f"'))).toThrow(/list of \{ method, function \}/);
  });

  test('rejects unknown methods, missing functions, duplicates, relative paths and an empty table', () => {
    expect(() => parseRouter(router('"/a" = [{ method = "FETCH", function = "f" }]'))).toThrow(/unsupported method/);
    expect(() => parseRouter(router('"/a" = [{ method = "GET" }]'))).toThrow(/has no function/);
    expect(() =>
      parseRouter(router('"/a" = [{ method = "GET", function = "f" }, { method = "GET", function = "g" }]')),
    ).toThrow(/listed twice/);
    expect(() => parseRouter(router('"a" = [{ method = "GET", function = "f" }]'))).toThrow(/must start with/);
    expect(() => parseRouter(router(''))).toThrow(/empty/);
  });

  test('a route to a binary that no workspace crate builds is an error', () => {
    const root = copyWorkspace();
    const text = readFileSync(join(root, 'Cargo.toml'), 'utf8');
    writeFileSync(join(root, 'Cargo.toml'), text.replace('function = "post-message"', 'function = "nope"'));
    expect(() => loadWorkspace(root)).toThrow(/'nope' is not a binary of any workspace member/);
  });
});

describe('source hashes (the functions\' asset hashes)', () => {
  const firstSourceFile = (root: string, crate: string) => {
    const src = join(root, crate, 'src');
    return join(src, readdirSync(src).filter((f) => f.endsWith('.rs')).sort()[0]);
  };

  test('change only for the function whose crate changed', () => {
    const root = copyWorkspace();
    const before = loadWorkspace(root).functions;
    appendFileSync(firstSourceFile(root, 'functions/get'), '\n// changed\n');
    const after = loadWorkspace(root).functions;
    for (const [i, fn] of before.entries()) {
      if (fn.binaryName === 'get-messages') {
        expect(after[i].sourceHash).not.toBe(fn.sourceHash);
      } else {
        expect(after[i].sourceHash).toBe(fn.sourceHash);
      }
    }
  });

  test('change for every function when the shared crate or the workspace manifest changes', () => {
    const root = copyWorkspace();
    const before = loadWorkspace(root).functions.map((f) => f.sourceHash);
    appendFileSync(firstSourceFile(root, 'shared'), '\n// changed\n');
    const afterShared = loadWorkspace(root).functions.map((f) => f.sourceHash);
    afterShared.forEach((hash, i) => expect(hash).not.toBe(before[i]));
    appendFileSync(join(root, 'Cargo.toml'), '\n# changed\n');
    const afterManifest = loadWorkspace(root).functions.map((f) => f.sourceHash);
    afterManifest.forEach((hash, i) => expect(hash).not.toBe(afterShared[i]));
  });

  test('ignore build output and the crates\' integration tests, benches and examples', () => {
    const root = copyWorkspace();
    const before = loadWorkspace(root).functions.map((f) => f.sourceHash);
    for (const dir of ['shared/target', 'functions/get/tests', 'functions/post/benches', 'shared/examples']) {
      mkdirSync(join(root, dir), { recursive: true });
      writeFileSync(join(root, dir, 'extra.rs'), '// not part of any release binary\n');
    }
    expect(loadWorkspace(root).functions.map((f) => f.sourceHash)).toEqual(before);
    // A source directory of the same name below src/ does count.
    mkdirSync(join(root, 'functions/get/src/tests'), { recursive: true });
    writeFileSync(join(root, 'functions/get/src/tests/extra.rs'), '// a module\n');
    expect(loadWorkspace(root).functions.map((f) => f.sourceHash)).not.toEqual(before);
  });
});
