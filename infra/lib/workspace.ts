import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { parse } from 'smol-toml';
import { canonical } from './canonical';

/** HTTP methods an API Gateway HTTP API route key accepts. */
export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'ANY'] as const;
export type RouteMethod = (typeof HTTP_METHODS)[number];

/** Methods that never change state: a function that only serves these gets a read-only mount. */
const READ_ONLY_METHODS: ReadonlySet<RouteMethod> = new Set<RouteMethod>(['GET', 'HEAD', 'OPTIONS']);

/** One row of the route table: `METHOD path` goes to the function (binary) named `functionName`. */
export interface Route {
  readonly method: RouteMethod;
  readonly path: string;
  readonly functionName: string;
}

/** One Lambda function of the workspace: a binary crate named in the route table. */
export interface WorkspaceFunction {
  /** Cargo package name = binary name = the `function` in the route table (e.g. `get-messages`). */
  readonly binaryName: string;
  /** The crate's directory, relative to the workspace root (e.g. `functions/get`). */
  readonly crateDir: string;
  /** The routes this function serves, in table order. */
  readonly routes: Route[];
  /** True when every route is a read-only method: the function gets no write access to EFS. */
  readonly readOnly: boolean;
  /**
   * SHA-256 over what this binary is built from, and nothing else: its own crate, the workspace
   * members it depends on (path dependencies through `[dependencies]` and `[build-dependencies]`,
   * transitively; never `[dev-dependencies]`), `Cargo.lock`, the toolchain and Cargo config files,
   * and the root manifest without `[workspace.metadata]` (the route table and `cargo lambda watch`'s
   * settings, which no build reads); never another function's crate, a test-only crate (efs-model,
   * test-support, conformance), nor any crate's tests/, benches/ or examples/. The code asset's
   * key is derived from it (lib/code.ts), so a change to one function's code changes only that
   * function's stack, and editing a test crate redeploys nothing.
   */
  readonly sourceHash: string;
  /** The workspace members this binary is built from: its crate first, then its dependencies, sorted. */
  readonly buildCrates: string[];
}

/** What the CDK app needs to know about the Cargo workspace. */
export interface Workspace {
  readonly root: string;
  /** Absolute path of the root Cargo.toml (the `manifestPath` given to cargo-lambda). */
  readonly manifestPath: string;
  readonly routes: Route[];
  /** The functions in the order they first appear in the route table. */
  readonly functions: WorkspaceFunction[];
}

/** Files at the workspace root that affect every build (the root Cargo.toml is hashed apart, see rootManifestDigest). */
const ROOT_BUILD_FILES = ['Cargo.lock', 'rust-toolchain', 'rust-toolchain.toml', '.cargo/config', '.cargo/config.toml'];

/** Dependency tables whose path dependencies are built into a binary (not `dev-dependencies`). */
const BUILD_DEPENDENCY_TABLES = ['dependencies', 'build-dependencies'];

/** Directory names never part of a crate's sources. */
const SKIPPED_DIRS = new Set(['target', 'node_modules', 'cdk.out']);
/** Top-level crate directories of other Cargo targets, which never go into a release binary. */
const NON_BINARY_TARGET_DIRS = new Set(['tests', 'benches', 'examples']);

type Toml = Record<string, unknown>;

