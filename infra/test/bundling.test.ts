import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_WORKSPACE_ROOT } from '../lib/workspace';
import { FUNCTION_NAMES, functionStackName, resourcesOfType, tempDir } from './helpers';

const INFRA = join(__dirname, '..');

/**
 * A stand-in `cargo`, first on PATH: it records each call and, for `cargo lambda build`, writes a
 * fake `bootstrap` where cargo-lambda would. It shows what a real `cdk deploy` runs, without
 * building anything.
 */
function fakeCargo(): { bin: string; log: string } {
  const bin = tempDir('fake-cargo-');
  const log = join(bin, 'calls.log');
  writeFileSync(
    join(bin, 'cargo'),
    `#!/bin/sh
echo "$PWD|$*" >> "${log}"
if [ "$1" = lambda ] && [ "$2" = --version ]; then echo "cargo-lambda 0.0.0 (fake)"; exit 0; fi
if [ "$1" = lambda ] && [ "$2" = build ]; then
  while [ $# -gt 0 ]; do [ "$1" = --lambda-dir ] && dir="$2"; shift; done
  mkdir -p "$dir" && printf 'fake bootstrap' > "$dir/bootstrap"; exit 0
fi
exit 1
`,
  );
  chmodSync(join(bin, 'cargo'), 0o755);
  return { bin, log };
}

interface CliSynth {
  code: number | null;
  output: string;
  outdir: string;
  builds: Array<{ cwd: string; args: string[] }>;
}

/**
 * `npx cdk synth` as a user runs it (the CLI, cdk.json's app command), with the fake cargo. The
 * CLI runs the app in a child process: jest's sandboxed process.env would not reach the
 * `cargo lambda --version` probe of cargo-lambda-cdk in-process.
 */
function cdkSynth(extraArgs: string[]): Promise<CliSynth> {
  const { bin, log } = fakeCargo();
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
      const calls = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : [];
      const builds = calls
        .filter((c) => c.includes('|lambda build '))
        .map((line) => {
          const [cwd, args] = line.split('|');
          return { cwd, args: args.split(' ') };
        });
      resolve({ code, output, outdir, builds });
    });
  });
}

describe('bundling the Rust functions (through the cdk CLI)', () => {
  let skipped: CliSynth;
  let bundled: CliSynth;

  beforeAll(async () => {
    [skipped, bundled] = await Promise.all([cdkSynth(['-c', 'skipBundling=true']), cdkSynth([])]);
  }, 240_000);

  test('`cdk synth -c skipBundling=true` (what `npm test` lints) builds nothing', () => {
    expect(skipped.code).toBe(0);
    expect(skipped.builds).toEqual([]);
  });

  test('a real synth or deploy builds each binary once: local cargo-lambda, release, arm64', () => {
    expect(bundled.code).toBe(0);
    expect(bundled.builds).toHaveLength(FUNCTION_NAMES.length);
    for (const binary of FUNCTION_NAMES) {
      const call = bundled.builds.find((c) => c.args.includes(binary));
      expect(call).toBeDefined();
      // From the workspace root: the workspace's manifest, one binary of it.
      expect(call!.cwd).toBe(DEFAULT_WORKSPACE_ROOT);
      expect(call!.args).toEqual(expect.arrayContaining(['lambda', 'build', '--release', '--arm64', '--bin', binary, '--disable-optimizations']));
      expect(call!.args.join(' ')).toContain(`--flatten ${binary}`);

      // The built bootstrap is the function's code asset.
      const template = JSON.parse(readFileSync(join(bundled.outdir, `${functionStackName(binary)}.template.json`), 'utf8'));
      const [[, fn]] = resourcesOfType(template, 'AWS::Lambda::Function');
      const hash = fn.Properties.Code.S3Key.replace(/\.zip$/, '');
      expect(readFileSync(join(bundled.outdir, `asset.${hash}`, 'bootstrap'), 'utf8')).toBe('fake bootstrap');
    }
  });
});
