// Generate src/documents.ts from schema/documents.json (written by `python -m jupyter_orchestrate.schemas.export`).
// `node scripts/types.mjs` writes it; `node scripts/types.mjs --check` fails when the checked-in file differs.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile } from 'json-schema-to-typescript';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const schemaPath = join(here, 'schema', 'documents.json');
const outPath = join(here, 'src', 'documents.ts');
const banner = `/* eslint-disable */
/**
 * GENERATED FILE, DO NOT EDIT: the response documents of the jupyter-orchestrate REST API, from
 * schema/documents.json (\`python -m jupyter_orchestrate.schemas.export\`, then \`npm run build:types\`).
 * The models are jupyter_orchestrate/schemas/documents.py (the event stream's: schemas/events.py).
 */`;

const schema = JSON.parse(readFileSync(schemaPath, 'utf8'));
const text = await compile(schema, 'JupyterOrchestrateDocuments', {
  bannerComment: banner,
  additionalProperties: false,
  unreachableDefinitions: true,
  declareExternallyReferenced: true,
  format: true,
  style: { singleQuote: true, printWidth: 120, trailingComma: 'none', arrowParens: 'avoid' }
});
if (process.argv.includes('--check')) {
  const current = readFileSync(outPath, 'utf8');
  if (current !== text) {
    console.error('src/documents.ts is not what schema/documents.json generates: run `npm run build:types`');
    process.exit(1);
  }
  console.log('src/documents.ts matches schema/documents.json');
} else {
  writeFileSync(outPath, text);
}
