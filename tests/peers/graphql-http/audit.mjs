// Runs the GraphQL-over-HTTP audit suite of `graphql-http` against a server and prints one JSON
// array of {id, name, status, reason} to stdout (status: ok, notice (MAY), warn (SHOULD), error
// (MUST)). A failed audit's reason ends with the response's status, content type and body.
//
//   node tests/peers/graphql-http/audit.mjs http://127.0.0.1:8000/graphql
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs URL');
  process.exit(2);
}

async function describe(response) {
  if (!response) return '';
  let body = '';
  try {
    body = await response.text();
  } catch (error) {
    body = `<unreadable body: ${error}>`;
  }
  if (body.length > 300) body = `${body.slice(0, 300)}...`;
  const type = response.headers.get('content-type') ?? '-';
  return ` (got ${response.status} ${type}: ${body})`;
}

const results = await auditServer({ url });
const report = [];
for (const result of results) {
  const reason = result.status === 'ok' ? null : result.reason + (await describe(result.response));
  report.push({ id: result.id, name: result.name, status: result.status, reason });
}
process.stdout.write(`${JSON.stringify(report, null, 1)}\n`);
