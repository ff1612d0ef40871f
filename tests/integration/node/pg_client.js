// Connects with node-postgres and prints what the backend says about the
// session's TLS, as one JSON line. Usage:
//   node pg_client.js '{"host":..., "port":..., "user":..., "password":..., "database":..., "ssl": false | {"ca": "path"}}'
'use strict';
const fs = require('fs');
const { Client } = require('pg');

async function main() {
  const opts = JSON.parse(process.argv[2]);
  if (opts.ssl && opts.ssl.ca) {
    opts.ssl = { ca: fs.readFileSync(opts.ssl.ca, 'utf8'), rejectUnauthorized: true, servername: opts.ssl.servername };
  }
  opts.application_name = 'node-pg-test';
  const client = new Client(opts);
  await client.connect();
  const r = await client.query(
    'select ssl, version, cipher from pg_stat_ssl where pid = pg_backend_pid()');
  const sum = await client.query('select sum(g)::int as s from generate_series(1, $1::int) g', [1000]);
  console.log(JSON.stringify({ ok: true, ssl: r.rows[0].ssl, version: r.rows[0].version, sum: sum.rows[0].s }));
  await client.end();
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, error: String(e.message || e), code: e.code || null }));
  process.exit(1);
});
