import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BASE_STACK, copyWorkspace, FUNCTION_NAMES, functionStackName, resourcesOfType, synth } from './helpers';

/** Appends a comment to one Rust source file of a crate: a code change that builds the same. */
function touchCrate(root: string, crateDir: string): string {
  const src = join(root, crateDir, 'src');
  const file = join(src, readdirSync(src).filter((f) => f.endsWith('.rs')).sort()[0]);
  appendFileSync(file, '\n// a code change\n');
  return file;
}

const codeKey = (template: any) => resourcesOfType(template, 'AWS::Lambda::Function')[0][1].Properties.Code.S3Key;

describe('independent deploys: changing one function\'s code changes only its stack', () => {
  const root = copyWorkspace();
  const before = synth({ workspaceRoot: root });
  touchCrate(root, 'functions/get');
  const after = synth({ workspaceRoot: root });

  test('the synthesized stacks are the base stack and one per function', () => {
    expect(Object.keys(after.templateText).sort()).toEqual([BASE_STACK, ...FUNCTION_NAMES.map(functionStackName)].sort());
  });

  test('the get-messages stack changed, and only in its code asset', () => {
    const name = functionStackName('get-messages');
    expect(after.templateText[name]).not.toEqual(before.templateText[name]);
    expect(codeKey(after.templates[name])).not.toEqual(codeKey(before.templates[name]));
    // Apart from the asset key (and its mention in the asset metadata) the templates are equal.
    const normalise = (t: any) => JSON.stringify(t).split(codeKey(t).replace(/\.zip$/, '')).join('<asset>');
    expect(normalise(after.templates[name])).toEqual(normalise(before.templates[name]));
  });

  test('every other stack template is byte-identical', () => {
    for (const name of [BASE_STACK, functionStackName('post-message'), functionStackName('delete-messages')]) {
      expect(after.templateText[name]).toEqual(before.templateText[name]);
    }
  });

  test('each function stack publishes only its own code asset', () => {
    for (const binary of FUNCTION_NAMES) {
      const stack = after.assembly.getStackByName(functionStackName(binary));
      const assetManifest = stack.dependencies.find((d) => d.id === `${stack.id}.assets`) as any;
      const files = Object.values(assetManifest.contents.files ?? {}) as any[];
      const zips = files.filter((f) => f.source.packaging === 'zip');
      expect(zips).toHaveLength(1);
      expect(Object.values(zips[0].destinations).map((d: any) => d.objectKey)).toEqual([codeKey(after.templates[stack.stackName])]);
    }
  });

  test('a change to the shared crate changes every function stack, but never the base stack', () => {
    touchCrate(root, 'shared');
    const shared = synth({ workspaceRoot: root });
    expect(shared.templateText[BASE_STACK]).toEqual(after.templateText[BASE_STACK]);
    for (const binary of FUNCTION_NAMES) {
      const name = functionStackName(binary);
      expect(codeKey(shared.templates[name])).not.toEqual(codeKey(after.templates[name]));
    }
  });
});
