import { Annotations, App, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ApiAccess, parseAccess } from './access';
import { DEFAULT_STORAGE_ALARM_GIB, parseAlarmEmail } from './alarms';
import { DEFAULT_ROUTE_THROTTLES, DEFAULT_STAGE_THROTTLE, RouteThrottles, THROTTLED_METHODS, ThrottleLimit } from './api';
import { parseMonthlyBudget } from './budget';
import { DeploymentStyle, parseDeploymentStyle, parseSkipCanary, SKIP_CANARY } from './deployment';
import { DEFAULT_MESSAGE_RETENTION_DAYS, FUNCTION_TIMEOUT, MAX_MESSAGE_RETENTION_DAYS, MIN_RESERVED_CONCURRENCY } from './function';
import { addGitHubDeployRole } from './github-deploy-role';
import {
  CHANGE_SETTINGS,
  contextValue,
  describeChanges,
  resolveSettings,
  ResolvedSettings,
  SETTING_KEYS,
  SettingKey,
} from './settings';
import { BaseStack, FunctionStack } from './stacks';
import { parseStorage, StorageKind } from './storage-kind';
import { DEFAULT_WORKSPACE_ROOT, loadWorkspace, Workspace } from './workspace';

/** Settings read from CDK context (`cdk.json` or `-c key=value`). */
export interface MessagesAppSettings {
  /** Cargo workspace root. Context `workspaceRoot`. @default the parent of infra/ */
  readonly workspaceRoot: string;
  /** Stack names are `<prefix>-base` and `<prefix>-<binary>`. Context `stackPrefix`. */
  readonly stackPrefix: string;
  /** Context `removalPolicy`: `destroy` (default) or `retain`. */
  readonly removalPolicy: RemovalPolicy;
  /** Context `reservedConcurrency`: a whole number of at least 1, or `none` (the default). */
  readonly reservedConcurrency: number | undefined;
  /**
   * Context `throttleRateLimit` (default 50) and `throttleBurstLimit` (default 100): the stage's
   * default route throttle, which every route without a throttle of its own gets, and the most any
   * route's own throttle may be set to.
   */
  readonly throttleRateLimit: number;
  readonly throttleBurstLimit: number;
  /**
   * Each route's own throttle, by method: context `getRateLimit`/`getBurstLimit` (default 10/20),
   * `postRateLimit`/`postBurstLimit` (1/10), `deleteRateLimit`/`deleteBurstLimit` (1/5).
   */
  readonly routeThrottles: RouteThrottles;
  /** Context `retentionDays` (default 30, `0` keeps everything): MESSAGE_RETENTION_DAYS. */
  readonly retentionDays: number;
  /** Context `monthlyBudgetUsd`: an AWS Budgets cost budget notifying the alarm topic. @default none */
  readonly monthlyBudgetUsd: number | undefined;
  /** Context `logRetentionDays` (default 7): one of CloudWatch's allowed values. */
  readonly logRetention: logs.RetentionDays;
  /**
   * Context `access`: `iam` (default, SigV4), `jwt` (with `jwtIssuer` and `jwtAudience`) or
   * `public` (open to the internet: an explicit choice).
   */
  readonly access: ApiAccess;
  /** Context `deployment`: `canary` (default: 10 % for 5 minutes), `linear` or `allAtOnce`. */
  readonly deployment: DeploymentStyle;
  /** Context `alarmEmail`: an address subscribed to the alarm topic. @default none */
  readonly alarmEmail: string | undefined;
  /** Context `storageAlarmGiB` (default 10): the storage alarm's threshold. */
  readonly storageAlarmGiB: number;
  /** Context `storage`: `efs` (default) or `s3files` (Amazon S3 Files and its bucket). */
  readonly storage: StorageKind;
  /**
   * Where the values came from: the deployment's recorded settings (`infra/deployments.json`)
   * and the `-c` values that change them (only with `-c changeSettings=true`).
   */
  readonly source?: ResolvedSettings;
}

export interface MessagesApp {
  readonly workspace: Workspace;
  readonly base: BaseStack;
  /** One stack per function, keyed by binary name. */
  readonly functionStacks: Map<string, FunctionStack>;
}

/** A setting's raw value for this synth (`-c`, else the recorded one), `undefined` for the default. */
type Lookup = (key: SettingKey) => string | undefined;