function asTable(value: unknown, where: string): Toml {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${where} must be a TOML table`);
  }
  return value as Toml;
}

function readToml(file: string): Toml {
  return parse(readFileSync(file, 'utf8')) as Toml;
}

/**
 * Reads `[workspace.metadata.lambda.watch.router]` of the root Cargo.toml: the one route table
 * shared by `cargo lambda watch` (local) and the HTTP API (cloud), so the two cannot drift.
 */
export function parseRouter(manifest: Toml, where = 'Cargo.toml'): Route[] {
  const workspace = asTable(manifest.workspace, `${where}: [workspace]`);
  const router = asTable(
    asTable(asTable(asTable(workspace.metadata, '[workspace.metadata]').lambda, '[workspace.metadata.lambda]').watch,
      '[workspace.metadata.lambda.watch]').router,
    `${where}: [workspace.metadata.lambda.watch.router]`,
  );
  const routes: Route[] = [];
  const seen = new Set<string>();
  for (const [path, entries] of Object.entries(router)) {
    if (!path.startsWith('/')) {
      throw new Error(`${where}: router path '${path}' must start with '/'`);
    }
    if (!Array.isArray(entries)) {
      // cargo-lambda also accepts `"/path" = "function"` (every method); the HTTP API binds routes
      // per method, so the table must say which methods go where.
      throw new Error(`${where}: router path '${path}' must be a list of { method, function } entries`);
    }
    for (const raw of entries) {
      const entry = asTable(raw, `${where}: router entry of '${path}'`);
      const method = String(entry.method ?? '').toUpperCase();
      const functionName = entry.function;
      if (!(HTTP_METHODS as readonly string[]).includes(method)) {
        throw new Error(`${where}: router path '${path}' has unsupported method '${String(entry.method)}'`);
      }
      if (typeof functionName !== 'string' || functionName === '') {
        throw new Error(`${where}: router entry '${method} ${path}' has no function`);
      }
      const key = `${method} ${path}`;
      if (seen.has(key)) {
        throw new Error(`${where}: route '${key}' is listed twice`);
      }
      seen.add(key);
      routes.push({ method: method as RouteMethod, path, functionName });
    }
  }
  if (routes.length === 0) {
    throw new Error(`${where}: the router table is empty`);
  }
  return routes;
}

/** Expands the workspace `members` list (plain paths and a trailing `/*` glob) to directories. */
export function workspaceMembers(root: string, manifest: Toml): string[] {
  const workspace = asTable(manifest.workspace, 'Cargo.toml: [workspace]');
  const members = workspace.members;
  if (!Array.isArray(members)) {
    throw new Error('Cargo.toml: [workspace] has no members list');
  }
  const dirs: string[] = [];
  for (const member of members) {
    const pattern = String(member);
    if (pattern.endsWith('/*')) {
      const parent = join(root, pattern.slice(0, -2));
      for (const name of readdirSync(parent).sort()) {
        if (existsSync(join(parent, name, 'Cargo.toml'))) {
          dirs.push(`${pattern.slice(0, -2)}/${name}`);
        }
      }
    } else if (pattern.includes('*')) {
      throw new Error(`Cargo.toml: workspace member pattern '${pattern}' is not supported (use a path or 'dir/*')`);
    } else {
      dirs.push(pattern);
    }
  }
  return dirs;
}

/** The binary names a crate produces: its `[[bin]]` names, or else its package name. */
function crateBinaries(manifest: Toml): string[] {
  const bins = manifest.bin;
  if (Array.isArray(bins) && bins.length > 0) {
    return bins.map((bin) => String(asTable(bin, '[[bin]]').name));
  }
  const pkg = manifest.package;
  return pkg ? [String(asTable(pkg, '[package]').name)] : [];
}

/**
 * Every source file of the crate in `dir`, sorted: skips build output, hidden directories and the
 * crate's integration tests, benches and examples (changing a test must not redeploy a function).
 */
function listCrateFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (current: string) => {
    for (const name of readdirSync(current).sort()) {
      const full = join(current, name);
      const stats = statSync(full);
      if (stats.isDirectory()) {
        const skipped = SKIPPED_DIRS.has(name) || name.startsWith('.') || (current === dir && NON_BINARY_TARGET_DIRS.has(name));
        if (!skipped) {
          walk(full);
        }
      } else if (stats.isFile()) {
        out.push(full);
      }
    }
  };
  walk(dir);
  return out;
}

function hashFiles(root: string, files: string[], extra: string): string {
  const hash = createHash('sha256');
  hash.update(extra);
  hash.update('\0');
  for (const file of [...new Set(files)].sort()) {
    // Path and content both count; the path uses '/' so the hash is the same on every OS.
    hash.update(relative(root, file).split(sep).join('/'));
    hash.update('\0');
    hash.update(readFileSync(file));
    hash.update('\0');
  }
  return hash.digest('hex');
}

/**
 * The root manifest as the build sees it: everything but `[workspace.metadata]` (the route table
 * and `cargo lambda watch`'s settings, which only the emulator and this app read), as canonical
 * JSON, so comments, formatting and route-table edits do not change any function's code asset.
 */
export function rootManifestDigest(manifest: Toml): string {
  const workspace = { ...asTable(manifest.workspace ?? {}, 'Cargo.toml: [workspace]') };
  delete workspace.metadata;
  return JSON.stringify(canonical({ ...manifest, workspace }));
}

/**
 * The workspace members `crateDir` is built from, transitively: path dependencies (directly, or
 * through `workspace = true` and a `path` in `[workspace.dependencies]`) of its `[dependencies]`,
 * `[build-dependencies]` and their `[target.*]` variants. Dev-dependencies are never built into a
 * release binary.
 */
