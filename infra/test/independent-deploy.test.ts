import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  ACCESS_CONTEXT,
  BASE_STACK,
  copyWorkspace,
  FUNCTION_NAMES,
  functionStackName,
  resourcesOfType,
  SDK_CALL_PROVIDER_ID,
  synth,
} from './helpers';

/** Appends a comment to one Rust source file of a crate: a code change that builds the same. */
function touchCrate(root: string, crateDir: string): string {
  const src = join(root, crateDir, 'src');
  const file = join(src, readdirSync(src).filter((f) => f.endsWith('.rs')).sort()[0]);
  appendFileSync(file, '\n// a code change\n');
  return file;
}

const codeKey = (template: any) => resourcesOfType(template, 'AWS::Lambda::Function')[0][1].Properties.Code.S3Key;

/** The zip assets a stack publishes, but CDK's own prebuilt SDK-call provider (checked here: the same everywhere). */
function functionZips(result: ReturnType<typeof synth>, stackName: string): any[] {
  const stack = result.assembly.getStackByName(stackName);
  const assetManifest = stack.dependencies.find((d) => d.id === `${stack.id}.assets`) as any;
  const zips = (Object.values(assetManifest.contents.files ?? {}) as any[]).filter((f) => f.source.packaging === 'zip');
  const provider = zips.filter((f) => f.displayName === `${SDK_CALL_PROVIDER_UUID}/Code`);
  expect(provider).toHaveLength(1);
  const providerKey = resourcesOfType(result.templates[stackName], 'AWS::Lambda::Function').find(([id]) => id === SDK_CALL_PROVIDER_ID)![1]
    .Properties.Code.S3Key;
  expect(Object.values(provider[0].destinations).map((d: any) => d.objectKey)).toEqual([providerKey]);
  return zips.filter((f) => !provider.includes(f));
}
const SDK_CALL_PROVIDER_UUID = 'AWS679f53fac002430cb0da5b7982bd2287';

