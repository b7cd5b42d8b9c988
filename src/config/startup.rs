//! From the process arguments to what `main` does: the configuration file (`--config` or
//! `ISR_EDGE_CONFIG`), environment and flags combined into one [`Config`] (precedence: flags >
//! environment > file > defaults), `--print-config` (the effective configuration as a TOML file,
//! each value's source in a comment, secrets masked), `--check-config`, and the `revalidate`
//! subcommand. Errors about file values name the file, line and key.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::config::file::{self as config_file, ConfigFile, FileError};
use crate::config::{Cli, Config, ConfigError};
use crate::logging::masked_url;
use crate::purge_client::Command;
use crate::revalidate::sites::SiteForwarding;

/// What the process was asked to do.
#[derive(Debug)]
pub enum Startup {
    Serve(Box<Config>),
    /// `--print-config`: the text to print.
    Print(String),
    /// `--check-config` passed: a one-line summary.
    Checked(String),
    /// `isr-edge revalidate ...`.
    Client(Command),
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A usage error, `--help` or `--version` from clap (rendered by `main`).
    #[error("{0}")]
    Usage(clap::Error),
    #[error(transparent)]
    File(#[from] FileError),
    /// An invalid value, named by file line and key when it came from the file.
    #[error("{0}")]
    Invalid(String),
}

const CONFIG_ENV: &str = "ISR_EDGE_CONFIG";
/// Arguments that are actions, not settings: not printed by `--print-config`.
const ACTIONS: [&str; 5] = ["config", "print_config", "check_config", "help", "version"];

/// Parses `args` (program name first); `env_secret` is `REVALIDATE_SECRET`.
pub fn load(args: Vec<OsString>, env_secret: Option<String>) -> Result<Startup, StartupError> {
    let (program, real) = match args.split_first() {
        Some((program, real)) => (program.clone(), real.to_vec()),
        None => (OsString::from("isr-edge"), Vec::new()),
    };
    let client = real.first().is_some_and(|a| a == "revalidate");
    let path = if client { None } else { config_path(&real) };
    let file = match &path {
        Some(path) => {
            // As the secret list is read: only a non-empty entry makes it a secret.
            let secret_env_set = env_secret
                .as_deref()
                .is_some_and(|s| s.split(',').any(|part| !part.trim().is_empty()));
            Some(config_file::read(
                path,
                &Cli::command(),
                &real,
                secret_env_set,
            )?)
        }
        None => None,
    };
    let mut argv = vec![program];
    if let Some(file) = &file {
        argv.extend(file.args.iter().cloned());
    }
    argv.extend(real.iter().cloned());
    let matches = Cli::command()
        .try_get_matches_from(argv)
        .map_err(|e| explain_clap(e, file.as_ref(), &real))?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(StartupError::Usage)?;
    if let Some(command) = cli.command.take() {
        return Ok(Startup::Client(command));
    }
    let (print, check) = (cli.print_config, cli.check_config);
    let sections = file
        .as_ref()
        .map(|f| f.sections.clone())
        .unwrap_or_default();
    let config = Config::from_sources(cli, env_secret, sections)
        .map_err(|e| explain_config_error(&e, file.as_ref()))?;
    if print {
        return Ok(Startup::Print(render(&matches, file.as_ref(), &config)));
    }
    if check {
        let source = match &file {
            Some(file) => file.path.display().to_string(),
            None => "flags and environment (no config file)".to_string(),
        };
        return Ok(Startup::Checked(format!(
            "{source}: configuration is valid ({} routes, {} host origins)",
            config.routes.rules().len(),
            config.host_origins.len()
        )));
    }
    Ok(Startup::Serve(Box::new(config)))
}

/// The last `--config FILE` / `--config=FILE` among the real arguments, else
/// `ISR_EDGE_CONFIG`.
fn config_path(real: &[OsString]) -> Option<PathBuf> {
    // The last, as for every other flag (`args_override_self`): reading the first made the
    // file read and the one --print-config named two different files.
    let mut found = None;
    let mut args = real.iter().take_while(|a| *a != "--");
    while let Some(arg) = args.next() {
        if arg == "--config" {
            found = args.next().map(PathBuf::from);
        } else if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            found = Some(PathBuf::from(path));
        }
    }
    found.or_else(|| {
        std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// A clap error about an argument the file supplied becomes `FILE:LINE: key: message`.
fn explain_clap(error: clap::Error, file: Option<&ConfigFile>, real: &[OsString]) -> StartupError {
    if let Some(variable) = from_environment(&error, file, real) {
        // The flag clap names was never typed: name the variable that set it.
        return StartupError::Invalid(format!("{variable}: {}", one_line(&error.to_string())));
    }
    let Some(file) = file else {
        return StartupError::Usage(error);
    };
    let named = [ContextKind::InvalidArg, ContextKind::PriorArg]
        .into_iter()
        .filter_map(|kind| match error.get(kind) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            _ => None,
        })
        .filter_map(|s| {
            let long = s
                .trim_start_matches('-')
                .split([' ', '='])
                .next()?
                .to_string();
            Some(long.replace('-', "_"))
        });
    for id in named {
        if let Some(key) = file.keys.iter().find(|k| k.id == id) {
            let text = error.to_string();
            let first = text.lines().next().unwrap_or("invalid value");
            return StartupError::Invalid(format!(
                "{}:{}: {}: {}",
                file.path.display(),
                key.line,
                key.key,
                first.trim_start_matches("error: ")
            ));
        }
    }
    StartupError::Usage(error)
}

/// The environment variable behind the argument a clap error is about, when neither the
/// command line nor the file gave that argument.
fn from_environment(
    error: &clap::Error,
    file: Option<&ConfigFile>,
    real: &[OsString],
) -> Option<String> {
    let Some(ContextValue::String(named)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = named.trim_start_matches('-').split([' ', '=']).next()?;
    let command = Cli::command();
    let arg = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?;
    let variable = arg.get_env()?.to_str()?;
    let typed = real.iter().any(|a| {
        a.to_str().is_some_and(|a| {
            a.strip_prefix("--")
                .is_some_and(|a| a == long || a.starts_with(&format!("{long}=")))
        })
    });
    let in_file = file.is_some_and(|f| f.keys.iter().any(|k| k.id == arg.get_id().as_str()));
    (!typed && !in_file && std::env::var_os(variable).is_some()).then(|| variable.to_string())
}

fn explain_config_error(error: &ConfigError, file: Option<&ConfigFile>) -> StartupError {
    let id = error.key();
    let text = error.to_string();
    if let Some((file, key)) = file.and_then(|f| f.keys.iter().find(|k| k.id == id).map(|k| (f, k)))
    {
        // `--flag: message` becomes `FILE:LINE: key: message`.
        let flag = format!("--{}: ", id.replace('_', "-"));
        return StartupError::Invalid(format!(
            "{}:{}: {}: {}",
            file.path.display(),
            key.line,
            key.key,
            text.strip_prefix(&flag).unwrap_or(&text)
        ));
    }
    StartupError::Invalid(text)
}

/// Appended to the comment of a line whose URL was masked: the printed file loads, but would
/// send `***` as the password or secret.
const MASKED: &str = "masked: put the real value back before use";

/// [`MASKED`] as a line's own comment.
fn masked_note(masked: bool) -> String {
    if masked {
        format!("  # {MASKED}")
    } else {
        String::new()
    }
}

/// `url` as `--print-config` shows it (see [`masked_url`]); sets `masked` when it hid something.
fn shown_url(url: &str, masked: &mut bool) -> String {
    let shown = masked_url(url);
    *masked |= matches!(shown, std::borrow::Cow::Owned(_));
    shown.into_owned()
}

/// Whether an argument's value is a secret to mask (paths to secret files are not).
fn is_secret(id: &str) -> bool {
    let id = id.to_ascii_lowercase();
    ["secret", "token", "password"]
        .iter()
        .any(|s| id.contains(s))
        && !id.ends_with("_file")
}

/// The effective configuration as a TOML file that `--config` accepts.
fn render(matches: &ArgMatches, file: Option<&ConfigFile>, config: &Config) -> String {
    let mut out = String::from("# isr-edge effective configuration (secrets masked)\n");
    match file {
        Some(file) => out.push_str(&format!("# config file: {}\n", file.path.display())),
        None => out.push_str("# config file: none\n"),
    }
    out.push_str("# precedence: flags > environment > file > defaults\n\n");
    let command = Cli::command();
    // With `[[origin]]` sections the default origin is printed as one without a host: TOML
    // cannot hold both `origin = ...` and `[[origin]]`.
    let mut default_origin = None;
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else { continue };
        if ACTIONS.contains(&id) {
            continue;
        }
        let key = long.replace('-', "_");
        let source = match file.and_then(|f| f.keys.iter().find(|k| k.id == id)) {
            Some(k) => format!("file line {}", k.line),
            None => match matches.value_source(id) {
                Some(ValueSource::CommandLine) => "flag".to_string(),
                Some(ValueSource::EnvVariable) => format!(
                    "env {}",
                    arg.get_env()
                        .map(|e| e.to_string_lossy())
                        .unwrap_or_default()
                ),
                _ => "default".to_string(),
            },
        };
        // A URL's user info and credential parameters are masked like any other secret.
        let mut masked = false;
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|values| {
                values
                    .map(|v| shown_url(&v.to_string_lossy(), &mut masked))
                    .collect()
            })
            .unwrap_or_default();
        let source = if masked {
            format!("{source}; {MASKED}")
        } else {
            source
        };
        let value = if raw.is_empty() {
            out.push_str(&format!("# {key} = (not set)\n"));
            continue;
        } else if is_secret(id) || arg.is_hide_env_values_set() {
            // Commented out: secrets are refused in the file, so the output stays loadable.
            out.push_str(&format!("# {key} = \"****\"  # {source}\n"));
            continue;
        } else if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
            // Parsed, not as written: the environment may say `1` or `on`.
            match matches.try_get_one::<bool>(id) {
                Ok(Some(on)) => on.to_string(),
                _ => raw.join(""),
            }
        } else if matches!(arg.get_action(), ArgAction::Append) {
            // An empty value is how an empty list reaches clap (`tag_headers = []`).
            let items: Vec<String> = raw
                .iter()
                .filter(|v| !v.is_empty())
                .map(|v| quote(v))
                .collect();
            format!("[{}]", items.join(", "))
        } else {
            quote(&raw.join(""))
        };
        if id == "origin" && !config.host_origins.is_empty() {
            default_origin = Some((value, source));
            continue;
        }
        out.push_str(&format!("{key} = {value}  # {source}\n"));
    }
    let secret_source = if config.secrets.is_configured() {
        "configured, ****"
    } else {
        "not configured"
    };
    out.push_str(&format!(
        "# revalidation secret (REVALIDATE_SECRET or secret_file): {secret_source}\n"
    ));
    for rule in config.routes.rules() {
        out.push_str(&format!(
            "\n[[route]]\nmatch = {}\n",
            quote(rule.pattern.source())
        ));
        for (name, value) in [
            ("ttl", rule.ttl),
            ("stale_while_revalidate", rule.stale_while_revalidate),
            ("stale_if_error", rule.stale_if_error),
        ] {
            if let Some(d) = value {
                let text = humantime::format_duration(d).to_string();
                out.push_str(&format!("{name} = {}\n", quote(&text)));
            }
        }
        if rule.bypass {
            out.push_str("bypass = true\n");
        }
        if !rule.tags.is_empty() {
            let tags: Vec<String> = rule.tags.iter().map(|t| quote(t)).collect();
            out.push_str(&format!("tags = [{}]\n", tags.join(", ")));
        }
    }
    if let Some((url, source)) = default_origin {
        out.push_str(&format!("\n[[origin]]  # default, {source}\nurl = {url}\n"));
    }
    for origin in &config.host_origins {
        let mut masked = false;
        let url = quote(&shown_url(&origin.url.to_string(), &mut masked));
        out.push_str(&format!(
            "\n[[origin]]\nhost = {}\nurl = {url}{}\n",
            quote(&origin.host),
            masked_note(masked)
        ));
        render_forwarding(&mut out, &origin.forwarding);
    }
    out
}

