// Connects with mysql2 and prints, as one JSON line, the TLS version the
// server reports for this session. Usage:
//   node mysql_client.js '{"host":..., "port":..., "user":..., "password":..., "database":...,
//                          "ssl": false | "insecure" | {"ca": "path"}}'
'use strict';
const fs = require('fs');
const mysql = require('mysql2/promise');

async function main() {
  const opts = JSON.parse(process.argv[2]);
  if (opts.ssl === 'insecure') {
    opts.ssl = { rejectUnauthorized: false };
  } else if (opts.ssl && opts.ssl.ca) {
    opts.ssl = { ca: fs.readFileSync(opts.ssl.ca, 'utf8'), rejectUnauthorized: true };
  }
  opts.connectAttributes = { program_name: 'node-mysql2-test' };
  // The key for caching_sha2_password full authentication on a plaintext
  // leg is whatever the server (here: dbward) sends when asked.
  if (!opts.ssl) opts.authPlugins = undefined;
  const conn = await mysql.createConnection(opts);
  const [rows] = await conn.query("SHOW STATUS LIKE 'Ssl_version'");
  const [one] = await conn.query('SELECT 1');
  console.log(JSON.stringify({ ok: true, ssl_version: rows.length ? rows[0].Value : null, one: Object.values(one[0])[0] }));
  await conn.end();
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, error: String(e.message || e) }));
  process.exit(1);
});
