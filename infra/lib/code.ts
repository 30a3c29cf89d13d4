import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { AssetHashType, CfnParameter, CfnRule, DockerImage, Fn, Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Bundling } from 'cargo-lambda-cdk/lib/bundling';
import { Construct } from 'constructs';

/**
 * How every function is built, exactly like scripts/build-artifacts: `cargo lambda build --release`
 * for arm64, with the workspace's release profile (LTO, one codegen unit, stripped) and without
 * cargo-lambda's own optimisation flags (which set panic=abort: a panic must fail one invocation,
 * not kill the instance); .cargo/config.toml targets Graviton. Part of every code asset's key.
 */
export const BUILD_PROFILE = 'release';
export const CARGO_LAMBDA_FLAGS: readonly string[] = ['--disable-optimizations'];
/**
 * The image cargo-lambda-cdk builds in when cargo-lambda is not installed. Always named in the
 * bundling options (cargo-lambda-cdk itself names a placeholder image when it builds locally), so
 * the asset key is the same whether a machine builds locally or in Docker.
 */
export const BUNDLING_IMAGE = 'ghcr.io/cargo-lambda/cargo-lambda';
/** Stands in for the code of a function that was not built (see UnbuiltCodeGuard). */
export const UNBUILT_CODE_DIR = join(__dirname, '..', 'assets', 'unbuilt');
/** Bumped to give every function a new code key (a new version and a canary) without a source change. */
const KEY_VERSION = 'efs-messages-code-v1';

export interface RustCodeProps {
  /** The workspace's root Cargo.toml: cargo-lambda builds from its directory. */
  readonly manifestPath: string;
  readonly binaryName: string;
  /** The digest of what the binary is built from (WorkspaceFunction.sourceHash). */
  readonly sourceHash: string;
  readonly architecture: lambda.Architecture;
}

/**
 * One Rust function's code asset, keyed by what it is built from, never by where.
 *
 * The key (the S3 object's name, and through the function's properties its version) is a digest
 * of the binary's inputs: its sources (lib/workspace.ts, sourceHash: its crate, the crates it
 * depends on, Cargo.lock, the toolchain and Cargo config files, the root manifest's build
 * sections) and the build recipe (binary, architecture, profile, flags, bundling command and
 * image name). It does not depend on the machine: cargo-lambda-cdk names a placeholder image when
 * cargo-lambda is installed and the real one when it is not, and CDK hashes the bundling options
 * into a custom key, so the same commit got two keys (two versions, two canaries); here the image is
 * always named. Nor on the checkout's path (the command uses CDK's fixed /asset-input and
 * /asset-output). It does not cover the Rust compiler itself: two machines with different
 * toolchains build different binaries under one key, and whichever uploads first is what is
 * deployed (pin one with rust-toolchain.toml, which is then hashed).
 *
 * When the stack is not being bundled (`-c skipBundling=true`, or a stack the CLI was not asked to
 * deploy), nothing is built: the code is a placeholder directory under another key (a digest of
 * "unbuilt" and the build key, which no real build has), so such an assembly can never upload the
 * workspace as function code or make a later real deploy skip its upload, and UnbuiltCodeGuard
 * makes CloudFormation refuse to deploy it.
 */
export class RustCode extends Construct {
  readonly code: lambda.Code;
  /** Whether the binary is built in this synthesis (the stack is being bundled). */
  readonly built: boolean;

  constructor(scope: Construct, id: string, props: RustCodeProps) {
    super(scope, id);
    const root = dirname(props.manifestPath);
    const bundling = new Bundling(root, {
      manifestPath: props.manifestPath,
      binaryName: props.binaryName,
      architecture: props.architecture,
      profile: BUILD_PROFILE,
      cargoLambdaFlags: [...CARGO_LAMBDA_FLAGS],
    });
    const recipe = JSON.stringify({
      binary: props.binaryName,
      architecture: props.architecture.name,
      profile: BUILD_PROFILE,
      flags: CARGO_LAMBDA_FLAGS,
      command: bundling.command,
      image: BUNDLING_IMAGE,
    });
    const buildKey = digest(KEY_VERSION, props.sourceHash, recipe);
    this.built = Stack.of(this).bundlingRequired;
    if (this.built) {
      this.code = lambda.Code.fromAsset(root, {
        assetHashType: AssetHashType.CUSTOM,
        assetHash: buildKey,
        bundling: {
          image: DockerImage.fromRegistry(BUNDLING_IMAGE),
          command: bundling.command,
          environment: bundling.environment,
          // cargo-lambda on this machine, else Docker (cargo-lambda-cdk's fallback).
          local: bundling.local,
        },
      });
    } else {
      this.code = lambda.Code.fromAsset(UNBUILT_CODE_DIR, {
        assetHashType: AssetHashType.CUSTOM,
        assetHash: digest('unbuilt', buildKey),
      });
      UnbuiltCodeGuard.of(this);
    }
  }
}

/**
 * A CloudFormation rule that can never hold, in a stack whose function code was not built: creating
 * or updating the stack (or a change set of it) fails with its message before any resource is
 * touched. It is the mechanism of CDK's own `CheckBootstrapVersion` rule, which refuses a template
 * on an outdated bootstrap stack; `Fn::Equals` is one of the rule-specific functions (CfnRuleProps,
 * "Rules" in the CloudFormation template reference). The CDK CLI publishes a stack's assets first,
 * so a mistaken deploy uploads only the small placeholder, under its own key.
 */
export class UnbuiltCodeGuard extends Construct {
  static of(scope: Construct): UnbuiltCodeGuard {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(GUARD_ID);
    return existing instanceof UnbuiltCodeGuard ? existing : new UnbuiltCodeGuard(stack, GUARD_ID);
  }

  readonly parameter: CfnParameter;
  readonly rule: CfnRule;

  private constructor(scope: Construct, id: string) {
    super(scope, id);
    // The assertion needs the parameter to be `deploy`, which its allowed values forbid: no
    // deployment can satisfy both, not even with `--parameters` (and cfn-lint sees no constant
    // condition to warn about).
    this.parameter = new CfnParameter(this, 'Parameter', {
      type: 'String',
      default: 'refuse',
      allowedValues: ['refuse'],
      description: 'Set because this template was synthesized without building its function code: it cannot be deployed',
    });
    this.parameter.overrideLogicalId('UnbuiltFunctionCode');
    this.rule = new CfnRule(this, 'Rule', {
      assertions: [{ assert: Fn.conditionEquals(this.parameter.valueAsString, 'deploy'), assertDescription: UNBUILT_CODE_MESSAGE }],
    });
    this.rule.overrideLogicalId('NeverDeployUnbuiltFunctionCode');
  }
}

export const UNBUILT_CODE_MESSAGE =
  'This template was synthesized without building its function code (-c skipBundling=true, or a stack the CDK CLI ' +
  'did not bundle): its code asset is a placeholder. Deploy with a real build: npx cdk deploy (without skipBundling).';

const GUARD_ID = 'UnbuiltCodeGuard';

function digest(...parts: string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) {
    hash.update(part);
    hash.update('\0');
  }
  return hash.digest('hex');
}
