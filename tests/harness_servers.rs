//! The test-server harness itself (scripts/servers.sh): every server accepts the right
//! credentials and the real server refuses the wrong ones, checked with each system's own
//! reference client (psql, mariadb, sftp, boto3, python-tds). Probe kinds are tested
//! against the same servers in their own modules.

use crate::util::*;

/// Runs a bash snippet with the harness environment; returns exit code and all output.
fn sh(env: &[(String, String)], script: &str) -> (i32, String) {
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run bash");
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[track_caller]
fn ok(env: &[(String, String)], script: &str, expect: &str) {
    let (code, out) = sh(env, script);
    assert!(code == 0 && out.contains(expect), "expected success with `{expect}` from:\n{script}\ngot {code}:\n{out}");
}

#[track_caller]
fn refused(env: &[(String, String)], script: &str, expect: &str) {
    let (code, out) = sh(env, script);
    assert!(code != 0 && out.contains(expect), "expected refusal with `{expect}` from:\n{script}\ngot {code}:\n{out}");
}

#[test]
fn postgres_users_for_every_auth_method() {
    let env = harness_env();
    let base = "psql -X -tA \"host=localhost port=$AP_PG_PORT dbname=$AP_PG_DATABASE";
    ok(
        &env,
        &format!(
            "PGPASSWORD=$AP_PG_PASSWORD {base} user=$AP_PG_USER sslmode=verify-full sslrootcert=$AP_CA\" -c 'select item from orders'"
        ),
        "widget",
    );
    refused(
        &env,
        &format!("PGPASSWORD=wrong-password {base} user=$AP_PG_USER\" -c 'select 1'"),
        "password authentication failed",
    );
    refused(
        &env,
        &format!("PGPASSWORD=$AP_PG_LIMITED_PASSWORD {base} user=$AP_PG_LIMITED_USER\" -c 'select * from payroll'"),
        "permission denied",
    );
    ok(
        &env,
        &format!(
            "{base} user=$AP_PG_CERT_USER sslmode=verify-full sslrootcert=$AP_CA sslcert=$AP_CERTS/client-pg.crt sslkey=$AP_CERTS/client-pg.key\" -c 'select current_user'"
        ),
        "cert_user",
    );
    refused(&env, &format!("{base} user=$AP_PG_CERT_USER sslmode=require\" -c 'select 1'"), "certificate");
    refused(
        &env,
        &format!(
            "PGPASSWORD=$AP_PG_PASSWORD {base} user=$AP_PG_USER sslmode=verify-full sslrootcert=$AP_CERTS/rogue-ca.crt\" -c 'select 1'"
        ),
        "certificate verify failed",
    );
}

#[test]
fn mariadb_users_for_every_auth_method() {
    let env = harness_env();
    let m = "mariadb -h 127.0.0.1 -P $AP_MYSQL_PORT -N";
    ok(
        &env,
        &format!(
            "{m} -u $AP_MYSQL_USER -p$AP_MYSQL_PASSWORD --ssl-ca=$AP_CA --ssl-verify-server-cert $AP_MYSQL_DATABASE -e 'select item from orders'"
        ),
        "widget",
    );
    refused(&env, &format!("{m} -u $AP_MYSQL_USER -pwrong-password -e 'select 1'"), "ERROR 1045");
    refused(
        &env,
        &format!(
            "{m} -u $AP_MYSQL_LIMITED_USER -p$AP_MYSQL_LIMITED_PASSWORD $AP_MYSQL_DATABASE -e 'select * from payroll'"
        ),
        "ERROR 1142",
    );
    refused(&env, &format!("{m} -u $AP_MYSQL_X509_USER -p$AP_MYSQL_X509_PASSWORD --ssl -e 'select 1'"), "ERROR 1045");
    ok(
        &env,
        &format!(
            "{m} -u $AP_MYSQL_X509_USER -p$AP_MYSQL_X509_PASSWORD --ssl-ca=$AP_CA --ssl-cert=$AP_CERTS/client-mysql.crt --ssl-key=$AP_CERTS/client-mysql.key -e 'select current_user()'"
        ),
        "x509_user",
    );
}

#[test]
fn sshd_password_and_key_users_host_key_and_unreadable_directory() {
    let env = harness_env();
    let (_, fp) = sh(&env, "ssh-keygen -l -E sha256 -f $AP_SSH_DIR/host_ed25519.pub | awk '{print $2}'");
    assert_eq!(fp.trim(), harness_var(&env, "AP_SSH_HOST_KEY"));
    let kh = "kh=$(mktemp); ssh-keyscan -p $AP_SSH_PORT 127.0.0.1 2>/dev/null > $kh;";
    let sftp = "-o UserKnownHostsFile=$kh -o ConnectTimeout=5 -P $AP_SSH_PORT";
    ok(
        &env,
        &format!(
            "{kh} echo 'ls data' | SSHPASS=$AP_SFTP_PASSWORD sshpass -e sftp {sftp} -o BatchMode=no -o PubkeyAuthentication=no -b - $AP_SFTP_USER@127.0.0.1"
        ),
        "hello.txt",
    );
    refused(
        &env,
        &format!(
            "{kh} echo 'ls' | SSHPASS=wrong-password sshpass -e sftp {sftp} -o BatchMode=no -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1 -b - $AP_SFTP_USER@127.0.0.1"
        ),
        "",
    );
    ok(
        &env,
        &format!("{kh} echo 'ls data' | sftp {sftp} -i $AP_SSH_DIR/client_ed25519 -b - $AP_SFTP_KEY_USER@127.0.0.1"),
        "hello.txt",
    );
    ok(
        &env,
        &format!("{kh} echo 'ls data' | sftp {sftp} -i $AP_SSH_DIR/client_rsa_pem -b - $AP_SFTP_KEY_USER@127.0.0.1"),
        "hello.txt",
    );
    refused(
        &env,
        &format!(
            "{kh} echo 'ls' | sftp {sftp} -i $AP_SSH_DIR/stranger_ed25519 -o IdentitiesOnly=yes -b - $AP_SFTP_KEY_USER@127.0.0.1"
        ),
        "Permission denied",
    );
    refused(
        &env,
        &format!("{kh} echo 'ls private' | sftp {sftp} -i $AP_SSH_DIR/client_ed25519 -b - $AP_SFTP_KEY_USER@127.0.0.1"),
        "Permission denied",
    );
    // User certificates (their keys are in no authorized_keys): a valid one logs in, an
    // ended one is refused.
    let certified = |key: &str| {
        format!(
            "{kh} echo 'ls data' | sftp {sftp} -i $AP_SSH_DIR/{key} -o IdentitiesOnly=yes -b - $AP_SFTP_KEY_USER@127.0.0.1"
        )
    };
    ok(&env, &certified("client_cert_ed25519"), "hello.txt");
    refused(&env, &certified("client_expired_cert_ed25519"), "Permission denied");
}

#[test]
fn ssh_forwarding_reaches_postgres_through_a_tunnel() {
    let env = harness_env();
    let script = "kh=$(mktemp); ssh-keyscan -p $AP_SSH_PORT 127.0.0.1 2>/dev/null > $kh; \
        port=$((20000 + RANDOM % 10000)); \
        ssh -f -N -o ExitOnForwardFailure=yes -o UserKnownHostsFile=$kh -i $AP_SSH_DIR/client_ed25519 -p $AP_SSH_PORT \
            -L 127.0.0.1:$port:127.0.0.1:$AP_PG_PORT $AP_SFTP_KEY_USER@127.0.0.1 || exit 9; \
        PGPASSWORD=$AP_PG_PASSWORD psql -X -tA \"host=127.0.0.1 port=$port dbname=$AP_PG_DATABASE user=$AP_PG_USER\" -c 'select 42'; code=$?; \
        pkill -f \"L 127.0.0.1:$port:\"; exit $code";
    ok(&env, script, "42");
}

const BOTO: &str = "import boto3, os, sys\n\
from botocore.config import Config\n\
endpoint, key, secret, bucket = sys.argv[1:5]\n\
s3 = boto3.client('s3', endpoint_url=endpoint, region_name='us-east-1', aws_access_key_id=key, aws_secret_access_key=secret,\n\
                  config=Config(s3={'addressing_style': 'path'}, retries={'max_attempts': 1}))\n\
try:\n    print('keys', s3.list_objects_v2(Bucket=bucket, MaxKeys=1).get('KeyCount'))\n\
except Exception as e:\n    print(getattr(e, 'response', {}).get('Error', {}).get('Code', e)); sys.exit(1)\n";

#[test]
fn s3_servers_check_signatures_and_policies() {
    let env = harness_env();
    let py = |endpoint: &str, key: &str, secret: &str, bucket: &str| {
        format!("python3 -c \"$BOTO\" http://127.0.0.1:{endpoint} {key} {secret} {bucket}")
    };
    let env: Vec<(String, String)> = env.into_iter().chain([("BOTO".to_string(), BOTO.to_string())]).collect();
    ok(&env, &py("$AP_S3_PORT", "$AP_S3_ACCESS_KEY", "$AP_S3_SECRET_KEY", "$AP_S3_BUCKET"), "keys 1");
    refused(&env, &py("$AP_S3_PORT", "$AP_S3_ACCESS_KEY", "wrong-secret", "$AP_S3_BUCKET"), "SignatureDoesNotMatch");
    refused(&env, &py("$AP_S3_PORT", "AKIAUNKNOWNKEY000000", "wrong-secret", "$AP_S3_BUCKET"), "");
    refused(&env, &py("$AP_S3_PORT", "$AP_S3_ACCESS_KEY", "$AP_S3_SECRET_KEY", "no-such-bucket"), "NoSuchBucket");
    ok(&env, &py("$AP_MOTO_PORT", "$AP_MOTO_ACCESS_KEY", "$AP_MOTO_SECRET_KEY", "$AP_MOTO_ALLOWED_BUCKET"), "keys 1");
    refused(
        &env,
        &py("$AP_MOTO_PORT", "$AP_MOTO_ACCESS_KEY", "$AP_MOTO_SECRET_KEY", "$AP_MOTO_DENIED_BUCKET"),
        "AccessDenied",
    );
    refused(
        &env,
        &py("$AP_MOTO_PORT", "$AP_MOTO_ACCESS_KEY", "wrong-secret", "$AP_MOTO_ALLOWED_BUCKET"),
        "SignatureDoesNotMatch",
    );
    refused(
        &env,
        &py("$AP_MOTO_PORT", "AKIAUNKNOWNKEY000000", "wrong-secret", "$AP_MOTO_ALLOWED_BUCKET"),
        "InvalidAccessKeyId",
    );
    ok(
        &env,
        "python3 -c \"import boto3,os; print(boto3.client('sts', endpoint_url='http://127.0.0.1:'+os.environ['AP_MOTO_PORT'], region_name='us-east-1', aws_access_key_id=os.environ['AP_MOTO_ACCESS_KEY'], aws_secret_access_key=os.environ['AP_MOTO_SECRET_KEY']).assume_role(RoleArn=os.environ['AP_MOTO_ROLE_ARN'], RoleSessionName='harness')['Credentials']['AccessKeyId'][:4])\"",
        "ASIA",
    );
}

#[test]
fn sql_server_stand_in_checks_logins_over_tls() {
    let env = harness_env();
    let py = |password: &str| {
        format!(
            "python3 -c \"import pytds, os, sys\ntry:\n  c = pytds.connect('127.0.0.1', port=int(os.environ['AP_MSSQL_PORT']), user=os.environ['AP_MSSQL_USER'], password={password}, database='appdb', cafile=os.environ['AP_CA'], validate_host=False)\n  cur = c.cursor(); cur.execute('SELECT item FROM orders'); print(cur.fetchall())\nexcept Exception as e:\n  print('error', getattr(e, 'msg_no', None), e); sys.exit(1)\""
        )
    };
    ok(&env, &py("os.environ['AP_MSSQL_PASSWORD']"), "widget");
    refused(&env, &py("'wrong-password'"), "error 18456");
}

/// The SQL Server stand-in's additions (routing, TDS 8 strict, packet size, 4060, 229), held
/// to what clients not written here do against it: Microsoft's ODBC driver 18 (inside
/// mssql-python), tedious (Node), python-tds and FreeTDS `tsql`. authprobe is then held to
/// the same outcomes in live_mssql.rs.
#[test]
fn mssql_standin_behaves_as_sql_server_for_independent_clients() {
    let env = harness_env();
    let root = env!("CARGO_MANIFEST_DIR");
    let odbc = |args: &str| format!("python3 {root}/scripts/harness/mssql_clients.py odbc {args}");
    let pytds = |args: &str| format!("python3 {root}/scripts/harness/mssql_clients.py pytds {args}");
    let tedious = |args: &str| format!("\"$AP_NODE_BIN/node\" {root}/scripts/harness/mssql_tedious.mjs {args}");
    let tsql = |args: &str, sql: &str| {
        format!(
            "printf '{sql}\\ngo\\nexit\\n' | tsql -H localhost -U \"$AP_MSSQL_USER\" -P \"$AP_MSSQL_PASSWORD\" {args} 2>&1; exit ${{PIPESTATUS[1]}}"
        )
    };
    let big = format!("'SELECT 1 /* {} */'", "x".repeat(3000));
    for client in [&odbc as &dyn Fn(&str) -> String, &pytds, &tedious] {
        ok(&env, &client("$AP_MSSQL_PORT yes"), "ok 1");
        // Wrong password: 18456. Unknown database: 4060 first, then 18456 (the clients show
        // one or both; the stand-in's log and tsql below show the order).
        refused(&env, &client("$AP_MSSQL_PORT yes '' '' wrong-password"), "Login failed for user");
        refused(&env, &client("$AP_MSSQL_PORT yes no_such_db"), "Login failed for user");
        refused(&env, &client("$AP_MSSQL_PORT yes appdb 'SELECT * FROM payroll'"), "The SELECT permission was denied");
        // Routing: every client follows ENVCHANGE 20 to the second listener, which agrees a
        // 512-byte packet size; a batch of 3 kB must then be split to be answered.
        ok(&env, &client("$AP_MSSQL_GATEWAY_PORT yes"), "ok 1");
        ok(&env, &client(&format!("$AP_MSSQL_GATEWAY_PORT yes appdb {big}")), "ok 1");
    }
    // The routed server's certificate is verified against the routed name.
    refused(&env, &odbc("$AP_MSSQL_MISROUTE_PORT yes"), "subject name does not match host name");
    refused(&env, &tedious("$AP_MSSQL_MISROUTE_PORT yes"), "is not in the cert's altnames: DNS:wrong.example.com");
    // TDS 8 strict (python-tds and FreeTDS 1.3 have none): TLS first, and only that.
    ok(&env, &odbc("$AP_MSSQL_STRICT_PORT strict"), "ok 1");
    ok(&env, &tedious("$AP_MSSQL_STRICT_PORT strict"), "ok 1");
    refused(&env, &odbc("$AP_MSSQL_STRICT_PORT yes"), "error");
    refused(&env, &tedious("$AP_MSSQL_STRICT_PORT yes"), "error");
    // The stand-in's own port speaks TDS 7 only (SQL Server 2022 under compose speaks both).
    if harness_var(&env, "AP_SERVERS") != "compose" {
        refused(&env, &odbc("$AP_MSSQL_PORT strict"), "error");
        refused(&env, &tedious("$AP_MSSQL_PORT strict"), "error");
    }
    // FreeTDS: routing followed, and the server's own words for 4060 then 18456, and 229.
    ok(&env, &tsql("-p $AP_MSSQL_GATEWAY_PORT", "SELECT 1"), "(1 row affected)");
    let (_, out) = sh(&env, &tsql("-p $AP_MSSQL_PORT -D no_such_db", "SELECT 1"));
    let (db, login) = (out.find("Msg 4060 (severity 11, state 1)"), out.find("Msg 18456 (severity 14, state 1)"));
    assert!(db.is_some() && login.is_some() && db < login, "expected 4060 then 18456:\n{out}");
    ok(&env, &tsql("-p $AP_MSSQL_PORT", "SELECT * FROM payroll"), "Msg 229 (severity 14, state 5)");
    // Roles, as credential hygiene asks: the administrator is sysadmin and db_owner, the
    // application's login neither (python-tds and FreeTDS read the same answer).
    let roles = "'' \"SELECT IS_SRVROLEMEMBER('sysadmin'), IS_MEMBER('db_owner')\"";
    let admin = "MSSQL_CLIENT_USER=$AP_MSSQL_ADMIN_USER";
    ok(
        &env,
        &format!("{admin} {}", pytds(&format!("$AP_MSSQL_PORT yes {roles} \"$AP_MSSQL_ADMIN_PASSWORD\""))),
        "ok 1 [1, 1]",
    );
    ok(&env, &pytds(&format!("$AP_MSSQL_PORT yes {roles}")), "ok 1 [0, 0]");
    let (code, out) = sh(
        &env,
        "printf \"SELECT IS_SRVROLEMEMBER('sysadmin') AS s, IS_MEMBER('db_owner') AS o\\ngo\\nexit\\n\" | tsql -H localhost -p $AP_MSSQL_PORT -U \"$AP_MSSQL_ADMIN_USER\" -P \"$AP_MSSQL_ADMIN_PASSWORD\" 2>&1",
    );
    assert!(code == 0 && out.split_whitespace().collect::<Vec<_>>().windows(2).any(|w| w == ["1", "1"]), "{out}");
}

/// The Kerberos realm, Apache's Negotiate and PostgreSQL's gss, with MIT's own kinit, curl
/// --negotiate and psql.
#[test]
fn kerberos_realm_negotiate_and_postgres_gss_for_reference_clients() {
    let env = harness_env();
    let krb = "export KRB5_CONFIG=$AP_KRB5_CONFIG KRB5CCNAME=FILE:/tmp/authprobe-harness-ccache-$$; trap \"rm -f /tmp/authprobe-harness-ccache-$$\" EXIT;";
    ok(
        &env,
        &format!("{krb} echo \"$AP_KRB_PASSWORD\" | kinit $AP_KRB_USER && klist"),
        "krbtgt/AUTHPROBE.TEST@AUTHPROBE.TEST",
    );
    refused(&env, &format!("{krb} echo wrong | kinit $AP_KRB_USER"), "Password incorrect");
    ok(&env, &format!("{krb} kinit -k -t $AP_KRB_KEYTAB $AP_KRB_KEYTAB_USER && klist"), "krbtgt/");
    refused(&env, &format!("{krb} kinit -k -t $AP_KRB_STALE_KEYTAB $AP_KRB_KEYTAB_USER"), "Preauthentication failed");
    refused(
        &env,
        "export KRB5_CONFIG=$AP_KRB5_SKEWED_CONFIG KRB5CCNAME=MEMORY:h; echo \"$AP_KRB_PASSWORD\" | kinit $AP_KRB_USER",
        "Clock skew too great",
    );
    refused(
        &env,
        "export KRB5_CONFIG=$AP_KRB5_CONFIG; klist -c $AP_KRB_EXPIRED_CCACHE -s || echo expired; false",
        "expired",
    );
    let curl = "curl -s -o /dev/null -w '%{http_code}' --negotiate -u : --cacert $AP_CA";
    ok(
        &env,
        &format!(
            "export KRB5_CONFIG=$AP_KRB5_CONFIG KRB5CCNAME=$AP_KRB_CCACHE; {curl} https://localhost:$AP_NEGOTIATE_PORT/krb/ok.txt"
        ),
        "200",
    );
    ok(
        &env,
        &format!(
            "export KRB5_CONFIG=$AP_KRB5_CONFIG KRB5CCNAME=$AP_KRB_CCACHE; {curl} https://localhost:$AP_NEGOTIATE_PORT/krb/admin/ok.txt"
        ),
        "401",
    );
    let psql = "psql -X -A -t -c 'SELECT 1' \"host=localhost port=$AP_PG_PORT dbname=appdb sslmode=verify-full sslrootcert=$AP_CA gssencmode=disable";
    ok(&env, &format!("export KRB5_CONFIG=$AP_KRB5_CONFIG KRB5CCNAME=$AP_KRB_CCACHE; {psql} user=$AP_KRB_USER\""), "1");
    refused(
        &env,
        &format!("export KRB5_CONFIG=$AP_KRB5_CONFIG KRB5CCNAME=$AP_KRB_CCACHE; {psql} user=$AP_PG_KRB_UNMAPPED\""),
        "GSSAPI authentication failed",
    );
    let ssh = "ssh -o BatchMode=yes -o GSSAPIAuthentication=yes -o PreferredAuthentications=gssapi-with-mic -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p $AP_SSH_PORT";
    ok(
        &env,
        &format!("export KRB5_CONFIG=$AP_KRB5_CONFIG KRB5CCNAME=$AP_KRB_CCACHE; {ssh} $AP_KRB_USER@localhost echo in"),
        "in",
    );
    refused(
        &env,
        &format!("export KRB5_CONFIG=$AP_KRB5_CONFIG KRB5CCNAME=$AP_KRB_CCACHE; {ssh} $AP_SFTP_USER@localhost echo in"),
        "Permission denied",
    );
    let mariadb = "mariadb -h 127.0.0.1 -P $AP_MYSQL_PORT --ssl --ssl-ca=$AP_CA -N -e 'SELECT 1'";
    ok(&env, &format!("export KRB5_CONFIG=$AP_KRB5_CONFIG KRB5CCNAME=$AP_KRB_CCACHE; {mariadb} -u $AP_KRB_USER"), "1");
    refused(
        &env,
        &format!("export KRB5_CONFIG=$AP_KRB5_CONFIG KRB5CCNAME=$AP_KRB_CCACHE; {mariadb} -u $AP_PG_KRB_UNMAPPED"),
        "ERROR 1045",
    );
}

#[test]
fn docker_compose_file_is_valid() {
    let compose = require_tool("docker-compose");
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(compose)
        .args(["-f", &format!("{root}/docker-compose.yml"), "config", "-q"])
        .current_dir(root)
        .output()
        .expect("run docker-compose");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The MySQL 8 stand-in, held to what two clients not written here do against it: the
/// MariaDB client (Connector/C's caching_sha2_password and sha256_password plugins) and
/// PyMySQL. Only what both see is what authprobe is then required to match.
#[test]
fn mysql8_standin_behaves_as_mysql_8_for_independent_clients() {
    let env = harness_env();
    let m = "mariadb -h 127.0.0.1 -N -e 'SELECT 1' -p\"$AP_MYSQL8_PASSWORD\"";
    let tls = "--ssl --ssl-ca=\"$AP_CA\" --ssl-verify-server-cert";
    // Cold cache over TLS (full authentication, the password in clear inside TLS), which
    // warms the cache; then the fast path without TLS.
    ok(&env, &format!("{m} -P $AP_MYSQL8_PORT -u $AP_MYSQL8_USER {tls}"), "1");
    ok(&env, &format!("{m} -P $AP_MYSQL8_PORT -u $AP_MYSQL8_USER --skip-ssl"), "1");
    // Never cached: full authentication without TLS goes by RSA with the server's key.
    ok(&env, &format!("{m} -P $AP_MYSQL8_PORT -u $AP_MYSQL8_COLD_USER --skip-ssl"), "1");
    ok(&env, &format!("{m} -P $AP_MYSQL8_PORT -u $AP_MYSQL8_SHA256_USER {tls}"), "1");
    ok(&env, &format!("{m} -P $AP_MYSQL8_PORT -u $AP_MYSQL8_SHA256_USER --skip-ssl"), "1");
    refused(
        &env,
        &format!("mariadb -h 127.0.0.1 -P $AP_MYSQL8_PORT -u $AP_MYSQL8_USER -pwrong {tls} -e 'SELECT 1'"),
        "ERROR 1045 (28000)",
    );
    refused(&env, &format!("{m} -P $AP_MYSQL8_PORT -u $AP_MYSQL8_EXPIRED_USER {tls}"), "ERROR 1862");
    refused(
        &env,
        &format!("{m} -P $AP_MYSQL8_PORT -u $AP_MYSQL8_EXPIRED_USER {tls} --connect-expired-password"),
        "ERROR 1820",
    );
    refused(&env, &format!("{m} -P $AP_MYSQL8_SECURE_PORT -u $AP_MYSQL8_USER --skip-ssl"), "ERROR 3159");
    ok(&env, &format!("{m} -P $AP_MYSQL8_SECURE_PORT -u $AP_MYSQL8_USER {tls}"), "1");

    let py = |user: &str, port: &str, extra: &str| {
        format!(
            "python3 -c \"import pymysql, os\ntry:\n  c = pymysql.connect(host='127.0.0.1', port=int(os.environ['{port}']), user=os.environ['{user}'], password=os.environ['AP_MYSQL8_PASSWORD'], {extra})\n  cur = c.cursor(); cur.execute('SELECT 1'); print(cur.fetchall())\nexcept Exception as e:\n  print('error', e.args[0]); raise SystemExit(1)\""
        )
    };
    let ssl = "ssl={'ca': os.environ['AP_CA']}";
    let plain = "ssl_disabled=True";
    let key = "ssl_disabled=True, server_public_key=open(os.environ['AP_MYSQL8_PUBLIC_KEY'], 'rb').read()";
    ok(&env, &py("AP_MYSQL8_COLD_USER", "AP_MYSQL8_PORT", ssl), "((1,),)");
    ok(&env, &py("AP_MYSQL8_COLD_USER", "AP_MYSQL8_PORT", plain), "((1,),)");
    ok(&env, &py("AP_MYSQL8_COLD_USER", "AP_MYSQL8_PORT", key), "((1,),)");
    ok(&env, &py("AP_MYSQL8_USER", "AP_MYSQL8_PORT", plain), "((1,),)");
    ok(&env, &py("AP_MYSQL8_SHA256_USER", "AP_MYSQL8_PORT", ssl), "((1,),)");
    ok(&env, &py("AP_MYSQL8_SHA256_USER", "AP_MYSQL8_PORT", key), "((1,),)");
    refused(&env, &py("AP_MYSQL8_EXPIRED_USER", "AP_MYSQL8_PORT", ssl), "error 1862");
    refused(
        &env,
        &py("AP_MYSQL8_EXPIRED_USER", "AP_MYSQL8_PORT", &format!("{ssl}, client_flag=0x400000")),
        "error 1820",
    );
    refused(&env, &py("AP_MYSQL8_USER", "AP_MYSQL8_SECURE_PORT", plain), "error 3159");
}
