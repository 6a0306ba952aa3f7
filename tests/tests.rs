//! One integration-test binary (as ripgrep does) to keep link times down. Every test talks
//! to real servers: in-process ones from `util::servers`, or the harness's (scripts/servers).

mod util;

mod approvals;
mod architecture;
mod check_inspect;
mod config_corpus;
mod config_errors;
mod deploy_gate;
mod docker_real;
mod faults;
mod formats;
mod harness_servers;
mod hostile;
mod http_auth;
mod integrations;
mod live_azure_blob;
mod live_cloud;
mod live_cloud_db;
mod live_ftp;
mod live_gcs;
mod live_http;
mod live_kerberos;
mod live_mssql;
mod live_mysql;
mod live_mysql8;
mod live_postgres;
mod live_rds_iam;
mod live_s3;
mod live_secret_stores;
mod live_sftp;
mod live_signed_urls;
mod live_tunnel;
mod network_classes;
mod operator;
mod proxies;
mod python_api;
mod readme;
mod registry;
mod run_control;
mod secrets_all_kinds;
mod secrets_leak;
mod serve;
mod serve_blackbox;
mod serve_page;
mod tls_classes;