export function buildDependencyDirs(root: string, manifest: Toml, crateDir: string, members: string[]): string[] {
  const workspaceDeps = asTable(asTable(manifest.workspace ?? {}, '[workspace]').dependencies ?? {}, '[workspace.dependencies]');
  const memberOf = (dir: string): string | undefined => {
    const rel = relative(root, resolve(root, dir)).split(sep).join('/');
    return members.find((m) => m === rel);
  };
  const seen = new Set<string>();
  const visit = (dir: string) => {
    if (seen.has(dir)) {
      return;
    }
    seen.add(dir);
    const crate = readToml(join(root, dir, 'Cargo.toml'));
    const tables: unknown[] = BUILD_DEPENDENCY_TABLES.map((t) => crate[t]);
    for (const target of Object.values((crate.target ?? {}) as Toml)) {
      tables.push(...BUILD_DEPENDENCY_TABLES.map((t) => (target as Toml)?.[t]));
    }
    for (const table of tables) {
      for (const [name, spec] of Object.entries((table ?? {}) as Toml)) {
        if (!spec || typeof spec !== 'object') {
          continue; // a version string: a registry crate, in Cargo.lock
        }
        const entry = spec as Toml;
        let path: string | undefined;
        if (typeof entry.path === 'string') {
          path = join(dir, entry.path);
        } else if (entry.workspace === true) {
          const shared = workspaceDeps[name];
          if (shared && typeof shared === 'object' && typeof (shared as Toml).path === 'string') {
            path = String((shared as Toml).path);
          }
        }
        const member = path === undefined ? undefined : memberOf(path);
        if (path !== undefined && member === undefined) {
          throw new Error(`${dir}: path dependency '${name}' (${path}) is not a workspace member: its sources would not be hashed`);
        }
        if (member !== undefined) {
          visit(member);
        }
      }
    }
  };
  visit(crateDir);
  seen.delete(crateDir);
  return [...seen].sort();
}

/** Reads the Cargo workspace at `root`: its route table and the function crates it names. */
export function loadWorkspace(root: string): Workspace {
  const absRoot = resolve(root);
  const manifestPath = join(absRoot, 'Cargo.toml');
  const manifest = readToml(manifestPath);
  const routes = parseRouter(manifest, manifestPath);

  // Which member crate builds which binary.
  const crateOf = new Map<string, string>();
  const memberDirs = workspaceMembers(absRoot, manifest);
  for (const dir of memberDirs) {
    const crateManifest = join(absRoot, dir, 'Cargo.toml');
    if (!existsSync(crateManifest)) {
      throw new Error(`workspace member '${dir}' has no Cargo.toml`);
    }
    for (const bin of crateBinaries(readToml(crateManifest))) {
      crateOf.set(bin, dir);
    }
  }

  const functionNames = [...new Set(routes.map((r) => r.functionName))];
  for (const name of functionNames) {
    if (!crateOf.get(name)) {
      throw new Error(`router function '${name}' is not a binary of any workspace member`);
    }
  }

  // What every build reads: the lock file, toolchain and Cargo config files, and the root
  // manifest without the route table.
  const rootFiles = ROOT_BUILD_FILES.map((f) => join(absRoot, f)).filter((f) => existsSync(f));
  const manifestDigest = rootManifestDigest(manifest);

  const functions = functionNames.map((binaryName): WorkspaceFunction => {
    const crateDir = crateOf.get(binaryName)!;
    const own = routes.filter((r) => r.functionName === binaryName);
    const dependencies = buildDependencyDirs(absRoot, manifest, crateDir, memberDirs);
    const files = [crateDir, ...dependencies].flatMap((dir) => listCrateFiles(join(absRoot, dir)));
    return {
      binaryName,
      crateDir,
      routes: own,
      readOnly: own.every((r) => READ_ONLY_METHODS.has(r.method)),
      sourceHash: hashFiles(absRoot, [...rootFiles, ...files], `Cargo.toml (build sections)\0${manifestDigest}`),
      buildCrates: [crateDir, ...dependencies],
    };
  });

  return { root: absRoot, manifestPath, routes, functions };
}

/** The Cargo workspace this infra/ directory belongs to (its parent directory). */
export const DEFAULT_WORKSPACE_ROOT = resolve(__dirname, '..', '..');