describe('independent deploys: changing one function\'s code changes only its stack', () => {
  const root = copyWorkspace();
  const before = synth({ workspaceRoot: root });
  touchCrate(root, 'functions/get');
  const after = synth({ workspaceRoot: root });

  test('the synthesized stacks are the base stack and one per function', () => {
    expect(Object.keys(after.templateText).sort()).toEqual([BASE_STACK, ...FUNCTION_NAMES.map(functionStackName)].sort());
  });

  test('the get-messages stack changed: its code asset, hence a new version, which the live alias deploys', () => {
    const name = functionStackName('get-messages');
    expect(after.templateText[name]).not.toEqual(before.templateText[name]);
    expect(codeKey(after.templates[name])).not.toEqual(codeKey(before.templates[name]));
    const [[versionBefore]] = resourcesOfType(before.templates[name], 'AWS::Lambda::Version');
    const [[versionAfter]] = resourcesOfType(after.templates[name], 'AWS::Lambda::Version');
    // A new version resource: CloudFormation publishes it, and CodeDeploy shifts `live` to it.
    expect(versionAfter).not.toEqual(versionBefore);
    const [[, alias]] = resourcesOfType(after.templates[name], 'AWS::Lambda::Alias');
    expect(alias.Properties.FunctionVersion).toEqual({ 'Fn::GetAtt': [versionAfter, 'Version'] });
    expect(alias.UpdatePolicy.CodeDeployLambdaAliasUpdate).toBeDefined();
    // Apart from the asset key (and its mention in the asset metadata), the version's logical id
    // and the name of its errors alarm, the templates are equal: same deployment group, alarms,
    // routes and permissions.
    const normalise = (t: any) => {
      const [[version]] = resourcesOfType(t, 'AWS::Lambda::Version');
      return JSON.stringify(t)
        .split(codeKey(t).replace(/\.zip$/, ''))
        .join('<asset>')
        .split(version)
        .join('<version>')
        .replace(/-errors-[0-9a-f]{16}"/, '-errors-<version>"');
    };
    expect(normalise(after.templates[name])).toEqual(normalise(before.templates[name]));
  });

  test('the new version gets a new errors alarm (it starts without data, not in the old one\'s state), which the deployment group watches', () => {
    const name = functionStackName('get-messages');
    const errorsAlarm = (t: any) => {
      const [[id, alarm]] = resourcesOfType(t, 'AWS::CloudWatch::Alarm').filter(([alarmId]) => alarmId.startsWith('AlarmsErrors'));
      return { id, name: alarm.Properties.AlarmName };
    };
    const [b, a] = [errorsAlarm(before.templates[name]), errorsAlarm(after.templates[name])];
    // Same logical id, another AlarmName: CloudFormation replaces it (a new alarm).
    expect(a.id).toBe(b.id);
    expect(a.name).not.toBe(b.name);
    const [[, group]] = resourcesOfType(after.templates[name], 'AWS::CodeDeploy::DeploymentGroup');
    expect(group.Properties.AlarmConfiguration.Alarms).toEqual([{ Name: { Ref: a.id } }]);
    // The other functions' alarms are untouched.
    for (const other of ['post-message', 'delete-messages'].map(functionStackName)) {
      expect(errorsAlarm(after.templates[other]).name).toBe(errorsAlarm(before.templates[other]).name);
    }
  });

  test('every other stack template is byte-identical', () => {
    for (const name of [BASE_STACK, functionStackName('post-message'), functionStackName('delete-messages')]) {
      expect(after.templateText[name]).toEqual(before.templateText[name]);
    }
  });

  test('each function stack publishes only its own code asset (and CDK\'s prebuilt SDK-call provider)', () => {
    for (const binary of FUNCTION_NAMES) {
      const name = functionStackName(binary);
      const zips = functionZips(after, name);
      expect(zips).toHaveLength(1);
      expect(Object.values(zips[0].destinations).map((d: any) => d.objectKey)).toEqual([codeKey(after.templates[name])]);
    }
  });

  let shared: ReturnType<typeof synth>;

  test('a change to the shared crate changes every function stack, but never the base stack', () => {
    touchCrate(root, 'shared');
    shared = synth({ workspaceRoot: root });
    expect(shared.templateText[BASE_STACK]).toEqual(after.templateText[BASE_STACK]);
    for (const binary of FUNCTION_NAMES) {
      const name = functionStackName(binary);
      expect(codeKey(shared.templates[name])).not.toEqual(codeKey(after.templates[name]));
    }
  });

  test('a change to a test crate (efs-model, test-support, conformance) changes no template at all', () => {
    for (const crate of ['efs-model', 'test-support', 'conformance']) {
      touchCrate(root, crate);
    }
    const tests = synth({ workspaceRoot: root });
    expect(Object.keys(tests.templateText).sort()).toEqual(Object.keys(shared.templateText).sort());
    for (const name of Object.keys(shared.templateText)) {
      expect([name, tests.templateText[name]]).toEqual([name, shared.templateText[name]]);
    }
  });
});

describe('independent deploys: changing `access` moves the routes, never the binaries', () => {
  const modes = Object.fromEntries(
    (Object.keys(ACCESS_CONTEXT) as Array<keyof typeof ACCESS_CONTEXT>).map((mode) => [mode, synth({ context: ACCESS_CONTEXT[mode] })]),
  );
  const zipKeys = (result: ReturnType<typeof synth>, binary: string): string[] =>
    functionZips(result, functionStackName(binary)).flatMap((f) => Object.values(f.destinations).map((d: any) => d.objectKey));

  test.each(FUNCTION_NAMES)('%s: the same code asset in iam, jwt and public mode', (binary) => {
    const name = functionStackName(binary);
    const keys = Object.values(modes).map((m) => codeKey(m.templates[name]));
    expect(keys[0]).toMatch(/^[0-9a-f]{64}\.zip$/);
    expect(new Set(keys).size).toBe(1);
    const published = Object.values(modes).map((m) => zipKeys(m, binary));
    expect(published[0]).toEqual([keys[0]]);
    for (const p of published) {
      expect(p).toEqual(published[0]);
    }
  });

  test.each(FUNCTION_NAMES)('%s: only routes and authorizers differ between modes', (binary) => {
    const name = functionStackName(binary);
    const withoutAccess = (template: any) =>
      Object.entries(template.Resources)
        .filter(([, r]: [string, any]) => !['AWS::ApiGatewayV2::Route', 'AWS::ApiGatewayV2::Authorizer'].includes(r.Type))
        .map(([id, r]) => JSON.stringify([id, r]));
    const iam = withoutAccess(modes.iam.templates[name]);
    expect(iam.length).toBeGreaterThan(5);
    expect(withoutAccess(modes.jwt.templates[name])).toEqual(iam);
    expect(withoutAccess(modes.public.templates[name])).toEqual(iam);
  });
});
