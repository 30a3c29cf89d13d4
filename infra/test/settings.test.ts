// Issue 17, item 3: deployment settings are recorded in the repository (infra/deployments.json),
// a deploy without -c options deploys the recorded ones, a -c option that would change them stops
// synthesis unless -c changeSettings=true, and every stack states the settings it deployed.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BASE_SETTING_KEYS, functionSettingKeys } from '../lib/app';
import { DEFAULT_DEPLOYMENTS_FILE, SETTING_KEYS } from '../lib/settings';
import { ACCESS_CONTEXT, BASE_STACK, FUNCTION_NAMES, functionStackName, resourcesOfType, synth, tempDir } from './helpers';

const MODES = Object.keys(ACCESS_CONTEXT) as Array<keyof typeof ACCESS_CONTEXT>;
const REPO = join(__dirname, '..', '..');

/** A deployments file with these settings for the default deployment. */
function deploymentsFile(settings: Record<string, unknown>): string {
  const file = join(tempDir('efs-messages-settings-'), 'deployments.json');
  writeFileSync(file, JSON.stringify({ EfsMessages: settings }, null, 2));
  return file;
}

/** Synthesis as `cdk deploy` runs it: the recorded settings, the given -c values, no changeSettings unless given. */
const deploy = (file: string, context: Record<string, unknown> = {}) => synth({ context: { deploymentsFile: file, changeSettings: 'false', ...context } });

