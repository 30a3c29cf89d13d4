import { App } from 'aws-cdk-lib';
import { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUNDLING_STACKS, buildMessagesApp, MessagesApp } from '../lib/app';
import { parse } from 'smol-toml';
import { DEFAULT_WORKSPACE_ROOT, workspaceMembers } from '../lib/workspace';
import { IDENTITY_SUFFIX_LENGTH } from '../lib/base-values';
import { CHANGE_SETTINGS } from '../lib/settings';

/** The feature flags of cdk.json, so tests synthesise exactly what `cdk synth` does. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(join(__dirname, '..', 'cdk.json'), 'utf8'));
  return cdkJson.context ?? {};
}

/** The contract's route table (shared/CONTRACT.md): method, path, function (binary). */
export const CONTRACT_ROUTES: ReadonlyArray<readonly [string, string, string]> = [
  ['GET', '/', 'get-messages'],
  ['POST', '/', 'post-message'],
  ['DELETE', '/', 'delete-messages'],
  ['GET', '/messages', 'get-messages'],
  ['POST', '/messages', 'post-message'],
  ['DELETE', '/messages', 'delete-messages'],
  ['GET', '/messages/{id}', 'get-messages'],
  ['DELETE', '/messages/{id}', 'delete-messages'],
];

/** Context of each access mode (`jwt` needs an issuer and an audience). */
export const ACCESS_CONTEXT: Record<'iam' | 'jwt' | 'public', Record<string, string>> = {
  iam: {},
  jwt: {
    access: 'jwt',
    jwtIssuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE',
    jwtAudience: 'example-client-id',
  },
  public: { access: 'public' },
};

export const FUNCTION_NAMES = ['get-messages', 'post-message', 'delete-messages'];
/** The logical id of CDK's AwsCustomResource provider function (one per stack that uses it). */
export const SDK_CALL_PROVIDER_ID = 'AWS679f53fac002430cb0da5b7982bd22872D164C4C';
export const BASE_STACK = 'EfsMessages-base';
export const functionStackName = (binary: string) => `EfsMessages-${binary}`;

export interface Synthesized {
  readonly app: App;
  readonly built: MessagesApp;
  readonly assembly: CloudAssembly;
  readonly outdir: string;
  /** Stack name -> parsed template. */
  readonly templates: Record<string, any>;
  /** Stack name -> the template file's exact text. */
  readonly templateText: Record<string, string>;
}

const tempDirs: string[] = [];

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of tempDirs.splice(0)) {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Synthesises the whole app in-process, as `cdk synth` would, with cdk-nag registered (so an
 * unacknowledged finding throws here) and, unless `bundle` is set, without building any Rust code
 * (CDK's own `aws:cdk:bundling-stacks = []` context).
 */
export function synth(
  options: {
    context?: Record<string, unknown>;
    workspaceRoot?: string;
    bundle?: boolean;
    /** Changes the built app before it is synthesised (e.g. a base resource's property). */
    mutate?: (built: MessagesApp) => void;
  } = {},
): Synthesized {
  const outdir = tempDir('efs-messages-cdk-');
  const app = new App({
    outdir,
    context: {
      ...cdkJsonContext(),
      ...(options.bundle ? {} : { [BUNDLING_STACKS]: [] }),
      ...(options.workspaceRoot ? { workspaceRoot: options.workspaceRoot } : {}),
      // A test's settings (access mode, throttles, ...) are deliberate changes of the recorded
      // ones (infra/deployments.json); settings.test.ts checks what happens without this.
      [CHANGE_SETTINGS]: 'true',
      ...options.context,
    },
  });
  const built = buildMessagesApp(app);
  options.mutate?.(built);
  const assembly = app.synth();
  const templates: Record<string, any> = {};
  const templateText: Record<string, string> = {};
  for (const stack of assembly.stacks) {
    const text = readFileSync(join(outdir, stack.templateFile), 'utf8');
    templateText[stack.stackName] = text;
    templates[stack.stackName] = JSON.parse(text);
  }
  return { app, built, assembly, outdir, templates, templateText };
}

/**
 * A copy of the Cargo workspace's sources (root manifest, lock file and member crates, without
 * build output) in a temporary directory, to change code without touching the real one.
 */
export function copyWorkspace(): string {
  const dest = tempDir('efs-messages-ws-');
  const root = DEFAULT_WORKSPACE_ROOT;
  for (const file of ['Cargo.toml', 'Cargo.lock', 'rust-toolchain.toml', '.cargo']) {
    if (existsSync(join(root, file))) {
      cpSync(join(root, file), join(dest, file), { recursive: true });
    }
  }
  const manifest = parse(readFileSync(join(root, 'Cargo.toml'), 'utf8')) as Record<string, unknown>;
  for (const dir of workspaceMembers(root, manifest)) {
    cpSync(join(root, dir), join(dest, dir), {
      recursive: true,
      filter: (src) => !/[\\/](target|node_modules)([\\/]|$)/.test(src.slice(root.length)),
    });
  }
  return dest;
}

/** All resources of one type in a template, as [logicalId, resource] pairs. */
export function resourcesOfType(template: any, type: string): Array<[string, any]> {
  return Object.entries(template.Resources ?? {}).filter(([, r]: [string, any]) => r.Type === type) as Array<
    [string, any]
  >;
}

/** Every IAM-style policy statement anywhere in a template (role, policy, EFS file-system policy). */
export function allStatements(node: unknown, out: any[] = []): any[] {
  if (Array.isArray(node)) {
    node.forEach((n) => allStatements(n, out));
  } else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'Statement' && Array.isArray(value)) {
        out.push(...value);
      }
      allStatements(value, out);
    }
  }
  return out;
}