function contextNumber(get: Lookup, key: SettingKey, fallback: number): number {
  const raw = get(key);
  if (raw === undefined) {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`context '${key}' must be a non-negative integer, got '${raw}'`);
  }
  return value;
}

function positive(value: number, key: string): number {
  if (value <= 0) {
    throw new Error(`context '${key}' must be a positive integer, got '${value}'`);
  }
  return value;
}

/** Context `key` as a whole number from `min` to `max`. */
function contextInteger(get: Lookup, key: SettingKey, fallback: number, min: number, max: number): number {
  const raw = get(key);
  if (raw === undefined) {
    return fallback;
  }
  const value = Number(raw.trim());
  if (raw.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    throw new Error(`context '${key}' must be a whole number from ${min} to ${max}, got '${raw}'`);
  }
  return value;
}

/**
 * The stage's default throttle and each method's route throttle, validated: every limit a whole
 * number of at least 1, and no route set above the stage's default (its ceiling). A route left at
 * its default is lowered to the ceiling when the stage's default is set below it.
 */
function readThrottles(get: Lookup): { stage: ThrottleLimit; routes: RouteThrottles } {
  const stage: ThrottleLimit = {
    rateLimit: contextInteger(get, 'throttleRateLimit', DEFAULT_STAGE_THROTTLE.rateLimit, 1, Number.MAX_SAFE_INTEGER),
    burstLimit: contextInteger(get, 'throttleBurstLimit', DEFAULT_STAGE_THROTTLE.burstLimit, 1, Number.MAX_SAFE_INTEGER),
  };
  const routes = Object.fromEntries(
    THROTTLED_METHODS.map((method) => {
      const prefix = method.toLowerCase();
      const fallback = DEFAULT_ROUTE_THROTTLES[method];
      const limit: ThrottleLimit = {
        rateLimit: contextInteger(get, `${prefix}RateLimit` as SettingKey, Math.min(fallback.rateLimit, stage.rateLimit), 1, stage.rateLimit),
        burstLimit: contextInteger(get, `${prefix}BurstLimit` as SettingKey, Math.min(fallback.burstLimit, stage.burstLimit), 1, stage.burstLimit),
      };
      return [method, limit];
    }),
  ) as RouteThrottles;
  return { stage, routes };
}

/** The CDK context key that lists the stacks whose assets get bundled (CDK's own). */
export const BUNDLING_STACKS = 'aws:cdk:bundling-stacks';

/**
 * `-c skipBundling=true`: synthesise without building any Rust binary (tests, cfn-lint, a quick
 * `cdk synth`/`cdk diff`). It sets CDK's `aws:cdk:bundling-stacks` context to `[]`, which the CLI
 * no longer accepts on its command line (`-c aws:...` keys are reserved). Such an assembly has a
 * placeholder as function code, under a key no real build has, and every function stack carries a
 * rule that makes CloudFormation refuse to deploy it (lib/code.ts).
 */
export function applySkipBundling(app: App): boolean {
  const flag = app.node.tryGetContext('skipBundling');
  if (flag !== true && flag !== 'true') {
    return false;
  }
  app.node.setContext(BUNDLING_STACKS, []);
  return true;
}

/**
 * Context `reservedConcurrency`: `none` (the default: nothing reserved, so a new account with a
 * low concurrency quota can deploy) or a whole number of at least 1 (0 would refuse every request).
 */
export function parseReservedConcurrency(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim().toLowerCase() === 'none') {
    return undefined;
  }
  const value = Number(raw.trim());
  if (raw.trim() === '' || !Number.isInteger(value) || value < MIN_RESERVED_CONCURRENCY) {
    throw new Error(`context 'reservedConcurrency' must be 'none' or a whole number of at least ${MIN_RESERVED_CONCURRENCY}, got '${raw}'`);
  }
  return value;
}

