import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLING_IMAGE, UNBUILT_CODE_MESSAGE } from '../lib/code';
import { DEFAULT_WORKSPACE_ROOT } from '../lib/workspace';
import { copyWorkspace, FUNCTION_NAMES, functionStackName, resourcesOfType, SDK_CALL_PROVIDER_ID, tempDir } from './helpers';

const INFRA = join(__dirname, '..');

/**
 * Stand-ins for `cargo` and `docker`, first on PATH: they record each call and, for a build, write
 * a fake `bootstrap` where cargo-lambda would. `cargoLambda: false` is a machine without
 * cargo-lambda (`cargo lambda --version` fails), where cargo-lambda-cdk builds in Docker.
 */
function fakeTools(cargoLambda: boolean): { bin: string; log: string } {
  const bin = tempDir('fake-tools-');
  const log = join(bin, 'calls.log');
  writeFileSync(
    join(bin, 'cargo'),
    `#!/bin/sh
echo "cargo|$PWD|$*" >> "${log}"
if [ "$1" = lambda ] && [ "$2" = --version ]; then ${cargoLambda ? 'echo "cargo-lambda 0.0.0 (fake)"; exit 0' : 'echo "error: no such command: lambda" >&2; exit 101'}; fi
if [ "$1" = lambda ] && [ "$2" = build ]; then
  while [ $# -gt 0 ]; do [ "$1" = --lambda-dir ] && dir="$2"; shift; done
  mkdir -p "$dir" && printf 'fake bootstrap' > "$dir/bootstrap"; exit 0
fi
exit 1
`,
  );
  // docker run ... -v <host>:/asset-output:delegated ... <image> bash -c "cargo lambda build ...".
  writeFileSync(
    join(bin, 'docker'),
    `#!/bin/sh
echo "docker|$PWD|$*" >> "${log}"
if [ "$1" = run ]; then
  for arg in "$@"; do case "$arg" in *:/asset-output*) out="\${arg%%:/asset-output*}";; esac; done
  printf 'fake bootstrap from docker' > "$out/bootstrap"; exit 0
fi
exit 0
`,
  );
  chmodSync(join(bin, 'cargo'), 0o755);
  chmodSync(join(bin, 'docker'), 0o755);
  return { bin, log };
}

interface CliSynth {
  code: number | null;
  output: string;
  outdir: string;
  calls: Array<{ tool: string; cwd: string; args: string[] }>;
  templates: Record<string, any>;
}

/**
 * `npx cdk synth` as a user runs it (the CLI, cdk.json's app command), with the fake tools. The
 * CLI runs the app in a child process: jest's sandboxed process.env would not reach the
 * `cargo lambda --version` probe of cargo-lambda-cdk in-process.
 */
function cdkSynth(extraArgs: string[], cargoLambda = true): Promise<CliSynth> {
  const { bin, log } = fakeTools(cargoLambda);
  const outdir = tempDir('efs-messages-cli-');
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['cdk', 'synth', '--quiet', '--no-notices', '-o', outdir, ...extraArgs], {
      cwd: INFRA,
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, TS_NODE_TRANSPILE_ONLY: 'true', CDK_DISABLE_CLI_TELEMETRY: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const lines = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : [];
      const calls = lines.map((line) => {
        const [tool, cwd, args] = line.split('|');
        return { tool, cwd, args: args.split(' ') };
      });
      const templates: Record<string, any> = {};
      if (code === 0) {
        for (const file of readdirSync(outdir).filter((f) => f.endsWith('.template.json'))) {
          templates[file.replace(/\.template\.json$/, '')] = JSON.parse(readFileSync(join(outdir, file), 'utf8'));
        }
      }
      resolve({ code, output, outdir, calls, templates });
    });
  });
}

/** The function's code asset key (its S3 object name without `.zip`). */
const codeKey = (result: CliSynth, binary: string): string => {
  const [[, fn]] = resourcesOfType(result.templates[functionStackName(binary)], 'AWS::Lambda::Function').filter(
    ([id]) => id !== SDK_CALL_PROVIDER_ID,
  );
  return fn.Properties.Code.S3Key.replace(/\.zip$/, '');
};

