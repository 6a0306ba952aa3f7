//! `authprobe man`: one complete manual page (every subcommand with its options, exit
//! codes, environment, files), or with `--dir DIR` one page per command, as clap_mangen
//! writes them (`authprobe.1`, `authprobe-run.1`, …), for `MANPATH`.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Command;

/// The arguments of `authprobe man`.
#[derive(clap::Args, Debug, Default)]
pub struct ManArgs {
    /// Write authprobe.1 and one page per subcommand (authprobe-run.1, …) into DIR instead
    /// of printing the single complete page.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "every selected probe passed (warnings allowed); inspect: the server is trusted"),
    ("1", "at least one probe failed; inspect: not trusted or not reached"),
    ("2", "usage or configuration error: nothing was run"),
    ("130", "interrupted (Ctrl-C): the partial report is printed, unfinished probes are `cancelled`"),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    ("AUTHPROBE_CONFIG", "the config file when -c is not given (else ./probes.toml)"),
    (
        "PGPASSWORD, MYSQL_PWD, MSSQL_PASSWORD, SSHPASS",
        "check: the password for postgres://, mysql://, mssql://, sftp://",
    ),
    (
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_REGION",
        "check s3://: credentials as the AWS CLI reads them",
    ),
    ("HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY", "proxies, as curl reads them"),
    ("KRB5CCNAME, KRB5_CONFIG", "Kerberos: the ticket cache and krb5.conf"),
    ("NO_COLOR", "no colour in the table"),
];

const FILES: &[(&str, &str)] = &[
    ("./probes.toml", "the default config file"),
    ("~/.ssh/known_hosts", "check sftp://: approved host keys when --host-key is not given"),
];

/// Runs `authprobe man`.
pub fn command(args: &ManArgs, cli: Command) -> Result<String, String> {
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("--dir {}: {e}", dir.display()))?;
            clap_mangen::generate_to(cli, dir).map_err(|e| format!("--dir {}: {e}", dir.display()))?;
            Ok(String::new())
        }
        None => Ok(complete_page(cli)),
    }
}

fn roff_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '-' => escaped.push_str("\\-"),
            // troff reads bytes: other characters by their Unicode name (…, —, ·).
            c if !c.is_ascii() => {
                let _ = write!(escaped, "\\[u{:04X}]", u32::from(c));
            }
            c => escaped.push(c),
        }
    }
    // A line beginning with a dot or quote would be read as a request.
    escaped
        .lines()
        .map(|l| if l.starts_with(['.', '\'']) { format!("\\&{l}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

fn flag_names(arg: &clap::Arg) -> String {
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("\\fB\\-{short}\\fR"));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("\\fB\\-\\-{}\\fR", roff_escape(long)));
    }
    let value = arg
        .get_value_names()
        .map(|v| v.iter().map(|n| format!(" \\fI{n}\\fR")).collect::<String>())
        .unwrap_or_default();
    if names.is_empty() {
        // A positional argument.
        return format!(
            "\\fI{}\\fR",
            arg.get_value_names()
                .and_then(|v| v.first().map(|s| s.to_string()))
                .unwrap_or_else(|| arg.get_id().to_string().to_uppercase())
        );
    }
    let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
    format!("{}{}", names.join(", "), if takes_value { value } else { String::new() })
}

fn options(out: &mut String, cmd: &Command) {
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let help = arg.get_long_help().or_else(|| arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
        let _ = writeln!(out, ".TP\n{}\n{}", flag_names(arg), roff_escape(&help));
    }
}

/// The whole manual on one page.
pub fn complete_page(mut cli: Command) -> String {
    cli.build();
    let mut out = String::new();
    let _ = writeln!(out, ".TH authprobe 1 \"\" \"authprobe {}\" \"User Commands\"", env!("CARGO_PKG_VERSION"));
    let about = cli.get_about().map(|a| a.to_string()).unwrap_or_default();
    let _ = writeln!(out, ".SH NAME\nauthprobe \\- {}", roff_escape(&about));
    out.push_str(".SH SYNOPSIS\n");
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let _ = writeln!(out, "\\fBauthprobe {}\\fR [\\fIOPTIONS\\fR]\n.br", sub.get_name());
    }
    out.push_str(".SH DESCRIPTION\nauthprobe reads a TOML list of probes, runs them concurrently and reports per probe which stage failed, a stable error class and a one-line hint. Secrets never appear in any output.\n");
    out.push_str(".SH COMMANDS\n");
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let _ = writeln!(out, ".SS \"authprobe {}\"", sub.get_name());
        let text = sub.get_long_about().or_else(|| sub.get_about()).map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(out, "{}", roff_escape(&text));
        options(&mut out, sub);
        if let Some(after) = sub.get_after_help() {
            let _ = writeln!(out, ".PP\n.nf\n{}\n.fi", roff_escape(&after.to_string()));
        }
    }
    let section = |out: &mut String, title: &str, rows: &[(&str, &str)]| {
        let _ = writeln!(out, ".SH {title}");
        for (name, text) in rows {
            let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff_escape(name), roff_escape(text));
        }
    };
    section(&mut out, "EXIT STATUS", EXIT_STATUS);
    section(&mut out, "ENVIRONMENT", ENVIRONMENT);
    section(&mut out, "FILES", FILES);
    out.push_str(
        ".SH SEE ALSO\nThe docs/ folder of the source: cli.md, config.md, probes.md, serve.md, security.md.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaping_keeps_roff_requests_out_of_text() {
        assert_eq!(super::roff_escape(".hidden -x"), "\\&.hidden \\-x");
    }
}