export const asList = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

/**
 * An `Fn::Join` of literals and `{Ref}`s as one string, `Ref`s as `${Name}` placeholders. Another
 * intrinsic is an error when `strict`, else a `${<its JSON>}` placeholder.
 */
export function renderJoin(value: any, strict: boolean): string {
  if (typeof value === 'string') {
    return value;
  }
  if (value?.Ref) {
    return `\${${value.Ref}}`;
  }
  if (value?.['Fn::Join']) {
    const [sep, parts] = value['Fn::Join'];
    return parts.map((part: any) => renderJoin(part, strict)).join(sep);
  }
  if (strict) {
    throw new Error(`cannot render ${JSON.stringify(value)}`);
  }
  return `\${${JSON.stringify(value)}}`;
}

/**
 * A string property built with `Fn::Join` (e.g. a custom resource's JSON-encoded SDK call) as one
 * string, with placeholders free of quotes and backslashes, so JSON inside it still parses:
 * `${Name}` for a `Ref`, `${Name.Attr}` for a `Fn::GetAtt`, `${Output:OutputName}` for a weak
 * cross-stack reference.
 */
export function renderIntrinsics(value: any): string {
  if (typeof value === 'string') {
    return value;
  }
  if (value?.Ref) {
    return `\${${value.Ref}}`;
  }
  if (value?.['Fn::GetAtt']) {
    return `\${${value['Fn::GetAtt'].join('.')}}`;
  }
  if (value?.['Fn::GetStackOutput']) {
    return `\${Output:${value['Fn::GetStackOutput'].OutputName}}`;
  }
  if (value?.['Fn::Join']) {
    const [sep, parts] = value['Fn::Join'];
    return parts.map(renderIntrinsics).join(sep);
  }
  throw new Error(`cannot render ${JSON.stringify(value)}`);
}

/** The SDK call (`Create`, `Update` or `Delete`) of a CDK AwsCustomResource, parsed. */
export function sdkCall(resource: any, which: 'Create' | 'Update' | 'Delete'): any {
  return JSON.parse(renderIntrinsics(resource.Properties[which]));
}

/** A stack's AwsCustomResource provider: its own role (no managed policy), logs to its own group with retention. */
export function expectSdkCallProvider(json: any): void {
  const provider = json.Resources[SDK_CALL_PROVIDER_ID];
  expect(provider.Type).toBe('AWS::Lambda::Function');
  expect(provider.Properties.Runtime).toMatch(/^nodejs\d+\.x$/);
  const roleId = provider.Properties.Role['Fn::GetAtt'][0];
  const role = json.Resources[roleId];
  expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
    { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
  ]);
  const logGroupId = provider.Properties.LoggingConfig.LogGroup.Ref;
  expect(json.Resources[logGroupId].Properties.RetentionInDays).toBe(7);
  const [[, defaultPolicy]] = resourcesOfType(json, 'AWS::IAM::Policy').filter(
    ([id, p]) => id.startsWith('SdkCallsRoleDefaultPolicy') && JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]),
  );
  expect(defaultPolicy.Properties.PolicyDocument.Statement).toEqual([
    { Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Effect: 'Allow', Resource: { 'Fn::GetAtt': [logGroupId, 'Arn'] } },
  ]);
}

/**
 * The logical id of the base stack's output that the function stacks read for `name` (`ApiId`,
 * `AccessPointArn`, ...): the name and a digest of the identity of the resource (BaseValueOutputs).
 */
export function baseValueOutput(baseTemplate: any, name: string): string {
  const pattern = new RegExp(`^${name}[0-9a-f]{${IDENTITY_SUFFIX_LENGTH}}$`);
  const ids = Object.keys(baseTemplate.Outputs ?? {}).filter((id) => pattern.test(id));
  if (ids.length !== 1) {
    throw new Error(`expected one base output ${name}<digest>, found ${JSON.stringify(ids)}`);
  }
  return ids[0];
}

/** `Fn::GetStackOutput` of a base stack output, as a function stack renders it. */
export function baseOutputRef(outputName: string): any {
  return { 'Fn::GetStackOutput': { StackName: BASE_STACK, Region: { Ref: 'AWS::Region' }, OutputName: outputName } };
}