describe('bundling the Rust functions (through the cdk CLI)', () => {
  let skipped: CliSynth;
  let local: CliSynth;
  let docker: CliSynth;
  let otherCheckout: string;

  beforeAll(async () => {
    // The same commit: skipped; built with cargo-lambda here; built in Docker on a machine without
    // cargo-lambda, from a checkout at another path.
    otherCheckout = copyWorkspace();
    [skipped, local, docker] = await Promise.all([
      cdkSynth(['-c', 'skipBundling=true']),
      cdkSynth([]),
      cdkSynth(['-c', `workspaceRoot=${otherCheckout}`], false),
    ]);
  }, 300_000);

  test('`cdk synth -c skipBundling=true` (what `npm test` lints) builds nothing', () => {
    expect([skipped.code, skipped.output]).toEqual([0, expect.any(String)]);
    expect(skipped.calls.filter((c) => c.args.includes('build') || c.tool === 'docker')).toEqual([]);
  });

  test('a real synth or deploy builds each binary once: local cargo-lambda, release, arm64', () => {
    expect([local.code, local.output]).toEqual([0, expect.any(String)]);
    const builds = local.calls.filter((c) => c.tool === 'cargo' && c.args.includes('build'));
    expect(builds).toHaveLength(FUNCTION_NAMES.length);
    expect(local.calls.filter((c) => c.tool === 'docker')).toEqual([]);
    for (const binary of FUNCTION_NAMES) {
      const call = builds.find((c) => c.args.includes(binary));
      expect(call).toBeDefined();
      // From the workspace root: the workspace's manifest, one binary of it.
      expect(call!.cwd).toBe(DEFAULT_WORKSPACE_ROOT);
      expect(call!.args).toEqual(expect.arrayContaining(['lambda', 'build', '--release', '--arm64', '--bin', binary, '--disable-optimizations']));
      expect(call!.args.join(' ')).toContain(`--flatten ${binary}`);
      // The built bootstrap is the function's code asset.
      expect(readFileSync(join(local.outdir, `asset.${codeKey(local, binary)}`, 'bootstrap'), 'utf8')).toBe('fake bootstrap');
    }
  });

  test('without cargo-lambda it builds in Docker, in the one image the key names', () => {
    expect([docker.code, docker.output]).toEqual([0, expect.any(String)]);
    const runs = docker.calls.filter((c) => c.tool === 'docker' && c.args[0] === 'run');
    expect(runs).toHaveLength(FUNCTION_NAMES.length);
    for (const binary of FUNCTION_NAMES) {
      const run = runs.find((c) => c.args.join(' ').includes(`--bin ${binary}`));
      expect(run!.args).toContain(BUNDLING_IMAGE);
      expect(run!.args.join(' ')).toContain(`-v ${otherCheckout}:/asset-input`);
      expect(readFileSync(join(docker.outdir, `asset.${codeKey(docker, binary)}`, 'bootstrap'), 'utf8')).toBe('fake bootstrap from docker');
    }
  });

  test.each(FUNCTION_NAMES)('%s: the same key wherever and however the commit is built (no new version, no canary)', (binary) => {
    expect(codeKey(local, binary)).toMatch(/^[0-9a-f]{64}$/);
    expect(codeKey(docker, binary)).toBe(codeKey(local, binary));
    // And the same templates: nothing to deploy from the other machine.
    const name = functionStackName(binary);
    expect(JSON.stringify(docker.templates[name])).toBe(JSON.stringify(local.templates[name]));
  });

  test.each(FUNCTION_NAMES)('%s: skipped bundling has another key, a placeholder for code, and a rule that refuses to deploy', (binary) => {
    const key = codeKey(skipped, binary);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(key).not.toBe(codeKey(local, binary));
    // The staged asset is the placeholder, never the workspace.
    const staged = readdirSync(join(skipped.outdir, `asset.${key}`));
    expect(staged).toEqual(['NOT-BUILT.txt']);
    const template = skipped.templates[functionStackName(binary)];
    expect(template.Parameters.UnbuiltFunctionCode).toMatchObject({ Type: 'String', Default: 'refuse', AllowedValues: ['refuse'] });
    // The assertion needs a value the parameter cannot take: no deployment can pass it.
    expect(template.Rules.NeverDeployUnbuiltFunctionCode).toEqual({
      Assertions: [{ Assert: { 'Fn::Equals': [{ Ref: 'UnbuiltFunctionCode' }, 'deploy'] }, AssertDescription: UNBUILT_CODE_MESSAGE }],
    });
    expect(template.Parameters.UnbuiltFunctionCode.AllowedValues).not.toContain('deploy');
    // A real build has neither.
    const built = local.templates[functionStackName(binary)];
    expect(Object.keys(built.Rules ?? {})).toEqual(['CheckBootstrapVersion']);
    expect(built.Parameters.UnbuiltFunctionCode).toBeUndefined();
  });
});