/** The settings as `infra/deployments.json` records them, defaults filled in: what a synth deploys. */
export function settingsRecord(settings: MessagesAppSettings): Record<SettingKey, string | number | null> {
  const { access, routeThrottles: routes } = settings;
  return {
    removalPolicy: settings.removalPolicy === RemovalPolicy.RETAIN ? 'retain' : 'destroy',
    reservedConcurrency: settings.reservedConcurrency ?? 'none',
    throttleRateLimit: settings.throttleRateLimit,
    throttleBurstLimit: settings.throttleBurstLimit,
    getRateLimit: routes.GET.rateLimit,
    getBurstLimit: routes.GET.burstLimit,
    postRateLimit: routes.POST.rateLimit,
    postBurstLimit: routes.POST.burstLimit,
    deleteRateLimit: routes.DELETE.rateLimit,
    deleteBurstLimit: routes.DELETE.burstLimit,
    retentionDays: settings.retentionDays,
    monthlyBudgetUsd: settings.monthlyBudgetUsd ?? null,
    logRetentionDays: settings.logRetention,
    access: access.mode,
    jwtIssuer: access.mode === 'jwt' ? access.issuer : null,
    jwtAudience: access.mode === 'jwt' ? access.audience.join(',') : null,
    deployment: settings.deployment,
    alarmEmail: settings.alarmEmail ?? null,
    storageAlarmGiB: settings.storageAlarmGiB,
    storage: settings.storage,
  };
}

/** The settings the base stack reads. */
export const BASE_SETTING_KEYS: readonly SettingKey[] = [
  'removalPolicy',
  'throttleRateLimit',
  'throttleBurstLimit',
  'logRetentionDays',
  'access',
  'monthlyBudgetUsd',
  'alarmEmail',
  'storageAlarmGiB',
  'storage',
];

/** The settings a function stack reads: its routes' methods decide which route throttles. */
export function functionSettingKeys(methods: readonly string[]): SettingKey[] {
  const own = THROTTLED_METHODS.filter((m) => methods.includes(m)).flatMap((m) => [
    `${m.toLowerCase()}RateLimit` as SettingKey,
    `${m.toLowerCase()}BurstLimit` as SettingKey,
  ]);
  const keys: SettingKey[] = ['removalPolicy', 'reservedConcurrency', 'throttleRateLimit', 'throttleBurstLimit', ...own];
  // `storage`: the file system each function mounts and the grants it gets.
  keys.push('retentionDays', 'logRetentionDays', 'access', 'jwtIssuer', 'jwtAudience', 'deployment', 'storage');
  return SETTING_KEYS.filter((k) => keys.includes(k));
}

function pick<T>(record: Record<SettingKey, T>, keys: readonly SettingKey[]): Partial<Record<SettingKey, T>> {
  return Object.fromEntries(keys.map((k) => [k, record[k]]));
}

/** Reads the app's settings from context, with the documented defaults. */
export function readSettings(app: App): MessagesAppSettings {
  // The deployment's recorded settings, and the -c values given (which must agree with them
  // unless -c changeSettings=true: see lib/settings.ts).
  const source = resolveSettings(app);
  const get: Lookup = source.lookup;
  const removal = (get('removalPolicy') ?? 'destroy').toLowerCase();
  if (removal !== 'destroy' && removal !== 'retain') {
    throw new Error(`context 'removalPolicy' must be 'destroy' or 'retain', got '${removal}'`);
  }
  const reserved = get('reservedConcurrency');
  const logRetentionDays = contextNumber(get, 'logRetentionDays', 7);
  if (!(Object.values(logs.RetentionDays) as unknown[]).includes(logRetentionDays)) {
    throw new Error(`context 'logRetentionDays' is not a CloudWatch Logs retention period: ${logRetentionDays}`);
  }
  const throttles = readThrottles(get);
  return {
    workspaceRoot: contextValue(app, 'workspaceRoot') ?? DEFAULT_WORKSPACE_ROOT,
    stackPrefix: source.prefix,
    removalPolicy: removal === 'retain' ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    reservedConcurrency: parseReservedConcurrency(reserved),
    throttleRateLimit: throttles.stage.rateLimit,
    throttleBurstLimit: throttles.stage.burstLimit,
    routeThrottles: throttles.routes,
    retentionDays: contextInteger(get, 'retentionDays', DEFAULT_MESSAGE_RETENTION_DAYS, 0, MAX_MESSAGE_RETENTION_DAYS),
    monthlyBudgetUsd: parseMonthlyBudget(get('monthlyBudgetUsd')),
    logRetention: logRetentionDays as logs.RetentionDays,
    access: parseAccess(get('access'), get('jwtIssuer'), get('jwtAudience')),
    deployment: parseDeploymentStyle(get('deployment')),
    alarmEmail: parseAlarmEmail(get('alarmEmail')),
    storageAlarmGiB: positive(contextNumber(get, 'storageAlarmGiB', DEFAULT_STORAGE_ALARM_GIB), 'storageAlarmGiB'),
    storage: parseStorage(get('storage')),
    source,
  };
}

