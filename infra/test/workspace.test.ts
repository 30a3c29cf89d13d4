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

  const hashesOf = (root: string) => loadWorkspace(root).functions.map((f) => f.sourceHash);

  test('each function is built from its own crate and the shared crate: nothing else of the workspace', () => {
    const crates = Object.fromEntries(loadWorkspace(DEFAULT_WORKSPACE_ROOT).functions.map((f) => [f.binaryName, f.buildCrates]));
    expect(crates).toEqual({
      'get-messages': ['functions/get', 'shared'],
      'post-message': ['functions/post', 'shared'],
      'delete-messages': ['functions/delete', 'shared'],
    });
  });

  test('change for every function when the shared crate, the lock file, the Cargo config or the build profile changes', () => {
    const root = copyWorkspace();
    let previous = hashesOf(root);
    const changes: Array<[string, () => void]> = [
      ['shared', () => appendFileSync(firstSourceFile(root, 'shared'), '\n// changed\n')],
      ['Cargo.lock', () => appendFileSync(join(root, 'Cargo.lock'), '\n# changed\n')],
      ['.cargo/config.toml', () => appendFileSync(join(root, '.cargo', 'config.toml'), '\n# changed\n')],
      ['profile', () => {
        const manifest = join(root, 'Cargo.toml');
        writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('opt-level = "s"', 'opt-level = 3'));
      }],
    ];
    for (const [what, change] of changes) {
      change();
      const next = hashesOf(root);
      next.forEach((hash, i) => expect([what, hash]).not.toEqual([what, previous[i]]));
      previous = next;
    }
  });

  test('change for no function when only a test crate, the route table or a comment of the manifest changes', () => {
    const root = copyWorkspace();
    const before = hashesOf(root);
    // efs-model, test-support and conformance are no function's (non-dev) dependency.
    for (const crate of ['efs-model', 'test-support', 'conformance']) {
      appendFileSync(firstSourceFile(root, crate), '\n// changed\n');
      expect([crate, hashesOf(root)]).toEqual([crate, before]);
    }
    const manifest = join(root, 'Cargo.toml');
    appendFileSync(manifest, '\n# a comment\n');
    expect(hashesOf(root)).toEqual(before);
    // The route table is read by the emulator and by the base stack, never by a build.
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('"/messages/{id}" = [\n  { method = "GET", function = "get-messages" },\n', '"/messages/{id}" = [\n'));
    expect(loadWorkspace(root).routes).toHaveLength(7);
    expect(hashesOf(root)).toEqual(before);
  });

  test('a path dependency outside the workspace is refused (its sources would not be in the hash)', () => {
    const root = copyWorkspace();
    const crate = join(root, 'functions/get/Cargo.toml');
    writeFileSync(crate, readFileSync(crate, 'utf8').replace('[dependencies]', '[dependencies]\nvendored = { path = "../../vendor/x" }'));
    expect(() => loadWorkspace(root)).toThrow(/path dependency 'vendored' .* is not a workspace member/);
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