const settingsOf = (template: any) => JSON.parse(template.Outputs.Settings.Value);
const fileSystemOf = (template: any) => resourcesOfType(template, 'AWS::EFS::FileSystem')[0][1];
const authorizationTypes = (template: any) => resourcesOfType(template, 'AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties.AuthorizationType);
const AUTHORIZATION = { iam: 'AWS_IAM', jwt: 'JWT', public: 'NONE' } as const;
const warnings = (result: ReturnType<typeof synth>, id: string): string[] => {
  const report = JSON.parse(readFileSync(join(result.outdir, 'validation-report.json'), 'utf8'));
  return (report.pluginReports ?? [])
    .flatMap((r: any) => r.violations ?? [])
    .filter((v: any) => v.ruleName === `Annotation::@efs-messages:${id}`)
    .map((v: any) => v.description);
};

describe.each(MODES)('access=%s recorded in deployments.json', (mode) => {
  const recorded = {
    removalPolicy: 'retain',
    reservedConcurrency: 3,
    retentionDays: 7,
    storageAlarmGiB: 5,
    ...ACCESS_CONTEXT[mode],
    access: mode,
  };
  const file = deploymentsFile(recorded);
  const plain = deploy(file);

  test('a deploy without -c options deploys the recorded settings: the file system stays retained, the routes keep their mode', () => {
    const base = plain.templates[BASE_STACK];
    expect(fileSystemOf(base).DeletionPolicy).toBe('Retain');
    for (const binary of FUNCTION_NAMES) {
      const template = plain.templates[functionStackName(binary)];
      expect(new Set(authorizationTypes(template))).toEqual(new Set([AUTHORIZATION[mode]]));
      const [[, fn]] = resourcesOfType(template, 'AWS::Lambda::Function');
      expect(fn.Properties.ReservedConcurrentExecutions).toBe(3);
      expect(fn.Properties.Environment.Variables.MESSAGE_RETENTION_DAYS).toBe('7');
    }
    expect(warnings(plain, 'settingsChanged')).toEqual([]);
  });

  test('every stack states the settings it reads as its Settings output', () => {
    const base = settingsOf(plain.templates[BASE_STACK]);
    expect(Object.keys(base)).toEqual([...BASE_SETTING_KEYS]);
    expect(base).toMatchObject({ removalPolicy: 'retain', access: mode, storageAlarmGiB: 5 });
    for (const binary of FUNCTION_NAMES) {
      const template = plain.templates[functionStackName(binary)];
      const methods = resourcesOfType(template, 'AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties.RouteKey.split(' ')[0]);
      const own = settingsOf(template);
      expect(Object.keys(own)).toEqual(functionSettingKeys(methods));
      expect(own).toMatchObject({ removalPolicy: 'retain', reservedConcurrency: 3, retentionDays: 7, access: mode });
      if (mode === 'jwt') {
        expect(own).toMatchObject({ jwtIssuer: ACCESS_CONTEXT.jwt.jwtIssuer, jwtAudience: ACCESS_CONTEXT.jwt.jwtAudience });
      }
    }
  });

  test('-c removalPolicy=destroy would switch the file system back to delete-on-destroy: synthesis stops and says so', () => {
    expect(() => deploy(file, { removalPolicy: 'destroy' })).toThrow(
      /deployment 'EfsMessages': .*would change its recorded settings[\s\S]*removalPolicy: retain -> destroy[\s\S]*changeSettings=true/,
    );
  });

  test('a single-function deploy with another access mode stops and says so', () => {
    const other = mode === 'iam' ? 'public' : 'iam';
    expect(() => deploy(file, { access: other })).toThrow(new RegExp(`access: ${mode} -> ${other}`));
  });

  test('the recorded value given again changes nothing', () => {
    const again = deploy(file, { removalPolicy: 'retain', access: mode });
    for (const name of Object.keys(plain.templateText)) {
      expect([name, again.templateText[name]]).toEqual([name, plain.templateText[name]]);
    }
  });

  test('-c changeSettings=true deploys the change this once, and synthesis warns what it changes', () => {
    const changed = deploy(file, { removalPolicy: 'destroy', changeSettings: 'true' });
    expect(fileSystemOf(changed.templates[BASE_STACK]).DeletionPolicy).toBe('Delete');
    expect(settingsOf(changed.templates[BASE_STACK]).removalPolicy).toBe('destroy');
    const [warning] = warnings(changed, 'settingsChanged');
    expect(warning).toMatch(/removalPolicy: retain -> destroy/);
    expect(warning).toMatch(/the next deploy without these -c options puts the recorded values back/);
  });

  test('a setting only the base reads changes only the base stack; one only the functions read, only the function stacks', () => {
    const alarm = deploy(deploymentsFile({ ...recorded, storageAlarmGiB: 6 }));
    expect(alarm.templateText[BASE_STACK]).not.toEqual(plain.templateText[BASE_STACK]);
    const retention = deploy(deploymentsFile({ ...recorded, retentionDays: 8 }));
    expect(retention.templateText[BASE_STACK]).toEqual(plain.templateText[BASE_STACK]);
    for (const name of FUNCTION_NAMES.map(functionStackName)) {
      expect([name, alarm.templateText[name]]).toEqual([name, plain.templateText[name]]);
      expect(retention.templateText[name]).not.toEqual(plain.templateText[name]);
    }
  });
});

describe('infra/deployments.json', () => {
  const recorded = JSON.parse(readFileSync(DEFAULT_DEPLOYMENTS_FILE, 'utf8'));

  test('records every setting of the default deployment, and synthesis from it alone changes nothing and warns of nothing', () => {
    expect(Object.keys(recorded.EfsMessages)).toEqual([...SETTING_KEYS]);
    const result = synth({ context: { changeSettings: 'false' } });
    expect(warnings(result, 'settingsChanged')).toEqual([]);
    expect(warnings(result, 'settingsNotRecorded')).toEqual([]);
    // What the stacks say they deployed is what the file records (null: the app's default, which
    // the stacks state; the route throttles are left to it, so a lower stage default lowers them).
    const stated: Record<string, unknown> = { ...settingsOf(result.templates[BASE_STACK]) };
    for (const binary of FUNCTION_NAMES) {
      Object.assign(stated, settingsOf(result.templates[functionStackName(binary)]));
    }
    expect(Object.keys(stated).sort()).toEqual([...SETTING_KEYS].sort());
    for (const [key, value] of Object.entries(recorded.EfsMessages)) {
      if (value !== null || ['monthlyBudgetUsd', 'alarmEmail', 'jwtIssuer', 'jwtAudience'].includes(key)) {
        expect([key, stated[key]]).toEqual([key, value]);
      }
    }
    expect(stated).toMatchObject({ getRateLimit: 10, postRateLimit: 1, deleteRateLimit: 1 });
  });

  test('a key that is no setting (a typo) stops synthesis', () => {
    const file = deploymentsFile({ removalPolicy: 'retain', removalPolicies: 'retain' });
    expect(() => deploy(file)).toThrow(/'removalPolicies' is not a setting/);
  });

  test('a deployment with no entry gets the defaults, a warning, and its -c options count as changes', () => {
    const file = deploymentsFile({});
    const fresh = synth({ context: { deploymentsFile: file, changeSettings: 'false', stackPrefix: 'Staging' } });
    expect(warnings(fresh, 'settingsNotRecorded')[0]).toMatch(/deployment 'Staging' has no settings/);
    expect(() => synth({ context: { deploymentsFile: file, changeSettings: 'false', stackPrefix: 'Staging', retentionDays: '30' } })).toThrow(
      /retentionDays: \(not recorded: the default\) -> 30/,
    );
  });
});

describe('the deploy workflow agrees (.github/scripts/deploy, repository variables)', () => {
  const script = join(REPO, '.github', 'scripts', 'deploy');
  const contextArgs = (variables: Record<string, string>): Record<string, string> => {
    const out = execFileSync('python3', [script, 'context'], { encoding: 'utf8', env: { ...process.env, VARS_JSON: JSON.stringify(variables) } });
    const lines = out.split('\n').filter((l) => l !== '');
    const context: Record<string, string> = {};
    for (let i = 0; i < lines.length; i += 2) {
      expect(lines[i]).toBe('-c');
      const [key, ...value] = lines[i + 1].split('=');
      context[key] = value.join('=');
    }
    return context;
  };

  test('it has a variable for every setting (and the stack prefix)', () => {
    const source = readFileSync(script, 'utf8');
    const keys = [...source.matchAll(/^\s+"(\w+)": "CDK_\w+",$/gm)].map((m) => m[1]);
    expect([...keys].sort()).toEqual([...SETTING_KEYS, 'stackPrefix'].sort());
  });

  test('a variable that agrees with the recorded settings deploys; one that differs stops the deploy and says so', () => {
    const agreeing = contextArgs({ CDK_ACCESS: 'iam', CDK_REMOVAL_POLICY: 'destroy' });
    expect(agreeing).toEqual({ access: 'iam', removalPolicy: 'destroy' });
    expect(() => synth({ context: { changeSettings: 'false', ...agreeing } })).not.toThrow();
    const differing = contextArgs({ CDK_REMOVAL_POLICY: 'retain' });
    expect(() => synth({ context: { changeSettings: 'false', ...differing } })).toThrow(/removalPolicy: destroy -> retain/);
  });
});
