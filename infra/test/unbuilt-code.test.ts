import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { UNBUILT_CODE_MESSAGE } from '../lib/code';
import { ACCESS_CONTEXT, FUNCTION_NAMES, functionStackName, resourcesOfType, SDK_CALL_PROVIDER_ID, synth } from './helpers';

// Issue 17, item 5, in every access mode: a synthesis that did not build the functions (what the
// suite lints, `-c skipBundling=true`, or a stack the CLI was not asked to deploy) can never be
// deployed, and its placeholder key never depends on the access mode. (bundling.test.ts compares
// these keys with real builds through the CLI, in the default mode.)

type Mode = keyof typeof ACCESS_CONTEXT;
const MODES = Object.keys(ACCESS_CONTEXT) as Mode[];

const synthesized = Object.fromEntries(MODES.map((mode) => [mode, synth({ context: ACCESS_CONTEXT[mode] })]));

/** The message function's code (the other Lambda function is CDK's SDK-call provider). */
const codeOf = (mode: Mode, binary: string) => {
  const template = synthesized[mode].templates[functionStackName(binary)];
  const [[, fn]] = resourcesOfType(template, 'AWS::Lambda::Function').filter(([id]) => id !== SDK_CALL_PROVIDER_ID);
  return fn.Properties.Code;
};

describe.each(MODES)('access=%s, functions not built', (mode) => {
  test.each(FUNCTION_NAMES)('%s: the stack carries a rule no deployment can satisfy', (binary) => {
    const template = synthesized[mode].templates[functionStackName(binary)];
    expect(template.Parameters.UnbuiltFunctionCode).toMatchObject({ Type: 'String', Default: 'refuse', AllowedValues: ['refuse'] });
    expect(template.Rules.NeverDeployUnbuiltFunctionCode).toEqual({
      Assertions: [{ Assert: { 'Fn::Equals': [{ Ref: 'UnbuiltFunctionCode' }, 'deploy'] }, AssertDescription: UNBUILT_CODE_MESSAGE }],
    });
  });

  test.each(FUNCTION_NAMES)('%s: the staged code is the placeholder, never the workspace', (binary) => {
    const key = codeOf(mode, binary).S3Key.replace(/\.zip$/, '');
    expect(readdirSync(join(synthesized[mode].outdir, `asset.${key}`))).toEqual(['NOT-BUILT.txt']);
  });

  test.each(FUNCTION_NAMES)('%s: the placeholder key is the one every access mode gets', (binary) => {
    expect(codeOf(mode, binary)).toEqual(codeOf('iam', binary));
  });

  test('the base stack has no function code to refuse', () => {
    const base = Object.entries(synthesized[mode].templates).find(([name]) => name.endsWith('-base'))![1];
    expect(base.Rules?.NeverDeployUnbuiltFunctionCode).toBeUndefined();
  });
});