/**
 * Builds the whole app: a base stack and one stack per function named in the workspace's route
 * table, all checked by cdk-nag's AWS Solutions pack during synthesis.
 */
export function buildMessagesApp(app: App, settings: MessagesAppSettings = readSettings(app)): MessagesApp {
  applySkipBundling(app);
  const workspace = loadWorkspace(settings.workspaceRoot);

  // Fixed function names, so the base stack's dashboard finds them without a reference to the
  // function stacks. Lambda allows 64 characters: letters, digits, '-' and '_'.
  const functionName = (binary: string) => {
    const name = `${settings.stackPrefix}-${binary}`;
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
      throw new Error(`function name '${name}' (context 'stackPrefix' + binary) must be at most 64 letters, digits, '-' or '_'`);
    }
    return name;
  };
  // What this synth deploys, as deployments.json records it: each stack states the part it reads
  // (output `Settings`), so a change of a setting touches only the stacks that use it.
  const recorded = settingsRecord(settings);
  const base = new BaseStack(app, `${settings.stackPrefix}-base`, {
    deploymentName: settings.stackPrefix,
    description: `Messages API: VPC (no NAT), encrypted ${settings.storage === 'efs' ? 'EFS' : 'S3 Files (with its versioned bucket)'} + access point, HTTP API stage and access logs`,
    removalPolicy: settings.removalPolicy,
    throttleRateLimit: settings.throttleRateLimit,
    throttleBurstLimit: settings.throttleBurstLimit,
    logRetention: settings.logRetention,
    access: settings.access,
    routes: workspace.routes,
    functions: workspace.functions.map((fn) => ({
      binaryName: fn.binaryName,
      functionName: functionName(fn.binaryName),
      timeout: FUNCTION_TIMEOUT,
    })),
    alarmEmail: settings.alarmEmail,
    storageAlarmGiB: settings.storageAlarmGiB,
    monthlyBudgetUsd: settings.monthlyBudgetUsd,
    storage: settings.storage,
    settings: pick(recorded, BASE_SETTING_KEYS),
  });
  const source = settings.source;
  if (source && source.changes.length > 0) {
    Annotations.of(base).addWarningV2(
      '@efs-messages:settingsChanged',
      `${CHANGE_SETTINGS}=true: this deploy changes deployment '${source.prefix}' from its recorded settings (${source.file}):\n` +
        `${describeChanges(source.changes)}\nRecord them there and commit, or the next deploy without these -c options puts the recorded values back.`,
    );
  } else if (source && !source.recorded) {
    Annotations.of(base).addWarningV2(
      '@efs-messages:settingsNotRecorded',
      `deployment '${source.prefix}' has no settings in ${source.file}: the app's defaults apply. ` +
        `Record them there (the stacks' Settings outputs say what this deploy used), so that later deploys keep them.`,
    );
  }

  // A flag of this one command (not a recorded setting), the same for every function stack.
  const skipCanary = parseSkipCanary(app.node.tryGetContext(SKIP_CANARY));
  const functionStacks = new Map<string, FunctionStack>();
  for (const fn of workspace.functions) {
    const stack = new FunctionStack(app, `${settings.stackPrefix}-${fn.binaryName}`, {
      description: `Messages API: the ${fn.binaryName} Lambda function and its routes`,
      base,
      deploymentName: settings.stackPrefix,
      fn,
      manifestPath: workspace.manifestPath,
      reservedConcurrency: settings.reservedConcurrency,
      logRetention: settings.logRetention,
      removalPolicy: settings.removalPolicy,
      access: settings.access,
      functionName: functionName(fn.binaryName),
      deployment: settings.deployment,
      skipCanary,
      retentionDays: settings.retentionDays,
      routeThrottles: settings.routeThrottles,
      settings: pick(recorded, functionSettingKeys(fn.routes.map((r) => r.method))),
    });
    functionStacks.set(fn.binaryName, stack);
  }

  // Context `githubRepository` adds the role GitHub Actions deploy with (README, 'Deploy from GitHub').
  addGitHubDeployRole(app, settings.stackPrefix);

  // Every stack is checked; an unacknowledged finding fails `cdk synth` (and so `cdk deploy`).
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));

  return { workspace, base, functionStacks };
}
