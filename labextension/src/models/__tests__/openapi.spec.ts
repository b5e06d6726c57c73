/**
 * @jest-environment node
 *
 * models/types.ts and the server's OpenAPI description (ds01_jupyter/server/openapi.yaml)
 * say the same: for each schema the spec details, the TypeScript type has the same
 * properties, optional where the spec does not require them (nested objects too).
 * Read with the TypeScript compiler's checker, so aliases and intersections count.
 */
import * as fs from 'fs';
import * as yaml from 'js-yaml';
import * as path from 'path';
import * as ts from 'typescript';

const SPEC_PATH = path.resolve(__dirname, '../../../../ds01_jupyter/server/openapi.yaml');
const TYPES_PATH = path.resolve(__dirname, '../types.ts');

type Schema = {
  $ref?: string;
  allOf?: Schema[];
  type?: string;
  properties?: { [name: string]: Schema };
  required?: string[];
  items?: Schema;
  nullable?: boolean;
};

const spec = yaml.load(fs.readFileSync(SPEC_PATH, 'utf8')) as any;
const program = ts.createProgram([TYPES_PATH], { strict: true, skipLibCheck: true, noEmit: true });
const checker = program.getTypeChecker();
const source = program.getSourceFile(TYPES_PATH)!;
const exported = new Map(checker.getExportsOfModule(checker.getSymbolAtLocation(source)!).map(s => [s.name, s]));

/** A response (the server guarantees what it requires) or a request body (the client may always send more). */
type Direction = 'response' | 'request';

/** What the spec says, by where it says it, and the type in types.ts that must match. */
const PAIRS: [string, string, Direction][] = [
  ['components.schemas.Error', 'IErrorBody', 'response'],
  ['components.schemas.Container', 'IContainer', 'response'],
  ['components.schemas.Skipped', 'ISkipped', 'response'],
  ['components.schemas.Rescue', 'IRescue', 'response'],
  ['components.schemas.StopReport', 'IStopReport', 'response'],
  ['components.schemas.Project', 'IProject', 'response'],
  ['components.schemas.Overview', 'IOverview', 'response'],
  ['components.schemas.Operation', 'IOperation', 'response'],
  ['paths./version.get.responses.200', 'IVersion', 'response'],
  ['paths./projects/{name}/stop.post.responses.200', 'IStopResult', 'response'],
  ['paths./projects/{name}/stop.post.responses.202', 'IStopServerResult', 'response'],
  ['paths./projects/{name}/retire.post.requestBody', 'IRetireRequest', 'request'],
  ['paths./projects/{name}/retire.post.responses.200', 'IRetireResult', 'response'],
  ['paths./projects/{name}/terminal.get.responses.200', 'ITerminalCommand', 'response'],
  ['paths./projects/{name}/prune.post.requestBody', 'IPrunePolicy', 'request'],
  ['paths./projects/{name}/clean.post.requestBody', 'ICleanRequest', 'request']
];

/** Sent beside the typed body by the client's own argument, not part of the TypeScript type. */
const SENT_APART = new Set(['confirm']);

/** Walk a dotted location (path keys may hold dots only inside {...}: none here) to its JSON schema. */
function locate(where: string): Schema {
  const [top, group, ...rest] = where.split('.');
  let node: any = spec[top][group];
  if (top === 'paths') {
    node = spec.paths[group];
    for (const key of rest) {
      node = node[key];
    }
    if (node.content) {
      node = node.content['application/json'].schema;
    }
    return node;
  }
  for (const key of rest) {
    node = node[key];
  }
  return node;
}

/** Resolve $ref and merge allOf into one object schema. */
function resolve(schema: Schema): Schema {
  if (schema.$ref) {
    return resolve(locate(schema.$ref.replace(/^#\//, '').split('/').join('.')));
  }
  if (schema.allOf) {
    const parts = schema.allOf.map(resolve);
    return {
      type: 'object',
      properties: Object.assign({}, ...parts.map(p => p.properties ?? {})),
      required: parts.flatMap(p => p.required ?? [])
    };
  }
  return schema;
}

function exportedType(name: string): ts.Type {
  const symbol = exported.get(name);
  if (!symbol) {
    throw new Error(`${name} is not exported by models/types.ts`);
  }
  return checker.getDeclaredTypeOfSymbol(symbol);
}

/** The type without null and undefined; an array's element type when `element`. */
function inner(type: ts.Type, element = false): ts.Type {
  const plain = checker.getNonNullableType(type);
  if (!element) {
    return plain;
  }
  const args = checker.isArrayType(plain) ? checker.getTypeArguments(plain as ts.TypeReference) : [];
  return args[0] ?? plain;
}

function differences(schema: Schema, type: ts.Type, where: string, direction: Direction): string[] {
  const resolved = resolve(schema);
  if (!resolved.properties) {
    return []; // a free-form object: nothing to compare
  }
  const found: string[] = [];
  const required = new Set(resolved.required ?? []);
  const props = new Map(checker.getPropertiesOfType(type).map(p => [p.name, p]));
  for (const [name, sub] of Object.entries(resolved.properties)) {
    const prop = props.get(name);
    if (!prop) {
      if (!(direction === 'request' && SENT_APART.has(name))) {
        found.push(`${where}.${name}: in the spec, not in the type`);
      }
      continue;
    }
    const optional = (prop.flags & ts.SymbolFlags.Optional) !== 0;
    if (required.has(name) && optional) {
      found.push(`${where}.${name}: required by the spec, optional in the type`);
    }
    if (direction === 'response' && !required.has(name) && !optional) {
      found.push(`${where}.${name}: not required by the spec, required in the type`);
    }
    const propType = checker.getTypeOfSymbol(prop);
    const subSchema = resolve(sub);
    if (subSchema.properties) {
      found.push(...differences(subSchema, inner(propType), `${where}.${name}`, direction));
    } else if (subSchema.type === 'array' && subSchema.items) {
      found.push(...differences(subSchema.items, inner(propType, true), `${where}.${name}[]`, direction));
    }
  }
  for (const name of props.keys()) {
    if (!(name in resolved.properties)) {
      found.push(`${where}.${name}: in the type, not in the spec`);
    }
  }
  return found;
}

describe('types.ts and openapi.yaml', () => {
  it('compiles types.ts without errors', () => {
    expect(
      ts.getPreEmitDiagnostics(program, source).map(d => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
    ).toEqual([]);
  });

  it.each(PAIRS)('%s matches %s', (where, name, direction) => {
    expect(differences(locate(where), exportedType(name), name, direction)).toEqual([]);
  });

  it('finds a missing property, nested too, and required-ness that differs', () => {
    const schema: Schema = {
      type: 'object',
      required: ['user', 'mode'],
      properties: {
        user: { type: 'string' },
        engine: { type: 'object', required: ['available'], properties: { available: {}, reason: {}, speed: {} } },
        projects: { type: 'array' },
        mode: { type: 'string' },
        frameworks: { type: 'array' }
      }
    };
    expect(differences(schema, exportedType('IOverview'), 'IOverview', 'response')).toEqual([
      'IOverview.engine: not required by the spec, required in the type',
      'IOverview.engine.speed: in the spec, not in the type',
      'IOverview.projects: not required by the spec, required in the type',
      'IOverview.mode: required by the spec, optional in the type'
    ]);
  });
});
