import { App } from 'aws-cdk-lib';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * The deployment settings (infra/README.md, "Settings"): the context keys that say how one
 * deployment is configured. Each deployment (stack prefix) records its values in
 * `infra/deployments.json`, in the repository, so that a deploy without `-c` options deploys what
 * was deployed before, and a `-c` option that differs from the recorded value stops synthesis
 * unless `-c changeSettings=true` says the change is meant.
 */
export const SETTING_KEYS = [
  'removalPolicy',
  'reservedConcurrency',
  'throttleRateLimit',
  'throttleBurstLimit',
  'getRateLimit',
  'getBurstLimit',
  'postRateLimit',
  'postBurstLimit',
  'deleteRateLimit',
  'deleteBurstLimit',
  'retentionDays',
  'monthlyBudgetUsd',
  'logRetentionDays',
  'access',
  'jwtIssuer',
  'jwtAudience',
  'deployment',
  'alarmEmail',
  'storageAlarmGiB',
  'storage',
] as const;
export type SettingKey = (typeof SETTING_KEYS)[number];

/** The stack prefix when context `stackPrefix` is not given: the deployment's name. */
export const DEFAULT_STACK_PREFIX = 'EfsMessages';
/** Context key: the file of recorded settings (for tests). @default infra/deployments.json */
export const DEPLOYMENTS_FILE = 'deploymentsFile';
export const DEFAULT_DEPLOYMENTS_FILE = join(__dirname, '..', 'deployments.json');
/** Context `changeSettings=true`: this synth may deploy settings other than the recorded ones. */
export const CHANGE_SETTINGS = 'changeSettings';

/** One setting whose given value (`-c`) differs from the recorded one. */
export interface SettingChange {
  readonly key: SettingKey;
  /** `undefined`: not recorded (the app's default applies). */
  readonly recorded: string | undefined;
  readonly given: string;
}

export interface ResolvedSettings {
  /** A setting's value for this synth: the `-c` value, else the recorded one, else `undefined` (the default). */
  readonly lookup: (key: SettingKey) => string | undefined;
  readonly prefix: string;
  /** The file the settings are recorded in, and whether it has an entry for this deployment. */
  readonly file: string;
  readonly recorded: boolean;
  /** Given values that differ from the recorded ones (only with `changeSettings=true`; else synth stops). */
  readonly changes: SettingChange[];
}

/** A context value as a string (the CLI's `-c` values are strings; cdk.json's may be numbers). */
export function contextValue(app: App, key: string): string | undefined {
  const value = app.node.tryGetContext(key);
  return value === undefined || value === null ? undefined : String(value);
}

/** `{ prefix: { key: value | null } }`: `null` (or absent) means the app's default. */
export type Deployments = Record<string, Partial<Record<SettingKey, string | number | null>>>;

/** Reads and checks the recorded settings: every key must be a setting (a typo would go unnoticed). */
export function loadDeployments(file: string): Deployments {
  if (!existsSync(file)) {
    return {};
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not JSON: ${(err as Error).message}`);
  }
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(parsed)) {
    throw new Error(`${file}: expected an object of deployments (stack prefix -> settings)`);
  }
  for (const [prefix, entry] of Object.entries(parsed)) {
    if (!isObject(entry)) {
      throw new Error(`${file}: deployment '${prefix}' must be an object of settings`);
    }
    for (const [key, value] of Object.entries(entry)) {
      if (!(SETTING_KEYS as readonly string[]).includes(key)) {
        throw new Error(`${file}: deployment '${prefix}': '${key}' is not a setting (settings: ${SETTING_KEYS.join(', ')})`);
      }
      if (value !== null && typeof value !== 'string' && typeof value !== 'number') {
        throw new Error(`${file}: deployment '${prefix}': '${key}' must be a string, a number or null`);
      }
    }
  }
  return parsed as Deployments;
}

const recordedValue = (value: string | number | null | undefined): string | undefined =>
  value === null || value === undefined ? undefined : String(value);

/**
 * The settings of this synth: the deployment's recorded settings, with the `-c` values given.
 * A `-c` value that differs from the recorded one (or is given where none is recorded) is a change
 * of the deployment: without `-c changeSettings=true` this throws, saying what would change and
 * how to record it.
 */
export function resolveSettings(app: App): ResolvedSettings {
  const prefix = contextValue(app, 'stackPrefix') ?? DEFAULT_STACK_PREFIX;
  const file = contextValue(app, DEPLOYMENTS_FILE) ?? DEFAULT_DEPLOYMENTS_FILE;
  const deployments = loadDeployments(file);
  const entry = deployments[prefix];
  const changes: SettingChange[] = [];
  for (const key of SETTING_KEYS) {
    const given = contextValue(app, key);
    const recorded = recordedValue(entry?.[key]);
    if (given !== undefined && given.trim() !== recorded?.trim()) {
      changes.push({ key, recorded, given });
    }
  }
  const allowed = ['true', true].includes(app.node.tryGetContext(CHANGE_SETTINGS));
  if (changes.length > 0 && !allowed) {
    throw new Error(
      `deployment '${prefix}': these -c options would change its recorded settings (${shortPath(file)}):\n` +
        describeChanges(changes) +
        `\nTo change them for good, record them in ${shortPath(file)} under "${prefix}" and commit it; ` +
        `to deploy them this once, add -c ${CHANGE_SETTINGS}=true (the next deploy without them puts the recorded values back).`,
    );
  }
  return {
    lookup: (key) => contextValue(app, key) ?? recordedValue(entry?.[key]),
    prefix,
    file,
    recorded: entry !== undefined,
    changes,
  };
}

/** One line per change: `  key: recorded -> given`. */
export function describeChanges(changes: readonly SettingChange[]): string {
  return changes.map((c) => `  ${c.key}: ${c.recorded ?? '(not recorded: the default)'} -> ${c.given}`).join('\n');
}

function shortPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel.startsWith('..') ? file : rel;
}
