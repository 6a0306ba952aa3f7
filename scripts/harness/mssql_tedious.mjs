// Logs in with tedious (Microsoft's TDS client for Node, written apart from the ODBC driver
// and python-tds) and prints `ok ROWS` or `error NUMBER MESSAGE`; for checking the SQL
// Server stand-in in tests/harness_servers.rs.
// Usage: node mssql_tedious.mjs PORT ENCRYPT(yes|strict|no) [DATABASE [SQL [PASSWORD]]]
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(process.env.AP_NODE_MODULES + '/');
const { Connection, Request } = require('tedious');
const [port, encrypt, database, sql, password] = process.argv.slice(2);
const connection = new Connection({
  server: 'localhost',
  authentication: {
    type: 'default',
    options: { userName: process.env.AP_MSSQL_USER, password: password || process.env.AP_MSSQL_PASSWORD },
  },
  options: {
    port: Number(port),
    database: database || undefined,
    encrypt: encrypt === 'strict' ? 'strict' : encrypt === 'yes',
    trustServerCertificate: false,
    cryptoCredentialsDetails: { ca: readFileSync(process.env.AP_CA) },
    connectTimeout: 15000,
  },
});
const fail = (err) => {
  const inner = err.errors ? err.errors[0] : err;
  console.log('error', inner.number ?? err.number ?? '-', err.message);
  process.exit(1);
};
connection.on('error', fail);
connection.on('connect', (err) => {
  if (err) fail(err);
  let rows = 0;
  const request = new Request(sql || 'SELECT 1', (err) => {
    if (err) fail(err);
    console.log('ok', rows);
    connection.close();
  });
  request.on('row', () => { rows += 1; });
  connection.execSql(request);
});
connection.connect();