/// A site's forwarding keys; its secret only as "configured, ****" next to the file's path.
fn render_forwarding(out: &mut String, forwarding: &SiteForwarding) {
    if !forwarding.urls.is_empty() {
        let mut masked = false;
        let urls: Vec<String> = forwarding
            .urls
            .iter()
            .map(|u| quote(&shown_url(&u.to_string(), &mut masked)))
            .collect();
        out.push_str(&format!(
            "revalidate_url = [{}]{}\n",
            urls.join(", "),
            masked_note(masked)
        ));
    }
    if let Some(path) = &forwarding.secret_file {
        let path = quote(&path.display().to_string());
        out.push_str(&format!(
            "revalidate_secret_file = {path}  # configured, ****\n"
        ));
    }
    if let Some(path) = &forwarding.prerender_manifest {
        let path = quote(&path.display().to_string());
        out.push_str(&format!("next_prerender_manifest = {path}\n"));
    }
}

/// A TOML basic string (JSON string escapes are valid TOML).
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

/// Folds clap's multi-line error into one line: the message and the flags it names, without
/// the usage block.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty() && !line.starts_with("tip:"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised() {
        assert!(is_secret("revalidate_secret"));
        assert!(is_secret("api_token"));
        assert!(!is_secret("secret_file"));
        assert!(!is_secret("cache_size"));
    }

    #[test]
    fn config_flag_is_found() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            config_path(&args(&["--demo", "--config", "a.toml"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_path(&args(&["--config=b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
        // The last one wins, as clap reads every flag given twice.
        assert_eq!(
            config_path(&args(&["--config", "a.toml", "--demo", "--config=b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
        assert_eq!(
            config_path(&args(&["--config=a.toml", "--config", "b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
    }
}
